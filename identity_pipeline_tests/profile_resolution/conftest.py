"""Small builders: CSV sources written to tmp_path + a config parsed by the real loader."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from identity_pipeline.config import PipelineConfig, parse_config
from identity_pipeline.core.profile_resolution import PUBLISHED_TABLES, run_all

CRM_FIELDS = {
    "email": "email",
    "phone": "phone",
    "first_name": "first_name",
    "last_name": "last_name",
    "customer_number": "customer_number",
    "updated_at": "updated_at",
}
BASE_PR = {
    "sources": [
        {
            "name": "crm",
            "path": "crm.csv",
            "primary_key": "id",
            "priority": 1,
            "order_by": "updated_at",
            "fields": CRM_FIELDS,
        },
        {
            "name": "shop",
            "path": "shop.csv",
            "primary_key": "id",
            "priority": 2,
            "order_by": "updated_at",
            "fields": CRM_FIELDS,
        },
    ],
    "identifiers": {
        "email": {
            "standardizer": "email",
            "blocked_values": ["test@test.com"],
            "blocked_patterns": ["^noreply@"],
        },
        "phone": {"standardizer": "phone", "default_region": "FR", "blocked_values": ["0000000000"]},
        "first_name": {"standardizer": "name"},
        "last_name": {"standardizer": "name"},
        "customer_number": {"standardizer": "exact", "max_values_per_profile": 1},
    },
    "rules": [
        {"name": "same_email", "conditions": [{"exact": "email"}]},
        {"name": "same_customer_number", "conditions": [{"exact": "customer_number"}]},
        {
            "name": "phone_and_first_name",
            "conditions": [
                {"exact": "phone"},
                {"fuzzy": {"field": "first_name", "scorer": "jaro_winkler", "threshold": 0.9}},
            ],
        },
    ],
    "golden_record": {"default_strategy": "source_priority"},
}
COLUMNS = ["id", "email", "phone", "first_name", "last_name", "customer_number", "updated_at"]


def write_csv(path: Path, rows: list[dict]) -> None:
    df = pd.DataFrame(rows, columns=COLUMNS if not rows or set(rows[0]) <= set(COLUMNS) else None)
    df.to_csv(path, index=False)


class Project:
    def __init__(self, root: Path):
        self.root = root
        self.pr = copy.deepcopy(BASE_PR)
        self.con = duckdb.connect(str(root / "identity.duckdb"))

    def write(self, name: str, rows: list[dict]) -> None:
        write_csv(self.root / f"{name}.csv", rows)

    def config(self) -> PipelineConfig:
        return parse_config({"profile_resolution": self.pr}, source="test.yaml", base_dir=self.root)

    def run(self) -> dict:
        return run_all(self.con, self.config())

    def table(self, name: str, schema: str = "main") -> pd.DataFrame:
        df = self.con.execute(f"select * from {schema}.{name}").df()
        return df.sort_values(list(df.columns), ignore_index=True, na_position="first") if len(df) else df

    def tables(self) -> dict[str, pd.DataFrame]:
        return {t: self.table(t) for t in PUBLISHED_TABLES}

    def ids(self) -> dict[tuple[str, str], str]:
        df = self.table("identity_lookup")
        return {(r.source, r.record_id): r.dinmo_id for r in df.itertuples()}


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Project]:
    made: list[Project] = []

    def make(sub: str = "p") -> Project:
        root = tmp_path / sub
        root.mkdir(exist_ok=True)
        p = Project(root)
        made.append(p)
        return p

    yield make
    for p in made:
        p.con.close()
