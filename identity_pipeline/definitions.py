"""Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here.

The config file comes from `IDENTITY_PIPELINE_CONFIG` (default `data/config.yaml`); the DuckDB file from
`IDENTITY_PIPELINE_DB` or the config's `duckdb_path`.
"""

from identity_pipeline.config import load_config
from identity_pipeline.defs import build_definitions

defs = build_definitions(load_config())
