"""Read a configured source (CSV, Parquet or DuckDB table) as a DuckDB relation, the same way everywhere."""

from __future__ import annotations

from pathlib import Path

import duckdb

from identity_pipeline.config.errors import ConfigError
from identity_pipeline.config.sources import SourceLocation


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def source_select_sql(location: SourceLocation, base_dir: Path) -> str:
    """SQL `FROM`-able expression for the source. CSV columns are read as text: standardizers decide types."""
    if location.table is not None:
        return ".".join(quote_ident(p) for p in location.table.split("."))
    path = location.resolved_path(base_dir)
    lit = "'" + str(path).replace("'", "''") + "'"
    if location.file_format() == "parquet":
        return f"read_parquet({lit})"
    return f"read_csv({lit}, header = true, all_varchar = true)"


def describe_source(
    con: duckdb.DuckDBPyConnection, location: SourceLocation, base_dir: Path, *, what: str
) -> list[str]:
    """Column names of the source, or one `ConfigError` naming the source and what is missing."""
    if location.path is not None:
        path = location.resolved_path(base_dir)
        if not path.is_file():
            raise ConfigError(f"{what}: file not found: {path}")
    try:
        rel = con.sql(f"select * from {source_select_sql(location, base_dir)} limit 0")
    except duckdb.Error as err:
        where = location.table or str(location.resolved_path(base_dir))
        raise ConfigError(f"{what}: cannot read {where}: {str(err).splitlines()[0]}") from None
    return list(rel.columns)
