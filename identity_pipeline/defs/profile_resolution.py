"""Profile Resolution as Dagster assets: one asset per engine stage, then one publishing asset.

Every stage asset calls one `identity_pipeline.core.profile_resolution.pipeline.stage_*` function on a
connection opened inside the asset body. Stages write schema `pr_stage`; `profile_resolution_published`
copies every output table into `main` in one transaction. All checks (profile_resolution_checks.py) are
blocking and read `pr_stage`, so a failed check stops the run before anything is published: consumers of the
`main` tables only ever see a run whose every check passed.

Graph:
    profile_sources -> standardized_identifiers -> match_pairs
      -> [identity_lookup, identity_unresolved_records, identity_dinmo_id_history]   (one multi-asset)
      -> identity_golden, identity_matched_ids -> identity_golden_report -> profile_resolution_published

Note: the `match_pairs` asset holds the candidate pairs with their rule and scores; the clustering step
(`identity_lookup` multi-asset) then fills in each pair's `status` (applied / rejected_*).
"""

from collections.abc import Mapping

import dagster as dg
from dagster_duckdb import DuckDBResource

from identity_pipeline.config import PipelineConfig
from identity_pipeline.core.profile_resolution import pipeline as engine
from identity_pipeline.defs.profile_resolution_checks import build_profile_resolution_checks

GROUP = "profile_resolution"
SCHEMA = engine.SCHEMA
JOB_NAME = "profile_resolution_job"
PUBLISH_ASSET = "profile_resolution_published"
KINDS = {"duckdb"}


def numeric_metadata(metrics: Mapping[str, object], **extra: object) -> dict[str, object]:
    """Keep numeric values only (the UI plots them over runs); bools become ints."""
    out: dict[str, object] = {}
    for key, value in {**metrics, **extra}.items():
        if isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, int | float):
            out[key] = value
    return out


def _count(con, table: str) -> int:
    return int(con.execute(f"select count(*) from {SCHEMA}.{table}").fetchone()[0])


def _md_preview(con, sql: str) -> dg.MetadataValue:
    df = con.execute(sql).df()
    return dg.MetadataValue.md(df.to_markdown(index=False) if len(df) else "_(empty)_")


def build_profile_resolution_defs(config: PipelineConfig) -> dg.Definitions:
    """Assets, blocking checks and `profile_resolution_job` for the `profile_resolution` config section."""
    assert config.profile_resolution is not None, "profile_resolution is not configured"

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        description="Source records read with canonical field names (pr_stage.source_records); rows with a "
        "missing or duplicate primary key go to pr_stage.rejected_records. Validates the config first.",
    )
    def profile_sources(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            metrics = engine.stage_source_records(con, config)
            per_source = con.execute(
                f"select source, count(*) as n from {SCHEMA}.source_records group by source order by source"
            ).fetchall()
        extra = {f"records_{s}": int(n) for s, n in per_source}
        return dg.MaterializeResult(
            metadata=numeric_metadata(metrics, **extra, **{"dagster/row_count": metrics["source_records"]})
        )

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        deps=[profile_sources],
        description="Standardized identifier values (pr_stage.identifier_values) with status usable / "
        "blocked / over_shared.",
    )
    def standardized_identifiers(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            metrics = engine.stage_identifier_values(con, config)
        return dg.MaterializeResult(
            metadata=numeric_metadata(metrics, **{"dagster/row_count": metrics.get("identifier_values", 0)})
        )

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        deps=[standardized_identifiers],
        description="Match pairs (pr_stage.match_pairs): records sharing a rule's anchor and passing its "
        "fuzzy conditions, with the first rule they satisfy. Status is decided by clustering.",
    )
    def match_pairs(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            metrics = engine.stage_match_pairs(con, config)
            rows = _count(con, "match_pairs")
        return dg.MaterializeResult(metadata=numeric_metadata(metrics, **{"dagster/row_count": rows}))

    @dg.multi_asset(
        name="resolve_identities",
        group_name=GROUP,
        specs=[
            dg.AssetSpec(
                "identity_lookup",
                deps=[match_pairs],
                kinds=KINDS,
                description="One row per resolved record: its stable dinmo_id, how it entered, cluster size.",
            ),
            dg.AssetSpec(
                "identity_unresolved_records",
                deps=[match_pairs],
                kinds=KINDS,
                description="Records left out of resolution, with a reason.",
            ),
            dg.AssetSpec(
                "identity_dinmo_id_history",
                deps=[match_pairs],
                kinds=KINDS,
                description="dinmo_id merges and splits across runs (old id -> surviving id).",
            ),
        ],
    )
    def resolve_identities(duckdb: DuckDBResource):
        with duckdb.get_connection() as con:
            metrics = engine.stage_clusters(con, config)
            lookup = _count(con, "identity_lookup")
            unresolved = _count(con, "identity_unresolved_records")
            history = _count(con, "identity_dinmo_id_history")
            largest = con.execute(f"select coalesce(max(cluster_size), 0) from {SCHEMA}.identity_lookup")
            largest = int(largest.fetchone()[0])
            reasons = con.execute(
                f"select reason, count(*) from {SCHEMA}.identity_unresolved_records group by reason"
            ).fetchall()
            history_run = con.execute(
                f"select change, count(*) from {SCHEMA}.identity_dinmo_id_history "
                f"where run_number = (select max(run_number) from {SCHEMA}.identity_dinmo_id_history) "
                "group by change"
            ).fetchall()
        total = lookup + unresolved
        yield dg.MaterializeResult(
            asset_key="identity_lookup",
            metadata=numeric_metadata(
                metrics,
                **{
                    "dagster/row_count": lookup,
                    "resolution_rate": lookup / total if total else 0.0,
                    "largest_cluster": largest,
                },
            ),
        )
        yield dg.MaterializeResult(
            asset_key="identity_unresolved_records",
            metadata=numeric_metadata(
                {f"unresolved_{r}": int(n) for r, n in reasons},
                **{"dagster/row_count": unresolved, "unresolved_rate": unresolved / total if total else 0.0},
            ),
        )
        yield dg.MaterializeResult(
            asset_key="identity_dinmo_id_history",
            metadata=numeric_metadata(
                {k: v for k, v in metrics.items() if k.startswith("ids_")},
                **{f"last_run_{c}": int(n) for c, n in history_run},
                **{"dagster/row_count": history},
            ),
        )

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        deps=["identity_lookup"],
        description="Golden record: one row per dinmo_id with the surviving value of each canonical field.",
    )
    def identity_golden(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            metrics = engine.stage_golden(con, config)
            rows = _count(con, "identity_golden")
            multi = con.execute(f"select count(*) from {SCHEMA}.identity_golden where record_count > 1")
            multi = int(multi.fetchone()[0])
            preview = _md_preview(
                con, f"select * from {SCHEMA}.identity_golden order by record_count desc, dinmo_id limit 10"
            )
        return dg.MaterializeResult(
            metadata={
                **numeric_metadata(metrics, **{"dagster/row_count": rows, "profiles_with_duplicates": multi}),
                "preview": preview,
            }
        )

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        deps=["identity_lookup"],
        description="Identifier values held by each dinmo_id (type, standardized value, records, sources).",
    )
    def identity_matched_ids(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            metrics = engine.stage_matched_ids(con, config)
            rows = _count(con, "identity_matched_ids")
        return dg.MaterializeResult(metadata=numeric_metadata(metrics, **{"dagster/row_count": rows}))

    @dg.asset(
        group_name=GROUP,
        kinds=KINDS,
        deps=[
            identity_golden,
            identity_matched_ids,
            "identity_unresolved_records",
            "identity_dinmo_id_history",
        ],
        description="Run summary (long form: section, scope, metric, value): resolution rates per source "
        "and rule, identifier completeness, ids created / merged / split / unchanged.",
    )
    def identity_golden_report(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            metrics = engine.stage_report(con, config)
            rows = _count(con, "identity_golden_report")
            ids = dict(
                con.execute(
                    f"select metric, value from {SCHEMA}.identity_golden_report where section = 'dinmo_ids'"
                ).fetchall()
            )
            preview = _md_preview(
                con,
                "select section, scope, metric, round(value, 4) as value "
                f"from {SCHEMA}.identity_golden_report "
                "where section in ('totals', 'dinmo_ids') order by section, metric",
            )
        extra = {f"ids_{k}": float(v) for k, v in ids.items() if v is not None}
        return dg.MaterializeResult(
            metadata={
                **numeric_metadata(metrics, **extra, **{"dagster/row_count": rows}),
                "summary": preview,
            }
        )

    @dg.asset(
        name=PUBLISH_ASSET,
        group_name=GROUP,
        kinds=KINDS,
        deps=[
            identity_golden_report,
            identity_golden,
            identity_matched_ids,
            "identity_lookup",
            "identity_unresolved_records",
            "identity_dinmo_id_history",
            match_pairs,
        ],
        description="Publishes every Profile Resolution output from pr_stage into main in ONE transaction: "
        + ", ".join(engine.PUBLISHED_TABLES)
        + ". Runs only if every (blocking) check upstream passed.",
    )
    def profile_resolution_published(duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            metrics = engine.publish(con, config)
        return dg.MaterializeResult(
            metadata=numeric_metadata(
                metrics, **{"dagster/row_count": metrics.get("rows_identity_golden", 0)}
            )
        )

    assets = [
        profile_sources,
        standardized_identifiers,
        match_pairs,
        resolve_identities,
        identity_golden,
        identity_matched_ids,
        identity_golden_report,
        profile_resolution_published,
    ]
    job = dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.groups(GROUP),
        description="Profile Resolution: every stage, its blocking checks, then publish.",
    )
    return dg.Definitions(assets=assets, asset_checks=build_profile_resolution_checks(config), jobs=[job])
