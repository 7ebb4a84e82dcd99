"""The sample's documented ground truth (data/README.md, data/profiles/truth.csv) holds after a run."""

from __future__ import annotations

import pandas as pd


def _lookup(sample_run) -> dict[tuple[str, str], str]:
    df = sample_run.tables[0]["identity_lookup"]
    return {(r.source, r.record_id): r.dinmo_id for r in df.itertuples()}


def test_same_person_same_id_and_different_persons_different_ids(sample_run, truth):
    ids = _lookup(sample_run)
    resolved = truth[truth["expected"] == "resolved"]
    assert set(ids) == set(zip(resolved["source"], resolved["record_id"], strict=True))
    by_person = resolved.assign(
        dinmo_id=[ids[(s, r)] for s, r in zip(resolved["source"], resolved["record_id"], strict=True)]
    )
    assert (by_person.groupby("person_id")["dinmo_id"].nunique() == 1).all()
    assert (by_person.groupby("dinmo_id")["person_id"].nunique() == 1).all()
    assert by_person["dinmo_id"].nunique() == by_person["person_id"].nunique() == 24


def test_unresolved_reasons(sample_run, truth):
    got = sample_run.tables[0]["identity_unresolved_records"]
    got = sorted(zip(got["source"], got["record_id"].fillna(""), got["reason"], strict=True))
    exp = truth[truth["expected"] != "resolved"]
    expected = sorted(zip(exp["source"], exp["record_id"], exp["expected"], strict=True))
    expected.append(("app_users", "U-0008", "duplicate_primary_key"))  # two rows share that key
    assert got == sorted(expected)


def test_relatives_and_homonyms_not_merged(sample_run):
    ids = _lookup(sample_run)
    martins = {ids[("crm_contacts", "C002")], ids[("crm_contacts", "C003")], ids[("app_users", "U-0003")]}
    assert len(martins) == 3  # same home phone, last name and postal code
    assert ids[("crm_contacts", "C002")] == ids[("shop_customers", "10002")]
    assert ids[("app_users", "U-0011")] != ids[("crm_contacts", "C001")]  # the other Marie Dupont
    store = {ids[("shop_customers", str(k))] for k in range(10011, 10016)}
    assert len(store) == 5  # shared store landline is over-shared, not an identifier


def test_placeholders_do_not_merge_people(sample_run):
    ids = _lookup(sample_run)
    assert ids[("crm_contacts", "C007")] != ids[("shop_customers", "10008")]  # test@test.com, 0000000000
    assert (
        ids[("crm_contacts", "C007")] == ids[("shop_customers", "10017")]
    )  # same Paul Roux by name+postcode
    pairs = sample_run.tables[0]["match_pairs"]
    assert not pairs["anchor_value"].str.contains("test@test.com").any()


def test_conflict_limit_keeps_household_apart(sample_run):
    ids = _lookup(sample_run)
    assert ids[("crm_contacts", "C010")] == ids[("shop_customers", "10010")]
    assert ids[("crm_contacts", "C011")] != ids[("crm_contacts", "C010")]
    pairs = sample_run.tables[0]["match_pairs"]
    rejected = pairs[pairs["status"] == "rejected_conflict_limit"]
    assert set(rejected["record_id_a"]) | set(rejected["record_id_b"]) >= {"C010", "C011"}
    assert (rejected["anchor_value"] == "famille.garcia@gmail.com").all()


def test_noisy_duplicates_merged_with_expected_rules(sample_run):
    lk = sample_run.tables[0]["identity_lookup"].set_index(["source", "record_id"])
    assert lk.loc[("shop_customers", "10004"), "entered_by"] == "phone_and_first_name"  # 'Thomass'
    assert lk.loc[("app_users", "U-0004"), "cluster_size"] == 3  # 'Thomas Bernad', phone 0711223344
    assert lk.loc[("shop_customers", "10007"), "entered_by"] == "same_customer_number"
    assert lk.loc[("crm_contacts", "C007"), "entered_by"] == "name_and_postal_code"
    golden = sample_run.tables[0]["identity_golden"].set_index("dinmo_id")
    marie = golden.loc[lk.loc[("crm_contacts", "C001"), "dinmo_id"]]
    assert marie["record_count"] == 3 and marie["source_count"] == 3
    assert marie["representative_source"] == "crm_contacts"
    assert marie["representative_entity_key_name"] == "contact_id"
    assert marie["representative_entity_key_value"] == "C001"
    assert marie["email"] == "marie.dupont@gmail.com" and marie["phone"] == "+33612345678"


def test_report_totals(sample_run):
    rep = sample_run.tables[0]["identity_golden_report"]
    totals = rep[(rep["section"] == "totals") & (rep["scope"] == "all")].set_index("metric")["value"]
    assert totals["source_records"] == 47
    assert totals["golden_records"] == 24
    assert totals["missing_records"] == 6
    assert totals["resolution_rate"] == pd.Series([41 / 47]).iloc[0]
