"""The pure engine: plain Python, pandas and DuckDB. Nothing in here imports Dagster."""
