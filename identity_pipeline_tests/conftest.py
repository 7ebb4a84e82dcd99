"""Suite-wide isolation: tests choose their own config and DuckDB file.

`make` exports IDENTITY_PIPELINE_CONFIG / IDENTITY_PIPELINE_DB for the demo; left in place they would point
every test at the shared `.dagster_home/identity.duckdb` (the env var wins over the config's `duckdb_path`),
so tests would see each other's windows. Session-scoped so it precedes module-scoped fixtures too; tests
that exercise the variables set them explicitly with `monkeypatch`.
"""

import os
from collections.abc import Iterator

import pytest

from identity_pipeline.config import CONFIG_ENV, DB_ENV


@pytest.fixture(scope="session", autouse=True)
def _isolated_pipeline_env() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in (CONFIG_ENV, DB_ENV) if k in os.environ}
    yield
    os.environ.update(saved)
