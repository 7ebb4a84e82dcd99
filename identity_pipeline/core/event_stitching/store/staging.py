"""Reading the events of a window from the configured models into the staging tables (`window_events`,
`identifier_observations`), and reading them back for the engine."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from identity_pipeline.config.errors import ConfigError
from identity_pipeline.core.event_stitching.store.tables import (
    EVENT_KEY_SQL,
    STAGE,
    WindowOrderError,
    _key_exprs,
)
from identity_pipeline.core.event_stitching.store.windows import Window
from identity_pipeline.core.source_io import describe_source, quote_ident, source_select_sql
from identity_pipeline.core.storage import first_row, read_frame, transaction

_OFFSET_RE = r"\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|z|UTC|[+-]\d\d(:?\d\d)?)$"


def _ts_expr(col: str, col_type: str) -> str:
    """Event timestamp as naive UTC TIMESTAMP, whatever the source type."""
    q = quote_ident(col)
    t = col_type.upper()
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return f"timezone('UTC', {q})"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return f"cast({q} as TIMESTAMP)"
    v = f"cast({q} as VARCHAR)"
    return (
        f"(case when regexp_matches({v}, '{_OFFSET_RE}') "
        f"then timezone('UTC', try_cast({v} as TIMESTAMPTZ)) else try_cast({v} as TIMESTAMP) end)"
    )


def _model_columns(con: duckdb.DuckDBPyConnection, model: Any, base_dir: Path) -> dict[str, str]:
    what = f"event_stitching.models.{model.name}"
    names = describe_source(con, model, base_dir, what=what)
    rel = con.sql(f"select * from {source_select_sql(model, base_dir)} limit 0")
    types = dict(zip(rel.columns, [str(t) for t in rel.types], strict=True))
    needed = {"event_id": model.event_id, "timestamp": model.timestamp}
    needed.update({f"identifiers.{c}": c for c in model.identifiers})
    for place, col in needed.items():
        if col not in names:
            raise ConfigError(
                f"{what}.{place}: column {col!r} not found in model {model.name!r} "
                f"(columns: {', '.join(names)})"
            )
    return types


def _model_select(con: duckdb.DuckDBPyConnection, model: Any, base_dir: Path) -> tuple[str, list[str]]:
    """(SQL selecting model, event_id, event_ts, id_0..id_k, the identifier types of id_0..id_k)."""
    types = _model_columns(con, model, base_dir)
    ts = _ts_expr(model.timestamp, types[model.timestamp])
    cols = list(model.identifiers.items())
    idents = ", ".join(f"cast({quote_ident(c)} as VARCHAR) as id_{i}" for i, (c, _) in enumerate(cols))
    name_lit = "'" + model.name.replace("'", "''") + "'"
    sql = (
        f"select {name_lit} as model, cast({quote_ident(model.event_id)} as VARCHAR) as event_id, "
        f"{ts} as event_ts{', ' + idents if idents else ''} "
        f"from {source_select_sql(model, base_dir)}"
    )
    return sql, [str(t) for _, t in cols]


def validate_models(con: duckdb.DuckDBPyConnection, config: Any, base_dir: Path) -> None:
    """Every mapped column exists; every event has an id and a parseable timestamp. One scan per model."""
    for model in config.models:
        sql, _ = _model_select(con, model, base_dir)
        bad = first_row(
            con.execute(
                f"select count(*) filter (where event_ts is null), count(*) filter (where event_id is null), "
                f"any_value(event_id) filter (where event_ts is null) from ({sql})"
            )
        )
        assert bad is not None
        if bad[0]:
            raise ConfigError(
                f"event_stitching.models.{model.name}.timestamp: column {model.timestamp!r} has {bad[0]} "
                f"null or unparseable timestamp(s) (e.g. event {bad[2]!r}); expected a timestamp (UTC)"
            )
        if bad[1]:
            raise ConfigError(
                f"event_stitching.models.{model.name}.event_id: column {model.event_id!r} has {bad[1]} "
                f"null event id(s)"
            )


def window_events_sql(con: duckdb.DuckDBPyConnection, config: Any, base_dir: Path) -> tuple[str, str]:
    """(events SQL, long identifiers SQL), both with parameters `$window_start`, `$window_end`."""
    events_parts, long_parts = [], []
    for model in config.models:
        sql, id_types = _model_select(con, model, base_dir)
        sel = f"(select * from ({sql}) where event_ts >= $window_start and event_ts < $window_end)"
        events_parts.append(f"select model, event_id, event_ts from {sel}")
        for i, t in enumerate(id_types):
            t_lit = "'" + t.replace("'", "''") + "'"
            long_parts.append(
                f"select model, event_id, event_ts, {t_lit} as identifier_type, id_{i} as raw_value "
                f"from {sel} where id_{i} is not null"
            )
    events_sql = " union all ".join(events_parts)
    long_sql = (
        " union all ".join(long_parts)
        if long_parts
        else (
            "select ''::VARCHAR model, ''::VARCHAR event_id, NULL::TIMESTAMP event_ts, "
            "''::VARCHAR identifier_type, ''::VARCHAR raw_value limit 0"
        )
    )
    return events_sql, long_sql


def read_window_events(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window_start: datetime,
    window_end: datetime,
    base_dir: Path | str = ".",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, events_long) of one window, ordered by (event_ts, model, event_id[, identifier_type]).

    events: model, event_id, event_ts. events_long: model, event_id, event_ts, identifier_type, raw_value.
    A duplicated (model, event_id) inside the window is a data error (ConfigError naming the model).
    """
    events_sql, long_sql = window_events_sql(con, config, Path(base_dir))
    params = {"window_start": window_start, "window_end": window_end}
    events = read_frame(con, f"{events_sql} order by event_ts, model, event_id", params)
    dup = first_row(
        con.execute(
            f"select model, event_id, count(*) from ({events_sql}) group by all having count(*) > 1 limit 1",
            params,
        )
    )
    if dup:
        raise ConfigError(
            f"event_stitching.models.{dup[0]}.event_id: event id {dup[1]!r} appears {dup[2]} times in window "
            f"starting {window_start:%Y-%m-%d %H:%M}; event ids must be unique per model"
        )
    long = read_frame(
        con, f"{long_sql} order by event_ts, model, event_id, identifier_type, raw_value", params
    )
    return _normalize_events(events), _normalize_events(long)


def _normalize_events(df: pd.DataFrame) -> pd.DataFrame:
    if "event_ts" in df.columns:
        df["event_ts"] = pd.to_datetime(df["event_ts"]).astype("datetime64[us]")
    return df.reset_index(drop=True)


def stage_window(
    con: duckdb.DuckDBPyConnection, config: Any, window: Window, base_dir: Path | str = "."
) -> dict[str, int]:
    """Copy one window's events (and long identifiers) into `es_stage`, replacing that window's rows."""
    events_sql, long_sql = window_events_sql(con, config, Path(base_dir))
    params = {"window_start": window.start, "window_end": window.end, "window_key": window.key}
    with transaction(con):
        con.execute(f"delete from {STAGE}.window_events where window_key = ?", [window.key]).fetchall()
        con.execute(f"delete from {STAGE}.window_identifiers where window_key = ?", [window.key]).fetchall()
        con.execute(
            f"insert into {STAGE}.window_events select $window_key, model, event_id, event_ts "
            f"from ({events_sql}) order by event_ts, model, event_id",
            params,
        ).fetchall()
        con.execute(
            f"insert into {STAGE}.window_identifiers select $window_key, * from ({long_sql}) "
            f"order by event_ts, model, event_id, identifier_type, raw_value",
            params,
        ).fetchall()
        _log_stage(con, window.key, "window_events")
        row = first_row(
            con.execute(
                f"select count(*), count(distinct (model, event_id)) from {STAGE}.window_events "
                f"where window_key = ?",
                [window.key],
            )
        )
        assert row is not None
        if row[0] != row[1]:
            raise ConfigError(
                f"event_stitching: window {window.key} has {row[0] - row[1]} duplicated (model, event_id); "
                "event ids must be unique per model"
            )
    n_ids = first_row(
        con.execute(f"select count(*) from {STAGE}.window_identifiers where window_key = ?", [window.key])
    )
    return {"events": int(row[0]), "identifier_values": int(n_ids[0]) if n_ids else 0}


def staged_events(con: duckdb.DuckDBPyConnection, window_key: str) -> pd.DataFrame:
    """The window's events (model, event_id, event_ts, and `ekey`, see `EVENT_KEY_SQL`), in the engine's
    order."""
    events = read_frame(
        con,
        f"select model, event_id, event_ts, {EVENT_KEY_SQL} as ekey from {STAGE}.window_events "
        "where window_key = ? order by event_ts, model, event_id",
        [window_key],
    )
    return _normalize_events(events)


def stage_observations(con: duckdb.DuckDBPyConnection, config: Any, window_key: str) -> dict[str, int]:
    """Rules 1-2 for the staged window: replace its rows of `es_stage.identifier_observations`.

    Standardization and blocking run in Python once per distinct (identifier_type, raw_value) of the window
    (`observations.standardize_values`); the rows are joined to the result in DuckDB, so they never go
    through pandas. Same rows as `extract_observations` on the staged identifiers (tested). Returns the
    numbers of observations and of blocked ones."""
    from identity_pipeline.core.event_stitching.observations import standardize_values

    pairs = read_frame(
        con,
        f"select distinct identifier_type, raw_value from {STAGE}.window_identifiers "
        "where window_key = ? and raw_value is not null",
        [window_key],
    )
    std = standardize_values(pairs, config)
    with transaction(con):
        con.execute(
            f"delete from {STAGE}.identifier_observations where window_key = ?", [window_key]
        ).fetchall()
        con.register("__es_std", std)
        try:
            con.execute(
                f"""insert into {STAGE}.identifier_observations
                select i.window_key, i.model, i.event_id, i.event_ts, i.identifier_type, s.value, s.blocked
                from {STAGE}.window_identifiers i
                join (select cast(identifier_type as VARCHAR) identifier_type, cast(raw_value as VARCHAR)
                      raw_value, cast(value as VARCHAR) value, cast(blocked as BOOLEAN) blocked
                      from __es_std) s
                  on s.identifier_type = i.identifier_type and s.raw_value = i.raw_value
                where i.window_key = ?
                order by i.event_ts, i.model, i.event_id, i.identifier_type, s.value""",
                [window_key],
            ).fetchall()
        finally:
            con.unregister("__es_std")
        _log_stage(con, window_key, "identifier_observations")
        row = first_row(
            con.execute(
                f"select count(*), count(*) filter (where blocked) from {STAGE}.identifier_observations "
                "where window_key = ?",
                [window_key],
            )
        )
    return {"observations": int(row[0]) if row else 0, "blocked": int(row[1] or 0) if row else 0}


def _log_stage(con: duckdb.DuckDBPyConnection, window_key: str, step: str) -> None:
    table = "window_events" if step == "window_events" else "identifier_observations"
    con.execute(
        f"delete from {STAGE}.stage_log where window_key = ? and step = ?", [window_key, step]
    ).fetchall()
    con.execute(
        f"insert into {STAGE}.stage_log select ?, ?, count(*), now()::TIMESTAMP from {STAGE}.{table} "
        "where window_key = ?",
        [window_key, step, window_key],
    ).fetchall()


def require_staged(con: duckdb.DuckDBPyConnection, window_key: str, step: str) -> None:
    """Fail clearly when a step's input for the window was never staged (vs. a window with no events)."""
    row = first_row(
        con.execute(
            f"select count(*) from {STAGE}.stage_log where window_key = ? and step = ?", [window_key, step]
        )
    )
    if not row or not row[0]:
        raise WindowOrderError(
            f"event stitching window {window_key}: `{step}` has not been materialized for this window; "
            f"materialize it first (the whole `event_stitching` group runs the steps in order)."
        )


def staged_observations(con: duckdb.DuckDBPyConnection, window_key: str) -> pd.DataFrame:
    """The window's observations, with the integer keys the engine uses instead of hashing the strings:
    `ekey` (the event's, `EVENT_KEY_SQL`) and `vkey` (the value's, as in the live tables)."""
    df = read_frame(
        con,
        f"select model, event_id, event_ts, identifier_type, value, blocked, {EVENT_KEY_SQL} as ekey, "
        f"{_key_exprs('value_registry')['vkey']} as vkey from "
        f"{STAGE}.identifier_observations where window_key = ? "
        "order by event_ts, model, event_id, identifier_type, value",
        [window_key],
    )
    return _normalize_events(df)
