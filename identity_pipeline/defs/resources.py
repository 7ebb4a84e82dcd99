"""Resources: the one DuckDB file both capabilities write to (single writer: see the in-process executor)."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from identity_pipeline.config import PipelineConfig


def duckdb_resource(config: PipelineConfig) -> DuckDBResource:
    path = config.database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=str(path), connection_config=config.duckdb_settings())
