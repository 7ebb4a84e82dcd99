"""Fixtures: the bundled sample's `event_stitching:` section on a fresh DuckDB file per test."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from identity_pipeline.config import PipelineConfig, parse_config
from identity_pipeline.core.event_stitching import store

DATA = Path(__file__).resolve().parents[2] / "data"
SAMPLE_WINDOWS = [f"2026-11-0{d}" for d in range(1, 8)]


def sample_section() -> dict:
    data = yaml.safe_load((DATA / "config.yaml").read_text())
    if "event_stitching" not in data:
        pytest.skip("data/config.yaml has no event_stitching section yet")
    return data["event_stitching"]


def make_config(db: Path, section: dict | None = None) -> PipelineConfig:
    return parse_config(
        {"duckdb_path": str(db), "event_stitching": section or sample_section()}, base_dir=DATA
    )


@pytest.fixture
def config(tmp_path: Path) -> PipelineConfig:
    return make_config(tmp_path / "es.duckdb")


def run_windows(
    defs: dg.Definitions, first: str, last: str | None = None, *, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    """Materialize the event_stitching job over [first, last] in ONE run (partition range tags)."""
    job = defs.resolve_job_def("event_stitching_job")
    tags = (
        {"dagster/partition": first}
        if last is None or last == first
        else {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    )
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), tags=tags, raise_on_error=raise_on_error
    )


TIMING = {"processed_at", "duration_seconds"}


def snapshot(config: PipelineConfig, undo: bool = True) -> dict[str, pd.DataFrame]:
    """Every published view, state and undo table, sorted, timing columns/rows aside. `undo=False` leaves out
    the undo logs and the windows' `undo_window`: they follow how the windows were grouped into commits (one
    undo log per commit, `store/undo.py`), not what the windows hold."""
    from dagster_duckdb import DuckDBResource

    out: dict[str, pd.DataFrame] = {}
    with DuckDBResource(database=str(config.database_path())).get_connection() as con:
        names = (
            [f"main.{v}" for v in store.PUBLISHED]
            + [f"{store.STATE}.{t}" for t in (*store.STATE_TABLES, "windows", "value_dictionary")]
            + ([f"{store.STATE}.undo_{t}" for t in store.STATE_TABLES] if undo else [])
            + [f"{store.OUT}.{t}" for t in ("attribution", "audit_events", "run_metrics")]
        )
        for name in names:
            df = con.execute(f"select * from {name}").df()
            df = df.drop(columns=[c for c in df.columns if c in TIMING or (not undo and c == "undo_window")])
            if "metric" in df.columns:
                df = df[df["metric"] != "duration_seconds"]
            df = df.sort_values(list(df.columns), na_position="first", kind="stable").reset_index(drop=True)
            out[name] = df
    return out
