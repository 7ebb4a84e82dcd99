"""Read and validate source records: canonical fields as text, bad primary keys to `rejected_records`."""

from __future__ import annotations

from pathlib import Path

import duckdb

from identity_pipeline.config.errors import ConfigError
from identity_pipeline.config.profile_resolution import ProfileResolutionConfig, ProfileSourceConfig, SqlField
from identity_pipeline.core.source_io import describe_source, quote_ident, source_select_sql

SCHEMA = "pr_stage"


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def field_expression(spec: str | SqlField) -> str:
    return f"({spec.sql})" if isinstance(spec, SqlField) else quote_ident(spec)


def _where(src: ProfileSourceConfig, base_dir: Path) -> str:
    return src.table or str(src.resolved_path(base_dir))


def validate_sources(con: duckdb.DuckDBPyConnection, pr: ProfileResolutionConfig, base_dir: Path) -> None:
    """Every column / SQL expression / primary key binds against the real source, else one ConfigError."""
    for i, src in enumerate(pr.sources):
        what = f"profile_resolution.sources.{i} ({src.name})"
        columns = describe_source(con, src, base_dir, what=what)
        listing = ", ".join(columns)
        if src.primary_key not in columns:
            raise ConfigError(
                f"{what}.primary_key: column {src.primary_key!r} not found in {_where(src, base_dir)}; "
                f"existing columns: {listing}"
            )
        rel_sql = source_select_sql(src, base_dir)
        for field, spec in src.fields.items():
            if isinstance(spec, str):
                if spec not in columns:
                    raise ConfigError(
                        f"{what}.fields.{field}: column {spec!r} not found in {_where(src, base_dir)}; "
                        f"existing columns: {listing}"
                    )
                continue
            try:
                con.sql(f"select cast({field_expression(spec)} as varchar) from {rel_sql} limit 0").fetchall()
            except duckdb.Error as err:
                raise ConfigError(
                    f"{what}.fields.{field}: SQL expression {spec.sql!r} does not bind against "
                    f"{_where(src, base_dir)}: {str(err).splitlines()[0]}; existing columns: {listing}"
                ) from None


def _source_select(src: ProfileSourceConfig, fields: list[str], base_dir: Path) -> str:
    cols = [
        f"{sql_literal(src.name)} as source",
        f"nullif(trim(cast({quote_ident(src.primary_key)} as varchar)), '') is null as pk_missing",
        f"cast({quote_ident(src.primary_key)} as varchar) as record_id",
        f"{src.priority} as source_priority",
    ]
    if src.order_by is not None:
        expr = field_expression(src.fields[src.order_by])
        cols.append(f"try_cast(cast({expr} as varchar) as timestamp) as order_ts")
    else:
        cols.append("cast(null as timestamp) as order_ts")
    for f in fields:
        if f in src.fields:
            cols.append(
                f"nullif(trim(cast({field_expression(src.fields[f])} as varchar)), '') as {quote_ident(f)}"
            )
        else:
            cols.append(f"cast(null as varchar) as {quote_ident(f)}")
    return f"select {', '.join(cols)} from {source_select_sql(src, base_dir)}"


def build_source_records(con: duckdb.DuckDBPyConnection, pr: ProfileResolutionConfig, base_dir: Path) -> None:
    """pr_stage.source_records (+ integer `rid` in (source, record_id) order) and pr_stage.rejected_records.

    A null/blank key rejects the row (missing_primary_key); a key present on several rows of a source
    rejects every one of those rows (duplicate_primary_key): no row is silently preferred.
    """
    fields = pr.canonical_fields()
    union = " union all ".join(_source_select(s, fields, base_dir) for s in pr.sources)
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(f"create or replace temp table _pr_all as {union}")
    con.execute(
        f"""
        create or replace table {SCHEMA}.rejected_records as
        select source, case when pk_missing then null else record_id end as record_id,
               case when pk_missing then 'missing_primary_key' else 'duplicate_primary_key' end as reason,
               case when pk_missing then 'primary key is null or blank'
                    else 'primary key appears on ' || n || ' rows of the source; all of them are rejected'
               end as detail
        from (select *, count(*) over (partition by source, record_id) as n from _pr_all)
        where pk_missing or n > 1
        order by source, record_id, reason
        """
    )
    field_cols = ", ".join(quote_ident(f) for f in fields)
    con.execute(
        f"""
        create or replace table {SCHEMA}.source_records as
        select cast(row_number() over (order by source, record_id) - 1 as integer) as rid,
               source, record_id, source_priority, order_ts, {field_cols}
        from (select *, count(*) over (partition by source, record_id) as n from _pr_all)
        where not pk_missing and n = 1
        order by rid
        """
    )
    con.execute("drop table if exists _pr_all")
