"""identity_pipeline: Profile Resolution and Event Stitching on Dagster + DuckDB.

Layout: `config/` (YAML → validated pydantic models), `core/` (pure engine, no Dagster import),
`defs/` (thin Dagster shell: assets, checks, resources, schedules), `generators/` (synthetic data),
`definitions.py` (the Dagster code location), `cli.py` (`identity-pipeline run|validate`).
"""
