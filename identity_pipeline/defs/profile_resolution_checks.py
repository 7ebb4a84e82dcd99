"""Blocking asset checks of Profile Resolution. They read `pr_stage` (the stage outputs), BEFORE publishing.

Design: every check is `blocking=True` and targets the stage asset that produced the table, so a failing check
skips everything downstream, including `profile_resolution_published`: the `main` tables keep the last run
that passed every check (and the previous `identity_lookup` stays in place for stable ids).

* `<table>_schema`: pandera schema of each published table (profile_resolution_schemas.py).
* `every_record_exactly_once` (identity_lookup): each input row is in identity_lookup or
  identity_unresolved_records exactly once; the input row count is re-read from the sources themselves.
* `no_cluster_above_max_size` (identity_lookup): no dinmo_id holds more than `max_cluster_size` records.
* `match_pairs_final_schema` (identity_lookup): after clustering, every pair has a decided status.
* `match_pairs_reference_records` (match_pairs): both sides of every pair are accepted source records.
* `one_golden_row_per_dinmo_id` (identity_golden): golden ids == lookup ids, one row each, counts agree.

(No `from __future__ import annotations` here: Dagster must see the real `context` annotation type.)
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from identity_pipeline.config import PipelineConfig
from identity_pipeline.core.source_io import source_select_sql
from identity_pipeline.defs import profile_resolution_schemas as schemas
from identity_pipeline.defs.pandera_checks import pandera_table_check

SCHEMA = "pr_stage"

# published table -> asset that produces it in pr_stage
TABLE_ASSET = {
    "identity_lookup": "identity_lookup",
    "identity_unresolved_records": "identity_unresolved_records",
    "identity_dinmo_id_history": "identity_dinmo_id_history",
    "match_pairs": "match_pairs",
    "identity_golden": "identity_golden",
    "identity_matched_ids": "identity_matched_ids",
    "identity_golden_report": "identity_golden_report",
}


def _load(duckdb: DuckDBResource, table: str) -> pd.DataFrame:
    """The table as a DataFrame; VARCHAR columns that arrive as `object` (empty or all-null) become `str`."""
    with duckdb.get_connection() as con:
        df = con.execute(f"select * from {SCHEMA}.{table}").df()
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [SCHEMA, table],
            ).fetchall()
        )
    for col, kind in types.items():
        if kind == "VARCHAR" and df[col].dtype == object:
            df[col] = df[col].astype("str")
    return df


def _schema_check(asset: str, table: str, schema, name: str) -> dg.AssetChecksDefinition:
    """Blocking pandera check of `pr_stage.<table>`, attached to the stage asset that wrote it."""
    return pandera_table_check(
        asset=asset, schema=schema, load=lambda _context, duckdb: _load(duckdb, table), name=name
    )


def _result(problems: dict[str, int], **metadata) -> dg.AssetCheckResult:
    bad = {k: v for k, v in problems.items() if v}
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={**{k: int(v) for k, v in problems.items()}, **metadata},
        description=None if not bad else "violations: " + ", ".join(f"{k}={v}" for k, v in bad.items()),
    )


def build_profile_resolution_checks(config: PipelineConfig) -> list[dg.AssetChecksDefinition]:
    pr = config.profile_resolution
    assert pr is not None
    base = config.base_path()

    checks = [
        _schema_check(TABLE_ASSET[table], table, build(pr), f"{table}_schema")
        for table, build in schemas.SCHEMAS.items()
        if table != "match_pairs"
    ]
    # match_pairs: its own stage (status still open), then the final form after clustering
    checks.append(
        _schema_check(
            "match_pairs", "match_pairs", schemas.match_pairs_schema(pr, final=False), "match_pairs_schema"
        )
    )
    checks.append(
        _schema_check(
            "identity_lookup",
            "match_pairs",
            schemas.match_pairs_schema(pr, final=True),
            "match_pairs_final_schema",
        )
    )

    @dg.asset_check(
        asset="identity_lookup",
        blocking=True,
        additional_deps=["identity_unresolved_records"],
        description="Every input row appears exactly once: in identity_lookup or identity_unresolved_records "
        "(input rows counted again from the sources).",
    )
    def every_record_exactly_once(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        union = " union all ".join(f"select count(*) from {source_select_sql(s, base)}" for s in pr.sources)
        with duckdb.get_connection() as con:
            input_rows = int(con.execute(f"select sum(n) from ({union}) t(n)").fetchone()[0] or 0)
            row = con.execute(
                f"""
                with out as (
                    select source, record_id, 'lookup' as side from {SCHEMA}.identity_lookup
                    union all
                    select source, record_id, 'unresolved' from {SCHEMA}.identity_unresolved_records
                )
                select
                    (select count(*) from out),
                    (select count(*) from {SCHEMA}.identity_lookup),
                    (select count(*) from {SCHEMA}.identity_unresolved_records),
                    (select count(*) from (
                        select source, record_id from out where record_id is not null
                        group by all having count(*) > 1 and bool_or(side = 'lookup'))),
                    (select count(*) from {SCHEMA}.source_records r
                        anti join out o on o.source = r.source and o.record_id = r.record_id)
                """
            ).fetchone()
        out_rows, lookup, unresolved, twice, missing = (int(v) for v in row)
        return _result(
            {
                "row_count_difference": abs(out_rows - input_rows),
                "records_listed_twice": twice,
                "accepted_records_missing": missing,
            },
            input_rows=input_rows,
            lookup_rows=lookup,
            unresolved_rows=unresolved,
        )

    @dg.asset_check(
        asset="identity_lookup",
        blocking=True,
        description=f"No dinmo_id holds more than max_cluster_size ({pr.max_cluster_size}) records.",
    )
    def no_cluster_above_max_size(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            largest = int(
                con.execute(
                    f"select coalesce(max(n), 0) from (select count(*) as n from {SCHEMA}.identity_lookup "
                    "group by dinmo_id)"
                ).fetchone()[0]
            )
        limit = pr.max_cluster_size
        too_big = 0 if limit is None or largest <= limit else largest
        return _result(
            {"largest_cluster_above_limit": too_big},
            largest_cluster=largest,
            max_cluster_size=limit if limit is not None else -1,
        )

    @dg.asset_check(
        asset="match_pairs",
        blocking=True,
        description="Both records of every match pair are accepted source records (no dangling pair).",
    )
    def match_pairs_reference_records(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            row = con.execute(
                f"""
                select
                  (select count(*) from {SCHEMA}.match_pairs p anti join {SCHEMA}.source_records r
                     on r.source = p.source_a and r.record_id = p.record_id_a),
                  (select count(*) from {SCHEMA}.match_pairs p anti join {SCHEMA}.source_records r
                     on r.source = p.source_b and r.record_id = p.record_id_b),
                  (select count(*) from {SCHEMA}.match_pairs)
                """
            ).fetchone()
        return _result(
            {"dangling_side_a": int(row[0]), "dangling_side_b": int(row[1])}, match_pairs=int(row[2])
        )

    @dg.asset_check(
        asset="identity_golden",
        blocking=True,
        additional_deps=["identity_lookup"],
        description="One golden row per dinmo_id of identity_lookup (and none for unknown ids); record_count "
        "equals the lookup rows of the id.",
    )
    def one_golden_row_per_dinmo_id(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            row = con.execute(
                f"""
                with l as (select dinmo_id, count(*) as n from {SCHEMA}.identity_lookup group by dinmo_id),
                g as (select dinmo_id, count(*) as rows, max(record_count) as record_count
                      from {SCHEMA}.identity_golden group by dinmo_id)
                select
                  (select count(*) from g where rows > 1),
                  (select count(*) from l anti join g using (dinmo_id)),
                  (select count(*) from g anti join l using (dinmo_id)),
                  (select count(*) from l join g using (dinmo_id) where g.record_count <> l.n),
                  (select count(*) from l)
                """
            ).fetchone()
        return _result(
            {
                "duplicate_golden_rows": int(row[0]),
                "ids_without_golden_row": int(row[1]),
                "golden_rows_without_records": int(row[2]),
                "record_count_mismatch": int(row[3]),
            },
            dinmo_ids=int(row[4]),
        )

    return [
        *checks,
        every_record_exactly_once,
        no_cluster_above_max_size,
        match_pairs_reference_records,
        one_golden_row_per_dinmo_id,
    ]
