"""All Profile Resolution assets and blocking checks, materialized on the bundled sample."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from identity_pipeline.core.profile_resolution.pipeline import PUBLISHED_TABLES
from identity_pipeline.defs.profile_resolution import GROUP, JOB_NAME, PUBLISH_ASSET

ASSETS = {
    "profile_sources",
    "standardized_identifiers",
    "match_pairs",
    "identity_lookup",
    "identity_unresolved_records",
    "identity_dinmo_id_history",
    "identity_golden",
    "identity_matched_ids",
    "identity_golden_report",
    PUBLISH_ASSET,
}
INVARIANT_CHECKS = {
    "every_record_exactly_once",
    "no_cluster_above_max_size",
    "match_pairs_reference_records",
    "one_golden_row_per_dinmo_id",
    "match_pairs_final_schema",
}


@pytest.mark.parametrize("run", [0, 1], ids=["first", "rerun"])
def test_every_asset_and_check_succeeds(sample_run, run):
    res = sample_run.results[run]
    assert res.success
    materialized = {e.asset_key.to_user_string() for e in res.get_asset_materialization_events()}
    assert materialized == ASSETS
    evals = res.get_asset_check_evaluations()
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in evals if not e.passed]
    assert failed == []
    names = {e.check_name for e in evals}
    assert names >= INVARIANT_CHECKS
    assert {f"{t}_schema" for t in PUBLISHED_TABLES} <= names


def test_group_job_and_metadata(sample_run):
    defs = sample_run.defs
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys >= ASSETS
    assert all(graph.get(dg.AssetKey(k)).group_name == GROUP for k in ASSETS)
    assert defs.resolve_job_def(JOB_NAME) is not None
    events = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in sample_run.results[0].get_asset_materialization_events()
    }
    assert events["identity_lookup"]["dagster/row_count"].value == 41
    assert events["identity_lookup"]["largest_cluster"].value == 3
    assert events["identity_lookup"]["resolution_rate"].value == pytest.approx(41 / 47)
    assert events["identity_golden"]["dagster/row_count"].value == 24
    assert events["identity_dinmo_id_history"]["ids_created"].value == 24
    rerun = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in sample_run.results[1].get_asset_materialization_events()
    }
    assert rerun["identity_dinmo_id_history"]["ids_created"].value == 0
    assert rerun["identity_dinmo_id_history"]["ids_unchanged"].value == 24


def test_published_tables_exist(sample_run):
    tables = sample_run.tables[0]
    assert set(tables) == set(PUBLISHED_TABLES)
    assert len(tables["identity_lookup"]) == 41
    assert len(tables["identity_unresolved_records"]) == 6
    assert len(tables["identity_golden"]) == 24


def _without_run_delta(df: pd.DataFrame) -> pd.DataFrame:
    """The report's `dinmo_ids` section compares with the previous run (created / unchanged): drop it."""
    return df[df["section"] != "dinmo_ids"].reset_index(drop=True)


def test_rerun_gives_identical_tables(sample_run):
    first, second = sample_run.tables
    for t in PUBLISHED_TABLES:
        a, b = first[t], second[t]
        if t == "identity_golden_report":
            a, b = _without_run_delta(a), _without_run_delta(b)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=t)
    assert len(second["identity_dinmo_id_history"]) == 0
    ids = second["identity_golden_report"].query("section == 'dinmo_ids'").set_index("metric")["value"]
    assert ids["created"] == 0 and ids["merged_away"] == 0 and ids["split"] == 0 and ids["unchanged"] == 24
