"""Profile Resolution engine on small CSVs: one test per rule of docs/profile-resolution.md."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from identity_pipeline.config import ConfigError
from identity_pipeline.core.profile_resolution import pipeline
from identity_pipeline.core.profile_resolution.stable_ids import derive_id
from identity_pipeline.core.storage import table_exists


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


def pairs(p) -> pd.DataFrame:
    return p.table("match_pairs")


def same_id(p, a, b) -> bool:
    ids = p.ids()
    return ids[a] == ids[b]


def assert_nothing_lost(p, n_input: int) -> None:
    lk, un = p.table("identity_lookup"), p.table("identity_unresolved_records")
    assert len(lk) + len(un) == n_input
    assert not lk.duplicated(["source", "record_id"]).any()
    keyed = un[un["record_id"].notna() & (un["reason"] != "duplicate_primary_key")]
    assert not set(zip(keyed.source, keyed.record_id, strict=True)) & set(
        zip(lk.source, lk.record_id, strict=True)
    )


# ---------------------------------------------------------------- validation before anything is written
@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (
            lambda pr: pr["sources"][0]["fields"].update(email="mail"),
            r"sources\.0 \(crm\)\.fields\.email: column 'mail' not found in .*crm\.csv; "
            r"existing columns: id, email, phone",
        ),
        (
            lambda pr: pr["sources"][1].update(primary_key="shop_id"),
            r"sources\.1 \(shop\)\.primary_key: column 'shop_id' not found.*existing columns: id, email",
        ),
        (
            lambda pr: pr["sources"][1].update(path="nope.csv"),
            r"sources\.1 \(shop\): file not found: .*nope\.csv",
        ),
        (
            lambda pr: pr["sources"][0]["fields"].update(last_name={"sql": "upper(surname)"}),
            r"fields\.last_name: SQL expression 'upper\(surname\)' does not bind"
            r".*existing columns: id, email",
        ),
    ],
)
def test_source_errors_raised_before_anything_is_written(project, mutate, pattern):
    p = project()
    p.write("crm", [rec("1", email="a@x.com")])
    p.write("shop", [rec("1", email="a@x.com")])
    p.run()
    before = p.tables()
    mutate(p.pr)
    p.con.execute("drop schema pr_stage cascade")
    with pytest.raises(ConfigError, match=pattern):
        p.run()
    assert not table_exists(p.con, "source_records", schema="pr_stage")
    for t, df in p.tables().items():
        pd.testing.assert_frame_equal(df, before[t])


def test_sql_expression_fields(project):
    p = project()
    p.write("crm", [rec("1", email="a@x.com", first_name="Ann Lee")])
    p.write("shop", [rec("1", email="a@x.com")])
    p.pr["sources"][0]["fields"]["first_name"] = {"sql": "split_part(first_name, ' ', 1)"}
    p.pr["sources"][0]["fields"]["last_name"] = {"sql": "split_part(first_name, ' ', 2)"}
    p.run()
    g = p.table("identity_golden")
    assert (g.first_name.iloc[0], g.last_name.iloc[0]) == ("Ann", "Lee")


# ---------------------------------------------------------------- identifiers
def test_standardization_blocked_and_over_shared(project):
    p = project()
    p.pr["identifiers"]["phone"]["max_records_per_value"] = 2
    p.write(
        "crm",
        [
            rec("1", email=" Ann@Example.COM ", phone="06 12 34 56 78"),
            rec("2", email="TEST@test.com", phone="+33 1 00 00 00 01"),
            rec("3", email="noreply@shop.com", phone="01 00 00 00 01"),
            rec("4", email="not an email", phone="0100000001"),
        ],
    )
    p.write("shop", [rec("9", email="ann@example.com", phone="+33612345678")])
    p.run()
    iv = p.table("identifier_values", schema="pr_stage").set_index(["source", "record_id", "identifier"])
    assert iv.loc[("crm", "1", "email"), ["value", "status"]].tolist() == ["ann@example.com", "usable"]
    assert iv.loc[("crm", "1", "phone"), "value"] == "+33612345678"
    assert iv.loc[("crm", "2", "email"), "status"] == "blocked"
    assert iv.loc[("crm", "3", "email"), "status"] == "blocked"  # pattern
    assert ("crm", "4", "email") not in iv.index  # invalid email: no observation
    assert set(
        iv.xs("phone", level="identifier").loc[[("crm", "2"), ("crm", "3"), ("crm", "4")], "status"]
    ) == {"over_shared"}
    # sharing only blocked / over-shared values never merges different people
    assert len({p.ids().get(("crm", k)) for k in ("2", "3", "4")} - {None}) == len(
        [k for k in ("2", "3", "4") if ("crm", k) in p.ids()]
    )
    assert same_id(p, ("crm", "1"), ("shop", "9"))
    un = p.table("identity_unresolved_records").set_index(["source", "record_id"])
    assert un.loc[("crm", "2"), "reason"] == "only_blocked_values"  # blocked email + over-shared phone
    assert "blocked" in un.loc[("crm", "2"), "detail"] and "over_shared" in un.loc[("crm", "2"), "detail"]


def test_blocked_literal_is_standardized_first(project):
    p = project()
    p.pr["identifiers"]["phone"]["blocked_values"] = ["06 00 00 00 00"]
    p.write(
        "crm",
        [rec("1", phone="+33600000000", first_name="Ann"), rec("2", phone="0600000000", first_name="Ann")],
    )
    p.write("shop", [])
    p.run()
    iv = p.table("identifier_values", schema="pr_stage")
    assert iv[iv.identifier == "phone"].status.tolist() == ["blocked", "blocked"]
    assert not same_id(p, ("crm", "1"), ("crm", "2"))  # only the blocked phone and a first name in common


# ---------------------------------------------------------------- matching
def test_anchored_fuzzy(project):
    p = project()
    p.write(
        "crm",
        [
            rec("1", phone="0611111111", first_name="Jonathan"),
            rec("2", phone="0611111111", first_name="Jonathon"),  # same anchor, passes 0.9
            rec("3", phone="0622222222", first_name="Marie"),
            rec("4", phone="0622222222", first_name="Pierre"),  # same anchor, fails
            rec("5", phone="0633333333", first_name="Jonathan"),  # same name, no shared anchor
            rec("6", phone="0622222222"),  # null first name fails the fuzzy condition
        ],
    )
    p.write("shop", [])
    p.run()
    mp = pairs(p)
    assert list(zip(mp.record_id_a, mp.record_id_b, strict=True)) == [("1", "2")]
    row = mp.iloc[0]
    assert (
        row.rule == "phone_and_first_name"
        and row.anchor_field == "phone"
        and row.anchor_value == "+33611111111"
    )
    assert json.loads(row.scores)["first_name"] >= 0.9
    assert same_id(p, ("crm", "1"), ("crm", "2")) and not same_id(p, ("crm", "1"), ("crm", "5"))
    assert len(set(p.ids().values())) == 5


def test_pair_recorded_with_first_rule_it_satisfies(project):
    p = project()
    p.write("crm", [rec("1", email="a@x.com", phone="0611111111", first_name="Ann")])
    p.write("shop", [rec("1", email="a@x.com", phone="0611111111", first_name="Ann")])
    p.pr["rules"] = [p.pr["rules"][2], p.pr["rules"][0]]
    p.run()
    mp = pairs(p)
    assert len(mp) == 1 and mp.rule.iloc[0] == "phone_and_first_name" and mp.rule_rank.iloc[0] == 1
    assert p.table("identity_lookup").entered_by.tolist() == ["phone_and_first_name"] * 2


def test_relatives_sharing_phone_do_not_merge(project):
    p = project()
    p.write(
        "crm",
        [
            rec("1", phone="0611111111", first_name="Jean", last_name="Martin"),
            rec("2", phone="0611111111", first_name="Paul", last_name="Martin"),
        ],
    )
    p.write("shop", [rec("1", phone="+33 6 11 11 11 11", first_name="Jean", last_name="Martin")])
    p.run()
    assert same_id(p, ("crm", "1"), ("shop", "1"))
    assert not same_id(p, ("crm", "1"), ("crm", "2"))


# ---------------------------------------------------------------- guardrails
def test_conflict_limit(project):
    p = project()
    p.write(
        "crm",
        [
            rec("1", email="a@x.com", customer_number="C1"),
            rec("2", email="a@x.com", customer_number="C2"),
            rec("3", email="a@x.com"),
        ],
    )
    p.write("shop", [])
    p.run()
    mp = pairs(p).set_index(["record_id_a", "record_id_b"])
    # order: same rule, same anchor value -> record keys: (1,2) rejected, (1,3) applied, (2,3) rejected
    assert mp.loc[("1", "2"), "status"] == "rejected_conflict_limit"
    assert mp.loc[("1", "3"), "status"] == "applied"
    assert mp.loc[("2", "3"), "status"] == "rejected_conflict_limit"
    assert same_id(p, ("crm", "1"), ("crm", "3")) and not same_id(p, ("crm", "1"), ("crm", "2"))
    rep = p.table("identity_golden_report").set_index(["section", "scope", "metric"])["value"]
    assert rep[("totals", "all", "conflict_records")] == 3
    assert rep[("rule", "same_email", "conflict_records")] == 3


def test_conflict_limit_prefers_strongest_rule(project):
    p = project()
    p.write(
        "crm",
        [
            rec("1", email="a@x.com", phone="0611111111", first_name="Ann", customer_number="C1"),
            rec("2", email="b@x.com", phone="0611111111", first_name="Ann", customer_number="C2"),
            rec("3", email="b@x.com", customer_number="C2"),
        ],
    )
    p.write("shop", [])
    p.run()
    st = pairs(p).set_index(["record_id_a", "record_id_b"])["status"]
    assert st[("2", "3")] == "applied" and st[("1", "2")] == "rejected_conflict_limit"


def test_max_cluster_size_splits_on_weakest_rule_then_reports(project):
    p = project()
    p.pr["max_cluster_size"] = 3
    p.pr["identifiers"]["customer_number"].pop("max_values_per_profile")
    # two email pairs bridged by a phone+name pair: 4 records > 3 -> drop phone edges -> two parts of 2
    # three records sharing one customer number + a fourth: single-rule component of 4 -> too large
    p.write(
        "crm",
        [
            rec("1", email="a@x.com", phone="0611111111", first_name="Ann"),
            rec("2", email="a@x.com"),
            rec("3", email="b@x.com", phone="0611111111", first_name="Ann"),
            rec("4", email="b@x.com"),
            rec("5", customer_number="K"),
            rec("6", customer_number="K"),
            rec("7", customer_number="K"),
            rec("8", customer_number="K"),
        ],
    )
    p.write("shop", [])
    p.run()
    st = pairs(p).set_index(["record_id_a", "record_id_b"])["status"]
    assert st[("1", "3")] == "rejected_cluster_too_large"
    assert st[("1", "2")] == "applied" and st[("3", "4")] == "applied"
    assert same_id(p, ("crm", "1"), ("crm", "2")) and not same_id(p, ("crm", "1"), ("crm", "3"))
    un = p.table("identity_unresolved_records")
    assert sorted(un[un.reason == "cluster_too_large"].record_id) == ["5", "6", "7", "8"]
    assert (st[[k for k in st.index if k[0] in "5678"]] == "rejected_cluster_too_large").all()
    assert_nothing_lost(p, 8)


# ---------------------------------------------------------------- stable ids
BASE_ROWS = [
    rec("1", email="a@x.com", updated_at="2024-01-01"),
    rec("2", email="a@x.com"),
    rec("3", email="b@x.com"),
    rec("4", email="b@x.com"),
]


def test_rerun_is_identical(project):
    p = project()
    p.write("crm", BASE_ROWS)
    p.write("shop", [rec("s1", email="A@x.com", customer_number="Z")])
    p.run()
    first = p.tables()
    p.run()
    second = p.tables()
    for t in first:
        if t != "identity_golden_report":
            pd.testing.assert_frame_equal(first[t], second[t])
    p.run()
    for t, df in p.tables().items():
        pd.testing.assert_frame_equal(df, second[t])
    rep = second["identity_golden_report"].set_index(["section", "metric"])["value"]
    assert rep[("dinmo_ids", "created")] == 0 and rep[("dinmo_ids", "unchanged")] == 2
    assert rep[("dinmo_ids", "run_number")] == 1


def test_bridge_keeps_oldest_id_and_records_merge(project):
    p = project()
    p.write("crm", BASE_ROWS[2:])  # cluster B first (run 1)
    p.write("shop", [])
    p.run()
    id_b = p.ids()[("crm", "3")]
    p.write("crm", BASE_ROWS)  # cluster A appears in run 2
    p.run()
    id_a = p.ids()[("crm", "1")]
    assert id_a != id_b and p.ids()[("crm", "3")] == id_b
    assert id_a == derive_id("crm", "1")
    p.write(
        "shop",
        [
            rec("x", email="a@x.com", phone="0611111111", first_name="Ann", customer_number=None),
        ],
    )
    p.write("crm", BASE_ROWS + [rec("5", email="b@x.com", phone="0611111111", first_name="Ann")])
    p.run()
    ids = p.ids()
    assert len(set(ids.values())) == 1 and set(ids.values()) == {id_b}  # B is older (run 1)
    hist = p.table("identity_dinmo_id_history")
    assert hist[["old_dinmo_id", "dinmo_id", "change", "run_number"]].values.tolist() == [
        [id_a, id_b, "merged", 3]
    ]
    rep = p.table("identity_golden_report").set_index(["section", "metric"])["value"]
    assert rep[("dinmo_ids", "merged_away")] == 1 and rep[("dinmo_ids", "created")] == 0
    p.run()
    pd.testing.assert_frame_equal(p.table("identity_dinmo_id_history"), hist)


def test_split_keeps_id_on_part_with_oldest_member(project):
    p = project()
    p.write(
        "crm",
        [
            rec("5", email="a@x.com", phone="0611111111", first_name="Ann"),
            rec("6", phone="0611111111", first_name="Ann"),
        ],
    )
    p.write("shop", [])
    p.run()
    old = p.ids()[("crm", "5")]
    # run 2: record 1 joins through the email (newer member, smaller key)
    p.write(
        "crm",
        [
            rec("1", email="a@x.com"),
            rec("5", email="a@x.com", phone="0611111111", first_name="Ann"),
            rec("6", phone="0611111111", first_name="Ann"),
        ],
    )
    p.run()
    assert set(p.ids().values()) == {old}
    # run 3: record 5 loses its email -> {1} and {5, 6} split; {5,6} holds the oldest member
    p.write(
        "crm",
        [
            rec("1", email="a@x.com"),
            rec("5", phone="0611111111", first_name="Ann"),
            rec("6", phone="0611111111", first_name="Ann"),
        ],
    )
    p.run()
    ids = p.ids()
    assert ids[("crm", "5")] == ids[("crm", "6")] == old
    assert ids[("crm", "1")] != old
    assert ids[("crm", "1")] == derive_id("crm", "1")
    hist = p.table("identity_dinmo_id_history")
    assert hist[["old_dinmo_id", "dinmo_id", "change"]].values.tolist() == [[old, ids[("crm", "1")], "split"]]
    rep = p.table("identity_golden_report").set_index(["section", "metric"])["value"]
    assert rep[("dinmo_ids", "split")] == 1 and rep[("dinmo_ids", "created")] == 1


def test_derived_id_never_reuses_an_old_id(project):
    p = project()
    p.write("crm", [rec("1", email="a@x.com"), rec("2", email="a@x.com")])
    p.write("shop", [])
    p.run()
    x = p.ids()[("crm", "1")]
    assert x == derive_id("crm", "1")
    p.write("crm", [rec("2", email="a@x.com")])  # record 1 leaves the input: {2} keeps x
    p.run()
    assert p.ids() == {("crm", "2"): x}
    p.write("crm", [rec("1", email="b@x.com"), rec("2", email="a@x.com")])  # 1 returns alone
    p.run()
    ids = p.ids()
    assert ids[("crm", "2")] == x
    assert ids[("crm", "1")] not in (x, None) and ids[("crm", "1")] == derive_id("crm", "1", 1)


# ---------------------------------------------------------------- golden record
def test_golden_strategies(project):
    p = project()
    p.pr["golden_record"] = {
        "default_strategy": "source_priority",
        "fields": {
            "phone": "most_recent",
            "first_name": "most_frequent",
            "last_name": "longest",
            "customer_number": "first_non_null",
        },
    }
    p.write(
        "crm",
        [
            rec(
                "1",
                email="A@x.com",
                phone="0611111111",
                first_name="Jo",
                last_name="Li",
                customer_number=None,
                updated_at="2024-01-01",
            )
        ],
    )
    p.write(
        "shop",
        [
            rec(
                "1",
                email="a@x.com",
                phone="0622222222",
                first_name="Joe",
                last_name="Lin",
                customer_number="C2",
                updated_at="2024-06-01",
            ),
            rec(
                "2",
                email="a@x.com",
                phone=None,
                first_name="Joe",
                last_name="Lindqvist",
                customer_number="C1",
                updated_at="2024-09-01",
            ),
            rec(
                "3",
                email="a@x.com",
                phone="0633333333",
                first_name="Jo",
                last_name=None,
                customer_number=None,
                updated_at="2023-01-01",
            ),
        ],
    )
    p.pr["identifiers"]["customer_number"].pop("max_values_per_profile")
    p.run()
    g = p.table("identity_golden")
    assert len(g) == 1
    row = g.iloc[0]
    assert row.email == "a@x.com"  # source_priority: crm, standardized
    assert row.phone == "+33622222222"  # most recent non-null
    assert row.first_name == "Jo"  # tie 2-2 -> best priority (crm)
    assert row.last_name == "Lindqvist"
    assert row.customer_number == "C2"  # earliest by updated_at among non-null
    assert (row.record_count, row.source_count, row.sources) == (4, 2, "crm,shop")
    assert str(row.first_seen)[:10] == "2023-01-01" and str(row.last_updated)[:10] == "2024-09-01"
    assert (
        row.representative_source,
        row.representative_entity_key_name,
        row.representative_entity_key_value,
    ) == ("crm", "id", "1")
    assert "updated_at" not in g.columns
    mi = p.table("identity_matched_ids")
    email = mi[mi.identifier_type == "email"].iloc[0]
    assert (email.value, email.record_count, email.sources) == ("a@x.com", 4, "crm,shop")


# ---------------------------------------------------------------- invariants
def test_unresolved_reasons_and_nothing_lost(project):
    p = project()
    p.write(
        "crm",
        [
            rec(None, email="a@x.com"),
            rec(" ", email="a@x.com"),
            rec("d", email="b@x.com"),
            rec("d", email="c@x.com"),
            rec("n", first_name="Nobody"),
            rec("e"),
            rec("b", email="test@test.com"),
            rec("ok", email="a@x.com"),
        ],
    )
    p.write("shop", [rec("ok", email="a@x.com")])
    p.pr["identifiers"].pop("first_name")
    p.pr["rules"] = p.pr["rules"][:2]
    p.run()
    un = p.table("identity_unresolved_records")
    got = sorted(zip(un.record_id.fillna("<null>"), un.reason, strict=True))
    assert got == sorted(
        [
            ("<null>", "missing_primary_key"),
            (" ", "missing_primary_key"),
            ("d", "duplicate_primary_key"),
            ("d", "duplicate_primary_key"),
            ("n", "no_usable_identifier"),
            ("e", "no_usable_identifier"),
            ("b", "only_blocked_values"),
        ]
    ) or got == sorted(
        [
            ("<null>", "missing_primary_key"),
            ("<null>", "missing_primary_key"),
            ("d", "duplicate_primary_key"),
            ("d", "duplicate_primary_key"),
            ("n", "no_usable_identifier"),
            ("e", "no_usable_identifier"),
            ("b", "only_blocked_values"),
        ]
    )
    assert_nothing_lost(p, 9)
    assert same_id(p, ("crm", "ok"), ("shop", "ok"))
    rep = p.table("identity_golden_report").set_index(["section", "scope", "metric"])["value"]
    assert rep[("totals", "all", "source_records")] == 9 and rep[("totals", "all", "missing_records")] == 7
    assert rep[("totals", "all", "matched_rate")] == pytest.approx(2 / 9)


def test_failure_mid_run_leaves_published_tables_intact(project, monkeypatch):
    p = project()
    p.write("crm", BASE_ROWS)
    p.write("shop", [])
    p.run()
    before = p.tables()
    p.write("crm", BASE_ROWS + [rec("9", email="z@x.com")])

    def boom(con, config):
        raise RuntimeError("golden failed")

    monkeypatch.setitem(pipeline.STAGE_FUNCTIONS, "golden", boom)
    with pytest.raises(RuntimeError):
        p.run()
    monkeypatch.undo()
    for t, df in p.tables().items():
        pd.testing.assert_frame_equal(df, before[t])
    # a failure inside publish itself rolls back the tables already replaced in the transaction
    cfg = p.config()
    for stage in pipeline.STAGES:
        pipeline.STAGE_FUNCTIONS[stage](p.con, cfg)
    p.con.execute("drop table pr_stage.identity_dinmo_id_history")
    with pytest.raises(duckdb.Error):
        pipeline.publish(p.con, cfg)
    for t, df in p.tables().items():
        pd.testing.assert_frame_equal(df, before[t])


def test_shuffled_input_gives_identical_outputs(project):
    rows = [
        rec(
            str(i),
            email=f"u{i % 7}@x.com" if i % 3 else None,
            phone=f"06111111{i % 5:02d}",
            first_name=["Ann", "Anne", "Bob", "Rob"][i % 4],
            customer_number=f"C{i % 4}" if i % 2 else None,
            updated_at=f"2024-01-{1 + i % 28:02d}",
        )
        for i in range(60)
    ]
    out = []
    for seed, sub in ((0, "a"), (1, "b")):
        p = project(sub)
        p.write("crm", pd.DataFrame(rows[:40]).sample(frac=1, random_state=seed).to_dict("records"))
        p.write("shop", pd.DataFrame(rows[40:]).sample(frac=1, random_state=seed).to_dict("records"))
        p.run()
        out.append(p.tables())
    for t in out[0]:
        pd.testing.assert_frame_equal(out[0][t], out[1][t])
    assert (out[0]["match_pairs"].status == "rejected_conflict_limit").any()
