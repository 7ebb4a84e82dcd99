"""Profile Resolution stages: `stage_xxx(con, config) -> metrics` writing schema `pr_stage`, then `publish`.

Each stage reads the previous stages' `pr_stage` tables and replaces its own. `publish` copies every output
table into `main` in one transaction, so a run failing halfway leaves the last published tables intact
(and the previous `identity_lookup` stays available for stable ids).
"""

from __future__ import annotations

import time

import duckdb

from identity_pipeline.config import ConfigError, PipelineConfig
from identity_pipeline.config.profile_resolution import ProfileResolutionConfig
from identity_pipeline.core.profile_resolution import (
    clustering,
    golden,
    identifiers,
    matching,
    report,
    sources,
)
from identity_pipeline.core.profile_resolution import stable_ids as stable
from identity_pipeline.core.storage import replace_tables

SCHEMA = "pr_stage"
PUBLISHED_TABLES = (
    "identity_lookup",
    "identity_unresolved_records",
    "match_pairs",
    "identity_golden",
    "identity_matched_ids",
    "identity_golden_report",
    "identity_dinmo_id_history",
)
STAGES = (
    "source_records",
    "identifier_values",
    "match_pairs",
    "clusters",
    "golden",
    "matched_ids",
    "report",
)

Metrics = dict[str, float | int]


def _pr(config: PipelineConfig) -> ProfileResolutionConfig:
    if config.profile_resolution is None:
        raise ConfigError("profile_resolution is not configured")
    return config.profile_resolution


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"select count(*) from {SCHEMA}.{table}").fetchone()[0])


def validate_sources(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> None:
    """Raise ConfigError unless every configured column / expression / key binds against the real sources."""
    sources.validate_sources(con, _pr(config), config.base_path())


def stage_source_records(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> Metrics:
    validate_sources(con, config)
    sources.build_source_records(con, _pr(config), config.base_path())
    accepted, rejected = _count(con, "source_records"), _count(con, "rejected_records")
    return {"input_records": accepted + rejected, "source_records": accepted, "rejected_records": rejected}


def stage_identifier_values(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> Metrics:
    identifiers.build_identifier_values(con, _pr(config))
    rows = con.execute(f"select status, count(*) from {SCHEMA}.identifier_values group by status").fetchall()
    out: Metrics = {f"values_{s}": int(n) for s, n in rows}
    out["identifier_values"] = sum(int(n) for _, n in rows)
    return out


def stage_match_pairs(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> Metrics:
    return dict(matching.build_match_pairs(con, _pr(config)))


def stage_clusters(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> Metrics:
    out: Metrics = dict(clustering.build_clusters(con, _pr(config)))
    out.update(stable.assign_ids(con))
    out["lookup_records"] = _count(con, "identity_lookup")
    out["unresolved_records"] = _count(con, "identity_unresolved_records")
    out["dinmo_ids"] = int(
        con.execute(f"select count(distinct dinmo_id) from {SCHEMA}.identity_lookup").fetchone()[0]
    )
    return out


def stage_golden(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> Metrics:
    return dict(golden.build_golden(con, _pr(config)))


def stage_matched_ids(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> Metrics:
    _pr(config)
    return dict(report.build_matched_ids(con))


def stage_report(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> Metrics:
    out: Metrics = dict(report.build_report(con, _pr(config)))
    rows = con.execute(
        f"select metric, value from {SCHEMA}.identity_golden_report "
        "where section = 'totals' and scope = 'all'"
    ).fetchall()
    out.update({m: float(v) for m, v in rows if v is not None})
    return out


def publish(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> Metrics:
    """Copy every output table from pr_stage into main in ONE transaction (all or nothing)."""
    _pr(config)
    replace_tables(con, {f"main.{t}": f"select * from {SCHEMA}.{t}" for t in PUBLISHED_TABLES})
    return {
        f"rows_{t}": int(con.execute(f"select count(*) from main.{t}").fetchone()[0])
        for t in PUBLISHED_TABLES
    }


STAGE_FUNCTIONS = {
    "source_records": stage_source_records,
    "identifier_values": stage_identifier_values,
    "match_pairs": stage_match_pairs,
    "clusters": stage_clusters,
    "golden": stage_golden,
    "matched_ids": stage_matched_ids,
    "report": stage_report,
}


def run_all(con: duckdb.DuckDBPyConnection, config: PipelineConfig) -> dict[str, Metrics]:
    """Every stage in order, then publish. Returns metrics per stage (+ `publish`, + `seconds` per stage)."""
    out: dict[str, Metrics] = {}
    for name in STAGES:
        t0 = time.perf_counter()
        out[name] = STAGE_FUNCTIONS[name](con, config)
        out[name]["seconds"] = round(time.perf_counter() - t0, 3)
    out["publish"] = publish(con, config)
    return out
