"""Publishing tables so that a failed run never leaves half-written outputs.

Every write goes through one transaction: either all tables of a step are replaced, or none is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

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


# Arrow types whose nulls `.df()` returns as pandas' nullable dtypes (Arrow -> pandas would give object/float)
_NULLABLE = {
    pa.bool_(): pd.BooleanDtype(),
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
}


def first_row(cursor: Any) -> tuple | None:
    """First row of a result, consuming it entirely (DuckDB 2 refuses new work on an unfinished result)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def read_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pd.DataFrame:
    """A query's rows as a DataFrame, through Arrow: ~5x faster than `.df()` on string columns (which builds
    a Python object per value), with `.df()`'s dtypes: nullable booleans/integers where a column has nulls,
    floats for decimals, object columns when there are no rows (tested against `.df()`)."""
    table = con.sql(sql, params=params).to_arrow_table()
    df = table.to_pandas()
    for name, col in zip(table.column_names, table.columns, strict=True):
        t = col.type
        if col.null_count and t in _NULLABLE:
            df[name] = col.to_pandas(types_mapper=_NULLABLE.get)
        elif pa.types.is_decimal(t):  # `.df()` gives floats, Arrow Python Decimals
            df[name] = col.cast(pa.float64()).to_pandas()
        elif not len(df) and (pa.types.is_string(t) or pa.types.is_large_string(t)):
            df[name] = pd.Series([], dtype=object)
    return df


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
