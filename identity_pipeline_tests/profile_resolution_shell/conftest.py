"""A tmp copy of the bundled sample (data/profiles + the profile_resolution part of data/config.yaml),
materialized twice through the Dagster definitions (ephemeral instance)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml

from identity_pipeline.config import PipelineConfig, load_config
from identity_pipeline.core.profile_resolution.pipeline import PUBLISHED_TABLES
from identity_pipeline.defs import build_definitions

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"


def make_sample(root: Path) -> Path:
    """Copy the sample into `root`; returns the config path (profile_resolution only, DuckDB inside root)."""
    shutil.copytree(DATA / "profiles", root / "profiles")
    raw = yaml.safe_load((DATA / "config.yaml").read_text())
    cfg = {"duckdb_path": "sample.duckdb", "profile_resolution": raw["profile_resolution"]}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


def read_tables(db: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for t in PUBLISHED_TABLES:
            df = con.execute(f"select * from main.{t}").df()
            out[t] = df.sort_values(list(df.columns), ignore_index=True) if len(df) else df
        return out
    finally:
        con.close()


@dataclass
class Materialized:
    root: Path
    config_path: Path
    config: PipelineConfig
    db: Path
    defs: dg.Definitions
    results: list = field(default_factory=list)
    tables: list[dict[str, pd.DataFrame]] = field(default_factory=list)

    def materialize(self):
        res = dg.materialize(
            [*self.defs.assets, *self.defs.asset_checks],
            resources={"duckdb": self.defs.resources["duckdb"]},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        self.results.append(res)
        self.tables.append(read_tables(self.db))
        return res


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "IDENTITY_PIPELINE_DB")}
    env.update(extra)
    return env


DEFINITIONS_PROBE = (
    "from identity_pipeline.definitions import defs\n"
    "g = defs.resolve_asset_graph()\n"
    "print(sorted(k.to_user_string() for k in g.get_all_asset_keys()))\n"
    "print(defs.resolve_job_def('profile_resolution_job').name)\n"
)


@dataclass
class Background:
    """Subprocesses started early (they mostly wait on imports) and collected by test_subprocess.py."""

    root: Path
    cli_db: Path
    probe_db: Path
    cli_run: subprocess.Popen
    definitions: subprocess.Popen


@pytest.fixture(scope="session")
def background(tmp_path_factory) -> Background:
    root = tmp_path_factory.mktemp("pr_subprocess")
    cfg = make_sample(root)
    cli_db, probe_db = root / "cli" / "identity.duckdb", root / "probe.duckdb"
    common = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": REPO}
    cli_run = subprocess.Popen(
        [sys.executable, "-m", "identity_pipeline.cli", "run", "--config", str(cfg)],
        env=_env(IDENTITY_PIPELINE_DB=str(cli_db)),
        **common,
    )
    definitions = subprocess.Popen(
        [sys.executable, "-c", DEFINITIONS_PROBE],
        env=_env(IDENTITY_PIPELINE_CONFIG=str(cfg), IDENTITY_PIPELINE_DB=str(probe_db)),
        **common,
    )
    yield Background(root, cli_db, probe_db, cli_run, definitions)
    for p in (cli_run, definitions):
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, background) -> Materialized:
    root = tmp_path_factory.mktemp("pr_sample")
    config_path = make_sample(root)
    config = load_config(config_path)
    m = Materialized(root, config_path, config, config.database_path(), build_definitions(config))
    m.materialize()
    m.materialize()  # rerun: must change nothing
    return m


@pytest.fixture(scope="session")
def truth() -> pd.DataFrame:
    return pd.read_csv(DATA / "profiles" / "truth.csv", dtype=str, keep_default_na=False)
