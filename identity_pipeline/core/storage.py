"""Publishing tables so that a failed run never leaves half-written outputs.

Every write goes through one transaction: either all tables of a step are replaced, or none is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import duckdb
import pandas as pd

from identity_pipeline.core.source_io import quote_ident


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, ROLLBACK on any error (the previous tables stay as they were)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def table_exists(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


def replace_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame | str]) -> None:
    """Replace each named table by a DataFrame or a SELECT, all in one transaction.

    Names may be schema-qualified (`schema.table`); the schema is created if needed.
    """
    with transaction(con):
        for name, content in tables.items():
            if "." in name:
                con.execute(f"create schema if not exists {quote_ident(name.split('.', 1)[0])}")
            target = ".".join(quote_ident(p) for p in name.split("."))
            if isinstance(content, pd.DataFrame):
                con.register("__replace_df", content)
                con.execute(f"create or replace table {target} as select * from __replace_df")
                con.unregister("__replace_df")
            else:
                con.execute(f"create or replace table {target} as {content}")
