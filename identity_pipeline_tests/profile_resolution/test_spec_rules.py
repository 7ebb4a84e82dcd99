"""Profile Resolution contract rules (docs/profile-resolution.md) and seed examples not covered by
test_engine.py.

Every expected value below is derived by hand from the spec / docs/profile-resolution.md, not from the engine.
Derived ids are recomputed here from the documented formula: `dm_` + 16 hex of sha256(source 0x1F record_id).
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from identity_pipeline.config import ConfigError


def rec(id, email=None, phone=None, first_name=None, last_name=None, customer_number=None, updated_at=None):
    return dict(
        id=id,
        email=email,
        phone=phone,
        first_name=first_name,
        last_name=last_name,
        customer_number=customer_number,
        updated_at=updated_at,
    )


def hid(source: str, record_id: str, salt: int = 0) -> str:
    text = f"{source}\x1f{record_id}" + (f"#{salt}" if salt else "")
    return "dm_" + hashlib.sha256(text.encode()).hexdigest()[:16]


def pair_rows(p) -> list[tuple]:
    mp = p.table("match_pairs")
    return sorted(
        zip(mp.source_a, mp.record_id_a, mp.source_b, mp.record_id_b, mp.rule, mp.status, strict=True)
    )


def report(p) -> pd.Series:
    return p.table("identity_golden_report").set_index(["section", "scope", "metric"])["value"]


def main_tables(p) -> set[str]:
    rows = p.con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    return {f"{s}.{t}" for s, t in rows}


# ------------------------------------------------------------ inputs: CSV, Parquet and DuckDB table sources
def _three_source_formats(p) -> None:
    p.write(
        "crm", [rec("1", email="Ann@x.com", phone="0611111111", first_name="Ann", updated_at="2024-01-01")]
    )
    p.con.execute(
        f"""copy (select * from (values
                (10, ' ANN@X.COM ', '+33 6 11 11 11 11', 'Ann', timestamp '2024-02-01'),
                (11, 'bob@y.com', null, 'Bob', timestamp '2024-03-01')) t(cust_id, mail, tel, prenom, maj))
            to '{p.root / "shop.parquet"}' (format parquet)"""
    )
    p.con.execute("create schema raw")
    p.con.execute(
        "create table raw.app_users as select * from (values ('U1', 'Ann Lee', 'ann@x.com')) "
        "t(user_id, full_name, email_address)"
    )
    p.pr["sources"][1] = {
        "name": "shop",
        "path": "shop.parquet",
        "primary_key": "cust_id",
        "priority": 2,
        "order_by": "updated_at",
        "fields": {"email": "mail", "phone": "tel", "first_name": "prenom", "updated_at": "maj"},
    }
    p.pr["sources"].append(
        {
            "name": "app",
            "table": "raw.app_users",
            "primary_key": "user_id",
            "priority": 3,
            "fields": {
                "email": "email_address",
                "first_name": {"sql": "split_part(full_name, ' ', 1)"},
                "last_name": {"sql": "split_part(full_name, ' ', 2)"},
            },
        }
    )


def test_parquet_and_duckdb_table_sources_with_their_own_column_names(project):
    """Spec Inputs: source models are CSV, Parquet or DuckDB tables; config maps each source's own columns."""
    p = project()
    _three_source_formats(p)
    p.run()
    ids = p.ids()
    assert set(ids) == {("crm", "1"), ("shop", "10"), ("shop", "11"), ("app", "U1")}
    assert (
        ids[("crm", "1")] == ids[("shop", "10")] == ids[("app", "U1")] == hid("app", "U1")
    )  # smallest (source, key)
    assert ids[("shop", "11")] == hid("shop", "11")
    assert pair_rows(p) == [
        ("app", "U1", "crm", "1", "same_email", "applied"),
        ("app", "U1", "shop", "10", "same_email", "applied"),
        ("crm", "1", "shop", "10", "same_email", "applied"),
    ]
    g = p.table("identity_golden").set_index("dinmo_id")
    ann = g.loc[hid("app", "U1")]
    assert (ann.email, ann.phone, ann.first_name, ann.last_name) == (
        "ann@x.com",
        "+33611111111",
        "Ann",
        "Lee",
    )
    assert (ann.record_count, ann.source_count, ann.sources) == (3, 3, "app,crm,shop")
    assert str(ann.first_seen)[:10] == "2024-01-01" and str(ann.last_updated)[:10] == "2024-02-01"
    bob = g.loc[hid("shop", "11")]
    assert (
        bob.representative_source,
        bob.representative_entity_key_name,
        bob.representative_entity_key_value,
    ) == (
        "shop",
        "cust_id",
        "11",
    )
    lk = p.table("identity_lookup").set_index(["source", "record_id"])
    assert lk.loc[("shop", "11"), ["entered_by", "cluster_size"]].tolist() == ["singleton", 1]
    assert lk.loc[("app", "U1"), ["entered_by", "cluster_size"]].tolist() == ["same_email", 3]


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (
            lambda pr: pr["sources"][1]["fields"].update(email="email"),
            r"profile_resolution\.sources\.1 \(shop\)\.fields\.email: column 'email' not found in "
            r".*shop\.parquet; existing columns: cust_id, mail, tel, prenom, maj",
        ),
        (
            lambda pr: pr["sources"][2]["fields"].update(email="mail_addr"),
            r"profile_resolution\.sources\.2 \(app\)\.fields\.email: column 'mail_addr' not found in "
            r"raw\.app_users; existing columns: user_id, full_name, email_address",
        ),
        (
            lambda pr: pr["sources"][2].update(primary_key="id"),
            r"profile_resolution\.sources\.2 \(app\)\.primary_key: column 'id' not found in raw\.app_users; "
            r"existing columns: user_id, full_name, email_address",
        ),
        (
            lambda pr: pr["sources"][2].update(table="raw.nope"),
            r"profile_resolution\.sources\.2 \(app\): cannot read raw\.nope",
        ),
        (
            lambda pr: pr["sources"][1].update(path="missing.parquet"),
            r"profile_resolution\.sources\.1 \(shop\): file not found: .*missing\.parquet",
        ),
    ],
)
def test_parquet_and_table_config_errors_before_anything_is_written(project, mutate, pattern):
    """Spec Processing 1 / issue item 3: one clear error naming source, column, what exists."""
    p = project()
    _three_source_formats(p)
    mutate(p.pr)
    with pytest.raises(ConfigError, match=pattern):
        p.run()
    assert main_tables(p) == {"raw.app_users"}


# ------------------------------------------------------------ identifiers / standardizers inside the engine
def test_email_provider_rule_gmail_dots_drives_matching(project):
    """Spec Inputs: email standardizer = trim + lowercase, optional provider-specific rules."""
    rows = [
        rec("1", email="J.Doe+promo@gmail.com"),
        rec("2", email=" jdoe@googlemail.com"),
        rec("3", email="j.doe@other.com"),
        rec("4", email="jdoe@other.com"),
    ]
    p = project("gmail")
    p.pr["identifiers"]["email"]["gmail_dots"] = True
    p.write("crm", rows)
    p.write("shop", [])
    p.run()
    mp = p.table("match_pairs")
    assert mp[["record_id_a", "record_id_b", "anchor_value"]].values.tolist() == [
        ["1", "2", "jdoe@gmail.com"]
    ]
    ids = p.ids()
    assert ids[("crm", "1")] == ids[("crm", "2")] and ids[("crm", "3")] != ids[("crm", "4")]
    control = project("plain")
    control.write("crm", rows)
    control.write("shop", [])
    control.run()
    assert len(control.table("match_pairs")) == 0


def test_name_standardizer_feeds_fuzzy_scores_golden_keeps_spelling(project):
    """Spec Inputs: names casefold, strip accents/punctuation, collapse spaces; fuzzy on standardized text."""
    p = project()
    p.write(
        "crm",
        [
            rec("1", phone="0611111111", first_name=" Zoë "),
            rec("2", phone="06 11 11 11 11", first_name="ZOE"),
            rec("3", phone="0611111111", first_name="Zoé-Anne"),  # 'zoe anne': jaro_winkler 0.854 < 0.9
        ],
    )
    p.write("shop", [])
    p.run()
    mp = p.table("match_pairs")
    assert mp[["record_id_a", "record_id_b", "rule", "anchor_value"]].values.tolist() == [
        ["1", "2", "phone_and_first_name", "+33611111111"]
    ]
    assert json.loads(mp.scores.iloc[0]) == {"first_name": 1.0}
    g = p.table("identity_golden").set_index("dinmo_id")
    assert g.loc[hid("crm", "1"), "first_name"] == "Zoë"


def test_b2b_domain_and_account_id_anchors_with_fuzzy_company(project):
    """Seed 000: merge B2B accounts, anchored on domain or account ID (+ anchored fuzzy); postal code."""
    p = project()
    p.pr = {
        "sources": [
            {
                "name": "accounts",
                "path": "accounts.csv",
                "primary_key": "account_key",
                "priority": 1,
                "fields": {
                    "account_id": "account_id",
                    "domain": "website",
                    "company": "company_name",
                    "postal_code": "zip",
                },
            }
        ],
        "identifiers": {
            "account_id": {"standardizer": "exact"},
            "domain": {"standardizer": "domain"},
            "company": {"standardizer": "name"},
            "postal_code": {"standardizer": "postal_code"},
        },
        "rules": [
            {"name": "same_account_id", "conditions": [{"exact": "account_id"}]},
            {
                "name": "domain_and_company",
                "conditions": [
                    {"exact": "domain"},
                    {"fuzzy": {"field": "company", "scorer": "token_set_ratio", "threshold": 90}},
                ],
            },
            {
                "name": "postal_and_company",
                "conditions": [
                    {"exact": "postal_code"},
                    {"fuzzy": {"field": "company", "scorer": "ratio", "threshold": 95}},
                ],
            },
        ],
    }
    pd.DataFrame(
        [
            ("a1", "ACC-1", "https://www.Acme.com/about", "Acme, Inc", None),
            ("a2", None, "sales@acme.com", "ACME Inc.", None),
            ("a3", None, "acme.com", "Acme Logistics", None),
            ("a4", "ACC-1 ", "other.org", "Whatever Ltd", None),
            ("a5", None, None, "Boulangerie Paul", " 75 011 "),
            ("a6", None, None, "boulangerie paule", "75011"),
            ("a7", None, None, "Boulangerie Pierre", "75011"),
        ],
        columns=["account_key", "account_id", "website", "company_name", "zip"],
    ).to_csv(p.root / "accounts.csv", index=False)
    p.run()
    mp = p.table("match_pairs")
    got = mp[["record_id_a", "record_id_b", "rule", "anchor_field", "anchor_value", "status"]].values.tolist()
    assert got == [
        ["a1", "a2", "domain_and_company", "domain", "acme.com", "applied"],
        ["a1", "a4", "same_account_id", "account_id", "ACC-1", "applied"],
        ["a5", "a6", "postal_and_company", "postal_code", "75011", "applied"],
    ]
    assert json.loads(mp.scores.iloc[0]) == {"company": 100.0}
    assert json.loads(mp.scores.iloc[1]) == {}
    assert 95 <= json.loads(mp.scores.iloc[2])["company"] < 100
    ids = p.ids()
    groups = sorted(sorted(k[1] for k in ids if ids[k] == v) for v in set(ids.values()))
    assert groups == [["a1", "a2", "a4"], ["a3"], ["a5", "a6"], ["a7"]]
    g = p.table("identity_golden").set_index("dinmo_id")
    assert g.loc[hid("accounts", "a1"), "domain"] == "acme.com"
    assert pd.isna(g.loc[hid("accounts", "a1"), "postal_code"])
    assert g.loc[hid("accounts", "a5"), "postal_code"] == "75011"


# ---------------------------------------------------------------- matching rules
def test_rule_with_several_exact_conditions_anchors_on_all_of_them(project):
    """Spec Processing 3: match pair recorded with its anchor values (every exact field of the rule)."""
    p = project()
    p.pr["rules"] = [
        {"name": "phone_and_last_name", "conditions": [{"exact": "phone"}, {"exact": "last_name"}]}
    ]
    p.write(
        "crm",
        [
            rec("1", phone="0611111111", last_name="Martin"),
            rec("2", phone="+33 6 11 11 11 11", last_name="MARTIN "),
            rec("3", phone="0611111111", last_name="Durand"),
        ],
    )
    p.write("shop", [])
    p.run()
    mp = p.table("match_pairs")
    assert mp.drop(columns=["source_a", "source_b"]).values.tolist() == [
        ["1", "2", "phone_and_last_name", 1, "phone,last_name", "+33611111111|martin", "{}", "applied"]
    ]


def test_pair_failing_first_rule_fuzzy_is_recorded_with_later_rule(project):
    """Spec Processing 3: a pair is recorded with the FIRST rule (in order) it satisfies."""
    p = project()
    p.pr["rules"] = [p.pr["rules"][2], p.pr["rules"][0]]  # phone_and_first_name, then same_email
    p.write("crm", [rec("1", email="a@x.com", phone="0611111111", first_name="Ann")])
    p.write("shop", [rec("1", email="A@x.com", phone="0611111111", first_name="Bob")])
    p.run()
    mp = p.table("match_pairs")
    assert mp[["rule", "rule_rank", "anchor_field", "anchor_value", "scores", "status"]].values.tolist() == [
        ["same_email", 2, "email", "a@x.com", "{}", "applied"]
    ]
    assert p.table("identity_lookup").entered_by.tolist() == ["same_email", "same_email"]


def test_conflict_limit_applies_pairs_by_anchor_value_before_record_keys(project):
    """Spec Processing 4: pairs applied strongest rule first, THEN BY ANCHOR VALUE, then record keys."""
    p = project()
    p.pr["rules"] = [p.pr["rules"][2], p.pr["rules"][0], p.pr["rules"][1]]
    # B-C linked by rule 1; A-B share 'a@x.com', C-D share 'z@x.com' (rule 2); A holds C1, D holds C2.
    # Record-key order would apply (1,2) [z@x.com] first; anchor order applies (3,4) [a@x.com] first.
    p.write(
        "crm",
        [
            rec("4", email="a@x.com", customer_number="C1"),  # A
            rec("3", email="a@x.com", phone="0611111111", first_name="Ann"),  # B
            rec("2", email="z@x.com", phone="0611111111", first_name="Ann"),  # C
            rec("1", email="z@x.com", customer_number="C2"),  # D
        ],
    )
    p.write("shop", [])
    p.run()
    st = p.table("match_pairs").set_index(["record_id_a", "record_id_b"])[["rule", "status"]]
    assert st.loc[("2", "3")].tolist() == ["phone_and_first_name", "applied"]
    assert st.loc[("3", "4")].tolist() == ["same_email", "applied"]
    assert st.loc[("1", "2")].tolist() == ["same_email", "rejected_conflict_limit"]
    ids = p.ids()
    assert ids[("crm", "2")] == ids[("crm", "3")] == ids[("crm", "4")] != ids[("crm", "1")]


def test_conflict_limit_also_counts_over_shared_values_of_the_profile(project):
    """Spec Processing 4: `max_values_per_profile` (e.g. at most 1 customer number per profile): a pair that
    would put more distinct values in one profile than allowed is not applied. Over-shared values are still
    values of the profile (they are listed in identity_matched_ids), so they count too."""
    p = project()
    p.pr["identifiers"]["customer_number"]["max_records_per_value"] = 1  # C1 and C2 become over-shared
    p.write(
        "crm",
        [
            rec("1", email="a@x.com", customer_number="C1"),
            rec("2", email="a@x.com", customer_number="C2"),
            rec("3", email="b@x.com", customer_number="C1"),
            rec("4", email="c@x.com", customer_number="C2"),
        ],
    )
    p.write("shop", [])
    p.run()
    mi = p.table("identity_matched_ids")
    per_profile = mi[mi.identifier_type == "customer_number"].groupby("dinmo_id").value.nunique()
    assert per_profile.max() <= 1, per_profile.to_dict()
    assert pair_rows(p) == [("crm", "1", "crm", "2", "same_email", "rejected_conflict_limit")]
    assert p.ids()[("crm", "1")] != p.ids()[("crm", "2")]


# ------------------------------------------------------------ guarantee: blocked / over-shared never merge
def _sharing_rows() -> tuple[list[dict], list[dict]]:
    crm = [
        rec("1", email="a@x.com", phone="0611111111", first_name="Ann"),
        rec("2", email="b@x.com", phone="0611111111", first_name="Ann"),
        rec("3", email="c@x.com", phone="06 11 11 11 11", first_name="Ann"),
    ]
    shop = [
        rec("1", email="d@x.com", phone="0000000000", first_name="Ann"),
        rec("2", email="e@x.com", phone="00 00 00 00 00", first_name="Ann"),
        rec("3", email="test@test.com", customer_number="K1"),
        rec("4", email=" TEST@test.com", customer_number="K2"),
    ]
    return crm, shop


def test_only_blocked_or_over_shared_values_in_common_never_merge(project):
    """Spec Guarantees: blocked values and values over max_records_per_value never match; audited."""
    crm, shop = _sharing_rows()
    p = project("guarded")
    p.pr["identifiers"]["phone"]["max_records_per_value"] = 2
    p.write("crm", crm)
    p.write("shop", shop)
    p.run()
    assert len(p.table("match_pairs")) == 0
    lk = p.table("identity_lookup")
    assert len(lk) == 7 and lk.dinmo_id.nunique() == 7
    assert set(lk.entered_by) == {"singleton"} and set(lk.cluster_size) == {1}
    rep = report(p)
    assert rep[("identifier", "phone", "records_with_value")] == 5
    assert rep[("identifier", "phone", "over_shared_rate")] == pytest.approx(3 / 7)
    assert rep[("identifier", "phone", "blocked_rate")] == pytest.approx(2 / 7)
    assert rep[("identifier", "phone", "usable_rate")] == 0
    assert rep[("identifier", "email", "blocked_rate")] == pytest.approx(2 / 7)
    mi = p.table("identity_matched_ids")
    phones = mi[mi.identifier_type == "phone"]
    # over-shared values still belong to their profiles; blocked placeholders are left out
    assert sorted(phones.dinmo_id) == sorted(hid("crm", k) for k in "123")
    assert set(phones.value) == {"+33611111111"}
    assert "test@test.com" not in set(mi.value)

    # control: the same rows merge once the guardrails are lifted (so the test above can fail)
    c = project("control")
    c.pr["identifiers"]["phone"].pop("blocked_values")
    c.pr["identifiers"]["email"]["blocked_values"] = []
    c.pr["identifiers"]["customer_number"].pop("max_values_per_profile")
    c.write("crm", crm)
    c.write("shop", shop)
    c.run()
    assert pair_rows(c) == [
        ("crm", "1", "crm", "2", "phone_and_first_name", "applied"),
        ("crm", "1", "crm", "3", "phone_and_first_name", "applied"),
        ("crm", "2", "crm", "3", "phone_and_first_name", "applied"),
        ("shop", "1", "shop", "2", "phone_and_first_name", "applied"),
        ("shop", "3", "shop", "4", "same_email", "applied"),
    ]


def test_placeholders_and_bad_data_never_stop_the_run(project):
    """Issue item 9 / spec Outputs: only blocked values -> only_blocked_values; bad order field is data."""
    p = project()
    p.pr["identifiers"]["last_name"]["blocked_values"] = ["n/a"]
    p.write(
        "crm",
        [
            rec("1", phone="0000000000"),
            rec("2", email="n/a"),
            rec("3", last_name="N/A"),
            rec("4", email="ok@x.com", updated_at="not a date"),
        ],
    )
    p.write("shop", [])
    p.run()
    un = p.table("identity_unresolved_records")
    assert un[["record_id", "reason", "detail"]].values.tolist() == [
        [
            "1",
            "only_blocked_values",
            "identifier values not usable for matching: phone=+33000000000 (blocked)",
        ],
        ["2", "no_usable_identifier", "no identifier value after standardization"],
        ["3", "only_blocked_values", "identifier values not usable for matching: last_name=n a (blocked)"],
    ]
    g = p.table("identity_golden")
    assert g.dinmo_id.tolist() == [hid("crm", "4")]
    assert pd.isna(g.first_seen.iloc[0]) and pd.isna(g.last_updated.iloc[0])


# ---------------------------------------------------------------- golden record
def test_golden_blocked_value_never_wins_over_lower_priority(project):
    """Spec Golden: winning values per field; a blocked placeholder is not a value (docs: never wins)."""
    p = project()
    p.write("crm", [rec("1", email="test@test.com", phone="0611111111", first_name="Ann")])
    p.write("shop", [rec("1", email="ann@x.com", phone="06 11 11 11 11", first_name="Ann")])
    p.run()
    g = p.table("identity_golden")
    assert len(g) == 1
    assert g[["dinmo_id", "email", "phone", "representative_source"]].values.tolist() == [
        [hid("crm", "1"), "ann@x.com", "+33611111111", "crm"]
    ]


def test_golden_deterministic_tie_breaks(project):
    """Spec Golden: deterministic tie-breaks (orders in docs/profile-resolution.md)."""
    p = project()
    p.pr["identifiers"]["customer_number"].pop("max_values_per_profile")
    p.pr["golden_record"] = {
        "default_strategy": "source_priority",
        "fields": {"phone": "most_recent", "first_name": "longest", "customer_number": "first_non_null"},
    }
    p.write(
        "crm",
        [
            rec("A1", email="a@x.com", last_name="Old", updated_at="2024-01-01"),
            rec("A2", email="a@x.com", last_name="New", updated_at="2024-05-01"),
            rec("B1", email="b@x.com", phone="0611111111", updated_at="2024-03-01"),
            rec("C1", email="c@x.com", phone="0644444444", updated_at="2020-01-01"),
            rec("D1", email="d@x.com", first_name="Anne", updated_at="2024-01-01"),
            rec("E1", email="e@x.com", customer_number="C9", updated_at="2024-06-01"),
        ],
    )
    p.write(
        "shop",
        [
            rec("B1", email="b@x.com", phone="0622222222", updated_at="2024-03-01"),
            rec("C1", email="c@x.com", phone="0633333333", updated_at=None),
            rec("D1", email="d@x.com", first_name="Anna", updated_at="2024-02-01"),
            rec("E1", email="e@x.com", customer_number="C8", updated_at="2023-01-01"),
        ],
    )
    p.run()
    g = p.table("identity_golden").set_index("dinmo_id")
    a = g.loc[hid("crm", "A1")]
    # source_priority, same source: latest order field wins; representative = first in that order
    assert a.last_name == "New" and a.representative_entity_key_value == "A2"
    assert g.loc[hid("crm", "B1"), "phone"] == "+33611111111"  # most_recent tie -> source priority
    assert g.loc[hid("crm", "C1"), "phone"] == "+33644444444"  # most_recent: null order field last
    assert g.loc[hid("crm", "D1"), "first_name"] == "Anne"  # longest tie -> source priority
    assert g.loc[hid("crm", "E1"), "customer_number"] == "C8"  # first_non_null = earliest known value
    assert len(g) == 5


# ---------------------------------------------------------------- outputs: report, matched ids, lookup, ids
def test_report_lookup_and_matched_ids_hand_computed(project):
    """Spec Outputs: identity_golden_report sections, identity_matched_ids, identity_lookup, derived ids."""
    p = project()
    p.write(
        "crm",
        [
            rec("1", email="a@x.com", customer_number="C1"),
            rec("2", email="a@x.com", customer_number="C2"),
            rec("3", email="a@x.com"),
            rec("4", email="b@x.com"),
            rec("5", email="test@test.com"),
        ],
    )
    p.write("shop", [rec("1", email="B@x.com"), rec("2", email="c@x.com")])
    p.run()
    # pairs on a@x.com in (rule, anchor, keys) order: (1,2) would hold C1 and C2 -> rejected; (1,3) applied;
    # (2,3) would join C2 to {1,3} -> rejected. b@x.com: (crm 4, shop 1) applied.
    assert pair_rows(p) == [
        ("crm", "1", "crm", "2", "same_email", "rejected_conflict_limit"),
        ("crm", "1", "crm", "3", "same_email", "applied"),
        ("crm", "2", "crm", "3", "same_email", "rejected_conflict_limit"),
        ("crm", "4", "shop", "1", "same_email", "applied"),
    ]
    lk = p.table("identity_lookup")
    assert lk[["source", "record_id", "dinmo_id", "entered_by", "cluster_size"]].values.tolist() == [
        ["crm", "1", hid("crm", "1"), "same_email", 2],
        ["crm", "2", hid("crm", "2"), "singleton", 1],
        ["crm", "3", hid("crm", "1"), "same_email", 2],
        ["crm", "4", hid("crm", "4"), "same_email", 2],
        ["shop", "1", hid("crm", "4"), "same_email", 2],
        ["shop", "2", hid("shop", "2"), "singleton", 1],
    ]
    mi = p.table("identity_matched_ids")
    assert sorted(
        map(tuple, mi[["dinmo_id", "identifier_type", "value", "record_count", "sources"]].values)
    ) == sorted(
        [
            (hid("crm", "1"), "email", "a@x.com", 2, "crm"),
            (hid("crm", "1"), "customer_number", "C1", 1, "crm"),
            (hid("crm", "2"), "email", "a@x.com", 1, "crm"),
            (hid("crm", "2"), "customer_number", "C2", 1, "crm"),
            (hid("crm", "4"), "email", "b@x.com", 2, "crm,shop"),
            (hid("shop", "2"), "email", "c@x.com", 1, "shop"),
        ]
    )
    rep = report(p)
    totals = {
        "source_records": 7,
        "unique_records": 1,  # shop 2
        "matched_records": 2,  # crm 4, shop 1
        "conflict_records": 3,  # crm 1, 2, 3
        "missing_records": 1,  # crm 5
        "unique_rate": 1 / 7,
        "matched_rate": 2 / 7,
        "conflict_rate": 3 / 7,
        "missing_rate": 1 / 7,
        "resolution_rate": 6 / 7,
        "golden_records": 4,
        "match_pairs": 4,
        "pairs_applied": 2,
        "pairs_rejected_conflict_limit": 2,
        "pairs_rejected_cluster_too_large": 0,
        "unresolved_only_blocked_values": 1,
        "unresolved_missing_primary_key": 0,
        "unresolved_no_usable_identifier": 0,
    }
    for metric, value in totals.items():
        assert rep[("totals", "all", metric)] == pytest.approx(value), metric
    per_source = {
        "crm": {"source_records": 5, "unique_records": 0, "matched_records": 1, "conflict_records": 3,
                "missing_records": 1, "resolution_rate": 4 / 5},
        "shop": {"source_records": 2, "unique_records": 1, "matched_records": 1, "conflict_records": 0,
                 "missing_records": 0, "resolution_rate": 1.0},
    }  # fmt: skip
    for source, metrics in per_source.items():
        for metric, value in metrics.items():
            assert rep[("source", source, metric)] == pytest.approx(value), (source, metric)
    per_rule = {
        "same_email": {"applicable_records": 6, "applicable_rate": 6 / 7, "matched_records": 4,
                       "matched_rate": 4 / 7, "conflict_records": 3, "conflict_rate": 3 / 7,
                       "pairs": 4, "pairs_applied": 2},
        "same_customer_number": {"applicable_records": 2, "matched_records": 0, "conflict_records": 0,
                                 "pairs": 0},
        "phone_and_first_name": {"applicable_records": 0, "matched_records": 0, "pairs": 0},
    }  # fmt: skip
    for rule, metrics in per_rule.items():
        for metric, value in metrics.items():
            assert rep[("rule", rule, metric)] == pytest.approx(value), (rule, metric)
    assert rep[("identifier", "email", "completeness")] == pytest.approx(1.0)
    assert rep[("identifier", "email", "usable_rate")] == pytest.approx(6 / 7)
    assert rep[("identifier", "email", "distinct_values")] == 4
    assert rep[("identifier", "customer_number", "completeness")] == pytest.approx(2 / 7)
    assert rep[("identifier", "phone", "completeness")] == 0
    ids = {m: rep[("dinmo_ids", "all", m)] for m in ("created", "merged_away", "split", "unchanged")}
    assert ids == {"created": 4, "merged_away": 0, "split": 0, "unchanged": 0}


def test_new_id_derived_from_smallest_source_and_primary_key(project):
    """Spec Processing 5: a cluster with no earlier id gets an id derived from its smallest (source, pk)."""
    p = project()
    p.write("crm", [rec("k2", email="x@x.com")])
    p.write("shop", [rec("k1", email="x@x.com"), rec("k4", email="y@x.com"), rec("k3", email="y@x.com")])
    p.run()
    assert p.ids() == {
        ("crm", "k2"): hid("crm", "k2"),
        ("shop", "k1"): hid("crm", "k2"),
        ("shop", "k3"): hid("shop", "k3"),
        ("shop", "k4"): hid("shop", "k3"),
    }


def test_merge_then_split_history_is_cumulative(project):
    """Spec Processing 5: merges recorded (history kept); split: part with the oldest member keeps the id."""
    p = project()
    p.write("crm", [rec("1", email="a@x.com", customer_number="K"), rec("2", email="b@x.com")])
    p.write("shop", [])
    p.run()
    x, y = hid("crm", "1"), hid("crm", "2")
    assert p.ids() == {("crm", "1"): x, ("crm", "2"): y}
    # run 2: shop 1 bridges both (email with crm 2, customer number with crm 1); both ids from run 1 -> the
    # tie on age is broken by the id itself (smallest kept)
    p.write("shop", [rec("1", email="b@x.com", customer_number="K")])
    p.run()
    kept, lost = min(x, y), max(x, y)
    assert set(p.ids().values()) == {kept}
    # run 3: the bridge leaves -> {crm 1} and {crm 2}; both members date from run 1 -> crm 1 (smallest key)
    # holds `kept`; crm 2 needs a NEW id: its derived id y was used before, so the salted one
    p.write("shop", [])
    p.run()
    new = hid("crm", "2", 1)
    assert p.ids() == {("crm", "1"): kept, ("crm", "2"): new}
    hist = p.table("identity_dinmo_id_history")
    assert hist[["old_dinmo_id", "dinmo_id", "change", "run_number"]].values.tolist() == sorted(
        [[lost, kept, "merged", 2], [kept, new, "split", 3]], key=lambda r: (r[0], r[1])
    )
    rep = report(p)
    assert rep[("dinmo_ids", "all", "split")] == 1 and rep[("dinmo_ids", "all", "created")] == 1
    assert rep[("dinmo_ids", "all", "merged_away")] == 0


# ---------------------------------------------------------------- invariants (issue item 6)
def test_invariants_on_mixed_input(project):
    """Every input record once in lookup or unresolved; one golden row per dinmo_id; match pairs refer to
    existing records; no profile above max_cluster_size; counts agree across tables."""
    p = project()
    p.pr["max_cluster_size"] = 3
    rows = [
        rec(
            str(i),
            email=f"u{i % 9}@x.com" if i % 4 else ("test@test.com" if i % 8 else None),
            phone=f"06111111{i % 6:02d}" if i % 5 else None,
            first_name=["Ann", "Anne", "Bob", "Rob", None][i % 5],
            customer_number=f"C{i % 3}" if i % 7 == 0 else None,
            updated_at=f"2024-01-{1 + i % 28:02d}",
        )
        for i in range(50)
    ]
    rows += [rec(None, email="z@x.com"), rec("0", email="dup@x.com")]  # missing key + duplicate of "0"
    p.write("crm", rows[:30] + rows[50:])
    p.write("shop", rows[30:50])
    p.run()
    lk, un = p.table("identity_lookup"), p.table("identity_unresolved_records")
    assert len(lk) + len(un) == 52
    assert not lk.duplicated(["source", "record_id"]).any()
    assert set(un.reason) <= {
        "missing_primary_key",
        "duplicate_primary_key",
        "no_usable_identifier",
        "only_blocked_values",
        "cluster_too_large",
    }
    assert sorted(un[un.reason == "duplicate_primary_key"].record_id) == ["0", "0"]
    assert un[un.reason == "missing_primary_key"].record_id.isna().all()
    g = p.table("identity_golden")
    assert not g.dinmo_id.duplicated().any() and set(g.dinmo_id) == set(lk.dinmo_id)
    sizes = lk.groupby("dinmo_id").size()
    assert sizes.max() <= 3
    assert (lk.set_index("dinmo_id").cluster_size == sizes.reindex(lk.dinmo_id).to_numpy()).all()
    assert (g.set_index("dinmo_id").record_count == sizes.reindex(g.dinmo_id)).all()
    known = set(zip(lk.source, lk.record_id, strict=True)) | set(
        zip(
            un[un.reason == "cluster_too_large"].source,
            un[un.reason == "cluster_too_large"].record_id,
            strict=True,
        )
    )
    mp = p.table("match_pairs")
    assert len(mp) > 0
    ids = p.ids()
    for r in mp.itertuples():
        assert (r.source_a, r.record_id_a) in known and (r.source_b, r.record_id_b) in known
        assert (r.source_a, r.record_id_a) < (r.source_b, r.record_id_b)
        if r.status == "applied":
            assert ids[(r.source_a, r.record_id_a)] == ids[(r.source_b, r.record_id_b)]


# ---------------------------------------------------------------- seed 000: the other capability is untouched
def test_profile_resolution_does_not_touch_other_tables(project):
    """Seed 000: Profile Resolution does not touch the other capability's outputs."""
    p = project()
    p.con.execute(
        "create table main.identity_event_profiles as select 'ep_1' as profile_id, 'a@x.com' as email"
    )
    p.con.execute("create table main.unrelated as select 42 as n")
    p.write("crm", [rec("1", email="a@x.com")])
    p.write("shop", [rec("1", email="a@x.com")])
    p.run()
    p.run()
    assert p.con.execute("select * from main.identity_event_profiles").fetchall() == [("ep_1", "a@x.com")]
    assert p.con.execute("select * from main.unrelated").fetchall() == [(42,)]
