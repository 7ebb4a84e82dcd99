"""DuckDB persistence for Event Stitching: versioned graph state, per-window outputs, published views.

No Dagster import: the Dagster shell (`identity_pipeline/defs/event_stitching.py`) and the tests call these
functions with a DuckDB connection.

Design (see `docs/event-stitching-storage.md`):

* Graph state lives in schema `es_state` as **versioned** rows. Every row carries `version_window_start` /
  `version_window_key` (the window that wrote it) and `is_deleted` (a tombstone). "State before window N" is
  the latest version per key among rows written by windows strictly before N; a window writes only the rows it
  changed (a diff of the loaded subgraph against the engine's result).
* `live_<name>` tables hold the state after the last window processed in order (`live_as_of.valid_before`),
  kept current in each window's transaction, so a window reads the current graph, not the version history;
  they are rebuilt from the versions when a window is re-run (`ensure_live`).
* A window loads only what its rules read (the memberships of `state.profile_wide_types` and of its values;
  no redirects, no merged profiles); the rest follows the window's merges in the store
  (`carry_unloaded_rows`).
* Re-running window N deletes the rows written by window N (state versions and per-window outputs) and inserts
  the new ones in **one transaction**. Rows of later windows stay; if window N's state changed, later windows
  are marked `outdated` and must be re-run in order before anything newer is processed.
* Per-window outputs (attribution, audit events, run metrics) are tables in `es_output` keyed by `window_key`.
  The names DinMo documents are **views** in `main` over those tables and over the latest state versions, so
  `resolved_dinmo_stitched_profile_id` and value statuses are always current without rewriting history.
* A window's cost: one filtered read of its events, semi-joins of the state tables against the window's
  values, a diff of the touched subgraph, and small inserts. Global metrics (`known_profile_share`,
  `active_conflicts`) are maintained incrementally (running totals per window and a small versioned table
  of conflicted values).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from identity_pipeline.config.errors import ConfigError
from identity_pipeline.core.source_io import describe_source, quote_ident, source_select_sql
from identity_pipeline.core.storage import read_frame, table_exists, transaction

STATE = "es_state"
OUT = "es_output"
STAGE = "es_stage"

ATTRIBUTION_VIEW = "identity_event_profile_attribution"
PROFILES_VIEW = "identity_event_profiles"
VALUES_VIEW = "identity_event_profile_identifier_values"
REDIRECTS_VIEW = "identity_event_profile_redirects"
AUDIT_VIEW = "identity_event_profile_audit_events"
METRICS_VIEW = "identity_event_profile_run_metrics"
PUBLISHED = (ATTRIBUTION_VIEW, PROFILES_VIEW, VALUES_VIEW, REDIRECTS_VIEW, AUDIT_VIEW, METRICS_VIEW)

# Columns of the state frames exchanged with the engine (GraphState) and their DuckDB types.
STATE_COLUMNS: dict[str, dict[str, str]] = {
    "profiles": {
        "dinmo_stitched_profile_id": "VARCHAR",
        "created_sequence": "BIGINT",
        "created_at": "TIMESTAMP",
        "first_seen_at": "TIMESTAMP",
        "last_seen_at": "TIMESTAMP",
        "status": "VARCHAR",
        "merged_to_dinmo_stitched_profile_id": "VARCHAR",
        "event_count": "BIGINT",
        "is_known": "BOOLEAN",
    },
    "profile_values": {
        "dinmo_stitched_profile_id": "VARCHAR",
        "identifier_type": "VARCHAR",
        "value": "VARCHAR",
        "status": "VARCHAR",
        "first_seen_at": "TIMESTAMP",
        "last_seen_at": "TIMESTAMP",
        "event_count": "BIGINT",
    },
    "value_registry": {
        "identifier_type": "VARCHAR",
        "value": "VARCHAR",
        "first_seen_at": "TIMESTAMP",
        "last_seen_at": "TIMESTAMP",
        "quarantined": "BOOLEAN",
        "quarantined_at": "TIMESTAMP",
        "event_count": "BIGINT",
    },
    "redirects": {
        "from_id": "VARCHAR",
        "to_id": "VARCHAR",
        "merged_at": "TIMESTAMP",
        "evidence_model": "VARCHAR",
        "evidence_event_id": "VARCHAR",
        "window_key": "VARCHAR",
    },
}
STATE_KEYS: dict[str, list[str]] = {
    "profiles": ["dinmo_stitched_profile_id"],
    "profile_values": ["dinmo_stitched_profile_id", "identifier_type", "value"],
    "value_registry": ["identifier_type", "value"],
    "redirects": ["from_id"],
}
# `live_<name>` tables hold the state left by the last processed window (no versions): what the next window
# reads. Same columns as the versioned tables, plus the versioned table of conflicting values.
LIVE_COLUMNS: dict[str, dict[str, str]] = {
    **STATE_COLUMNS,
    "value_conflicts": {
        "identifier_type": "VARCHAR",
        "value": "VARCHAR",
        "active_profiles": "BIGINT",
        "is_conflict": "BOOLEAN",
        "expires_at": "TIMESTAMP",
    },
}
LIVE_KEYS: dict[str, list[str]] = {**STATE_KEYS, "value_conflicts": ["identifier_type", "value"]}
# 64-bit hash keys stored beside the rows of the big live tables (`pkey` of a profile id, `vkey` of an
# (identifier_type, value)). The live tables grow with history and DuckDB has no index join, so every lookup
# is a scan: joining on one integer column instead of hashing and comparing the strings of every row makes
# those scans several times cheaper. Keys are exact: `load_subgraph` checks that no live row shares a key
# with a different window value, and `save_window` that no new profile shares one with another profile
# (either fails loudly), so a key names one value / one profile. See docs/event-stitching-storage.md.
LIVE_HASH_KEYS: dict[str, tuple[str, ...]] = {
    "profiles": ("pkey",),
    "profile_values": ("pkey", "vkey"),
    "value_registry": ("vkey",),
}
_HASH_KEY_COLUMNS = {k for keys in LIVE_HASH_KEYS.values() for k in keys}
# 64-bit key of an event within its window (`staged_events`, `staged_observations`); used by the engine only
# when it names one event (`_event_keys_usable`), else the engine hashes the strings
EVENT_KEY_SQL = "hash(model, event_id)"
# DuckDB's hash() is not promised to be stable across versions: the live tables store this probe and are
# rebuilt (`ensure_live`) when the running DuckDB hashes it differently.
_HASH_PROBE = "hash('identity_pipeline', 'live keys')"
ATTRIBUTION_COLUMNS: dict[str, str] = {
    "model": "VARCHAR",
    "event_id": "VARCHAR",
    "event_ts": "TIMESTAMP",
    "window_key": "VARCHAR",
    "dinmo_stitched_profile_id": "VARCHAR",
    "status": "VARCHAR",
    "reason": "VARCHAR",
    "decided_by_identifier_type": "VARCHAR",
    "decided_by_value": "VARCHAR",
}
VERSION_COLUMNS = (
    "version_window_start TIMESTAMP NOT NULL, version_window_key VARCHAR NOT NULL, "
    "is_deleted BOOLEAN NOT NULL"
)


def _first(cursor: Any) -> tuple | None:
    """First row of a result, consuming it entirely (DuckDB 2 refuses new work on an unfinished result)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


class WindowOrderError(RuntimeError):
    """A window was asked for before its predecessor was processed (or after it became outdated)."""


# --------------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    key: str
    start: datetime
    end: datetime


def _to_datetime(value: Any) -> datetime:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def window_length(config: Any) -> timedelta:
    return timedelta(hours=1) if str(config.window) == "hourly" else timedelta(days=1)


def window_key_for(config: Any, start: datetime) -> str:
    """Dagster's partition key format: `YYYY-MM-DD` (daily) or `YYYY-MM-DD-HH:MM` (hourly)."""
    return start.strftime("%Y-%m-%d-%H:%M" if str(config.window) == "hourly" else "%Y-%m-%d")


def window_for_key(config: Any, key: str) -> Window:
    fmt = "%Y-%m-%d-%H:%M" if str(config.window) == "hourly" else "%Y-%m-%d"
    try:
        start = datetime.strptime(key, fmt)
    except ValueError:
        raise ConfigError(f"event_stitching: window key {key!r} does not match format {fmt!r}") from None
    return Window(key, start, start + window_length(config))


def config_start(config: Any) -> datetime:
    return _to_datetime(config.start)


def config_end(config: Any) -> datetime | None:
    return None if getattr(config, "end", None) in (None, "") else _to_datetime(config.end)


def config_windows(config: Any, until: datetime | None = None) -> list[Window]:
    """Every complete window of the config, oldest first (until `end`, else until `until`/now)."""
    step = window_length(config)
    start = config_start(config)
    end = config_end(config) or until or datetime.utcnow()
    out: list[Window] = []
    cur = start
    while cur + step <= end:
        out.append(Window(window_key_for(config, cur), cur, cur + step))
        cur += step
    return out


# --------------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------------


def _cols_ddl(cols: dict[str, str]) -> str:
    return ", ".join(f"{quote_ident(c)} {t}" for c, t in cols.items())


def _key_exprs(name: str, alias: str = "") -> dict[str, str]:
    """SQL of the hash keys of a live table's rows (`LIVE_HASH_KEYS`), over columns of `alias`."""
    pre = f"{alias}." if alias else ""
    exprs = {
        "pkey": f"hash({pre}dinmo_stitched_profile_id)",
        "vkey": f"hash({pre}identifier_type, {pre}value)",
    }
    return {k: exprs[k] for k in LIVE_HASH_KEYS.get(name, ())}


def _live_ddl(name: str) -> str:
    keys = ", ".join(f"{k} UBIGINT" for k in LIVE_HASH_KEYS.get(name, ()))
    return _cols_ddl(LIVE_COLUMNS[name]) + (f", {keys}" if keys else "")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the state, output and staging tables if missing (idempotent, cheap)."""
    for schema in (STATE, OUT, STAGE):
        con.execute(f"create schema if not exists {schema}").fetchall()
    for name, cols in STATE_COLUMNS.items():
        con.execute(
            f"create table if not exists {STATE}.{name} ({VERSION_COLUMNS}, {_cols_ddl(cols)})"
        ).fetchall()
    con.execute(
        f"""create table if not exists {STATE}.value_conflicts ({VERSION_COLUMNS},
            identifier_type VARCHAR, value VARCHAR, active_profiles BIGINT, is_conflict BOOLEAN,
            expires_at TIMESTAMP)"""
    ).fetchall()
    for name in LIVE_COLUMNS:
        con.execute(f"create table if not exists {STATE}.live_{name} ({_live_ddl(name)})").fetchall()
    con.execute(f"create table if not exists {STATE}.live_as_of (valid_before TIMESTAMP)").fetchall()
    con.execute(f"create table if not exists {STATE}.live_hash_probe (probe UBIGINT)").fetchall()
    con.execute(
        f"""create table if not exists {STATE}.windows (
            window_key VARCHAR PRIMARY KEY, window_start TIMESTAMP NOT NULL, window_end TIMESTAMP NOT NULL,
            processed_at TIMESTAMP, events BIGINT, status VARCHAR, duration_seconds DOUBLE,
            next_sequence BIGINT, active_profiles BIGINT, known_profiles BIGINT, state_fingerprint HUGEINT)"""
    ).fetchall()
    con.execute(f"create table if not exists {OUT}.attribution ({_cols_ddl(ATTRIBUTION_COLUMNS)})").fetchall()
    con.execute(
        f"""create table if not exists {OUT}.run_metrics (window_key VARCHAR, window_start TIMESTAMP,
            breakdown VARCHAR, breakdown_value VARCHAR, metric VARCHAR, value DOUBLE)"""
    ).fetchall()
    con.execute(
        f"""create table if not exists {OUT}.audit_events (window_key VARCHAR, event_ts TIMESTAMP,
            audit_type VARCHAR, identifier_type VARCHAR, value VARCHAR, dinmo_stitched_profile_id VARCHAR,
            other_dinmo_stitched_profile_id VARCHAR, model VARCHAR, event_id VARCHAR, detail VARCHAR)"""
    ).fetchall()
    con.execute(
        f"""create table if not exists {STAGE}.window_events (window_key VARCHAR, model VARCHAR,
            event_id VARCHAR, event_ts TIMESTAMP)"""
    ).fetchall()
    con.execute(
        f"""create table if not exists {STAGE}.window_identifiers (window_key VARCHAR, model VARCHAR,
            event_id VARCHAR, event_ts TIMESTAMP, identifier_type VARCHAR, raw_value VARCHAR)"""
    ).fetchall()
    con.execute(
        f"""create table if not exists {STAGE}.stage_log (window_key VARCHAR, step VARCHAR, row_count BIGINT,
            staged_at TIMESTAMP)"""
    ).fetchall()
    con.execute(
        f"""create table if not exists {STAGE}.identifier_observations (window_key VARCHAR, model VARCHAR,
            event_id VARCHAR, event_ts TIMESTAMP, identifier_type VARCHAR, value VARCHAR, blocked BOOLEAN)"""
    ).fetchall()


# --------------------------------------------------------------------------------------------------------
# Reading the events of a window
# --------------------------------------------------------------------------------------------------------

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
        bad = _first(
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
    dup = _first(
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
        row = _first(
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
    n_ids = _first(
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
        row = _first(
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
    row = _first(
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


# --------------------------------------------------------------------------------------------------------
# Window bookkeeping
# --------------------------------------------------------------------------------------------------------


def processed_windows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    ensure_schema(con)
    return read_frame(con, f"select * from {STATE}.windows order by window_start")


def check_predecessor(con: duckdb.DuckDBPyConnection, config: Any, window: Window) -> None:
    """Window N may run only when N is the config's first window or N-1 is recorded as processed."""
    first = config_start(config)
    if window.start < first:
        raise WindowOrderError(f"window {window.key} starts before event_stitching.start ({first:%Y-%m-%d})")
    if window.start == first:
        return
    prev = window_key_for(config, window.start - window_length(config))
    row = _first(con.execute(f"select status from {STATE}.windows where window_key = ?", [prev]))
    if row is None:
        raise WindowOrderError(
            f"cannot process event stitching window {window.key}: the previous window {prev} has not been "
            f"processed. Windows are processed in order; materialize {prev} first (or a range ending at "
            f"{window.key})."
        )
    if row[0] != "processed":
        raise WindowOrderError(
            f"cannot process event stitching window {window.key}: the previous window {prev} is {row[0]} "
            "(an earlier window was re-processed with a different result). Re-run the windows after the "
            f"re-processed one in order, up to {prev}, before {window.key}."
        )


def _next_sequence_before(con: duckdb.DuckDBPyConnection, window: Window, default: int) -> int:
    row = _first(
        con.execute(
            f"select next_sequence from {STATE}.windows where window_start < ? "
            "order by window_start desc limit 1",
            [window.start],
        )
    )
    return int(row[0]) if row and row[0] is not None else default


# --------------------------------------------------------------------------------------------------------
# Loading the subgraph a window touches
# --------------------------------------------------------------------------------------------------------


def _select_cols(name: str, alias: str = "") -> str:
    pre = f"{alias}." if alias else ""
    return ", ".join(f"{pre}{quote_ident(c)}" for c in LIVE_COLUMNS[name])


def _latest(name: str, where: str) -> str:
    """Latest non-deleted version per key of `es_state.<name>` among rows matching `where`.

    Scans the version history: used to rebuild the live tables (after an earlier window was re-run) and by
    the published views; a window in order reads the live tables (`_live`)."""
    keys = ", ".join(LIVE_KEYS[name])
    return (
        f"select {_select_cols(name)} from (select * from {STATE}.{name} where {where} "
        f"qualify row_number() over (partition by {keys} order by version_window_start desc) = 1) "
        "where not is_deleted"
    )


def _live(name: str, where: str = "true", with_keys: bool = False) -> str:
    """Rows of `es_state.live_<name>` matching `where` (the table is aliased `<name>` for correlated
    conditions), with their hash key columns if `with_keys` (see LIVE_HASH_KEYS)."""
    keys = "".join(f", {name}.{k}" for k in LIVE_HASH_KEYS.get(name, ())) if with_keys else ""
    return f"select {_select_cols(name, name)}{keys} from {STATE}.live_{name} as {name} where {where}"


def ensure_live(con: duckdb.DuckDBPyConnection, before: datetime) -> None:
    """Make the live tables hold the state before `before` (a window start).

    After window N-1 they already do (`save_window` keeps them up to date), so a window processed in order
    reads only the current state, whatever the length of the history. After a re-run of an earlier window
    (or on a database written before the live tables or their hash keys existed, or by a DuckDB that hashes
    differently) they are rebuilt once from the versions."""
    ensure_schema(con)
    row = _first(
        con.execute(
            f"select (select max(valid_before) from {STATE}.live_as_of), "
            f"(select bool_and(probe = {_HASH_PROBE}) from {STATE}.live_hash_probe)"
        )
    )
    if row is not None and row[0] == before and row[1]:
        return
    with transaction(con):
        for name in LIVE_COLUMNS:
            # re-created, not emptied: an older database's live tables have no key columns
            con.execute(f"drop table if exists {STATE}.live_{name}").fetchall()
            con.execute(f"create table {STATE}.live_{name} ({_live_ddl(name)})").fetchall()
            keys = "".join(f", {e}" for e in _key_exprs(name).values())
            con.execute(
                f"insert into {STATE}.live_{name} select *{keys} "
                f"from ({_latest(name, 'version_window_start < ?')})",
                [before],
            ).fetchall()
        _check_unique_value_keys(con)
        con.execute(f"delete from {STATE}.live_hash_probe").fetchall()
        con.execute(f"insert into {STATE}.live_hash_probe select {_HASH_PROBE}").fetchall()
        _set_live_as_of(con, before)


class KeyCollisionError(RuntimeError):
    """Two identifier values (or two profile ids) of the live state got the same 64-bit hash key.

    Astronomically unlikely (~n^2 / 2^65 for n distinct values); raised before anything is written so the
    state stays correct, rather than letting one value's rows stand for another's."""


def _check_unique_value_keys(con: duckdb.DuckDBPyConnection) -> None:
    """After a rebuild: every key of the live tables names one value and one profile (a full scan; rare)."""
    row = _first(
        con.execute(
            f"""select
                (select count(distinct (identifier_type, value)) - count(distinct vkey) from (
                    select identifier_type, value, vkey from {STATE}.live_value_registry
                    union select identifier_type, value, vkey from {STATE}.live_profile_values)),
                (select count(*) - count(distinct pkey) from {STATE}.live_profiles)"""
        )
    )
    if row is not None and (row[0] or row[1]):
        raise KeyCollisionError(
            f"event stitching: {row[0]} identifier value key(s) and {row[1]} profile key(s) of the live "
            "state collide (two strings, one 64-bit hash); please report it with the DuckDB version"
        )


def _set_live_as_of(con: duckdb.DuckDBPyConnection, before: datetime) -> None:
    con.execute(f"delete from {STATE}.live_as_of").fetchall()
    con.execute(f"insert into {STATE}.live_as_of values (?)", [before]).fetchall()


def _cast_frame_sql(name: str, frame: str) -> str:
    return ", ".join(
        f"cast({frame}.{quote_ident(c)} as {t}) as {quote_ident(c)}" for c, t in STATE_COLUMNS[name].items()
    )


def _fit(df: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """The frame with exactly the state columns, in order (missing columns as nulls)."""
    cols = list(STATE_COLUMNS[name])
    if df is None:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in cols})
    df = df.copy()
    for c in cols:
        if c not in df.columns:
            df[c] = None
    return df[cols]


def _types_sql(types: list[str]) -> str:
    if not types:
        return "false"
    return "identifier_type in (" + ", ".join("'" + t.replace("'", "''") + "'" for t in types) + ")"


def _key_in(keys_table: str, alias: str) -> str:
    """SQL condition: the row `alias` has an (identifier_type, value) listed in temp table `keys_table`."""
    return (
        f"exists (select 1 from {keys_table} k where k.identifier_type = {alias}.identifier_type "
        f"and k.value = {alias}.value)"
    )


# live memberships of a window value (by key, see LIVE_HASH_KEYS; `__es_wv` holds the window's values)
_IN_WINDOW = "profile_values.vkey in (select vkey from __es_wv)"


def _check_window_keys(con: duckdb.DuckDBPyConnection, found: str) -> None:
    """The rows of temp table `found` (looked up by `vkey` in `__es_wv`) are rows of the window's values:
    a row whose strings differ would be another value with the same key (`KeyCollisionError`)."""
    row = _first(
        con.execute(
            f"""select f.identifier_type, f.value, w.identifier_type, w.value from {found} f
            join __es_wv w on w.vkey = f.vkey
            where f.identifier_type <> w.identifier_type or f.value <> w.value limit 1"""
        )
    )
    if row is not None:
        raise KeyCollisionError(
            f"event stitching: identifier values {row[0]}={row[1]!r} and {row[2]}={row[3]!r} have the same "
            "64-bit hash key; please report it with the DuckDB version"
        )


def load_subgraph(
    con: duckdb.DuckDBPyConnection,
    values_df: pd.DataFrame,
    before_window: Window | datetime,
    config: Any = None,
) -> Any:
    """GraphState for the values of a window, as left by the windows before `before_window`.

    Holds: registry rows and memberships of the given (identifier_type, value) pairs, the profiles holding
    them, the memberships of those profiles, and the redirects pointing to those profiles. With `config`,
    only what the rules read (`GraphState.subgraph(..., profile_wide)`): the memberships of the window's
    values and of the `profile_wide_types` (anchors, capacity-limited weak types), and no redirects nor
    merged profiles; the rest (old sessions, cookies, the profiles merged into these...) stays in the store
    and follows the window's merges through `carry_unloaded_rows`. So a window's cost does not grow with
    the history of the profiles it touches.

    Rows carry their live hash keys (`pkey` on profiles and memberships, `vkey` on memberships and registry
    rows): the engine matches on them instead of hashing the strings. They name one string each: a window's
    values are checked against the rows found by key (`_check_window_keys`), so no two values of the live
    state ever share a key.
    """
    from identity_pipeline.core.event_stitching.state import GraphState

    ensure_schema(con)
    start = before_window.start if isinstance(before_window, Window) else before_window
    con.register("__es_values", values_df[["identifier_type", "value"]])  # made distinct by DuckDB (threads)
    try:
        con.execute(
            "create or replace temp table __es_wv as select *, hash(identifier_type, value) as vkey from ("
            "select distinct cast(identifier_type as VARCHAR) identifier_type, cast(value as VARCHAR) value "
            "from __es_values)"
        ).fetchall()
    finally:
        con.unregister("__es_values")
    dup = _first(con.execute("select count(*) - count(distinct vkey) from __es_wv"))
    if dup is not None and dup[0]:
        raise KeyCollisionError(
            f"event stitching: {dup[0]} identifier values of the window share a 64-bit hash key with "
            "another; please report it with the DuckDB version"
        )
    ensure_live(con, start)
    con.execute(
        "create or replace temp table __es_wreg as "
        + _live("value_registry", "value_registry.vkey in (select vkey from __es_wv)", with_keys=True)
    ).fetchall()
    _check_window_keys(con, "__es_wreg")
    registry = read_frame(con, f"select {_select_cols('value_registry')}, vkey from __es_wreg")
    con.execute("drop table __es_wreg").fetchall()
    # memberships of the window's values (one scan), then the other memberships of their profiles that the
    # rules read (a second scan, pre-filtered on the identifier type)
    con.execute(
        f"create or replace temp table __es_wmem as {_live('profile_values', _IN_WINDOW, with_keys=True)}"
    ).fetchall()
    _check_window_keys(con, "__es_wmem")
    con.execute("create or replace temp table __es_pids as select distinct pkey from __es_wmem").fetchall()
    in_pids = "pkey in (select pkey from __es_pids)"
    other_types = "true"
    if config is not None:
        from identity_pipeline.core.event_stitching.state import profile_wide_types

        other_types = _types_sql(profile_wide_types(config))
    memberships = read_frame(
        con,
        f"select {_select_cols('profile_values')}, pkey, vkey from __es_wmem union all "
        + _live(
            "profile_values",
            f"{other_types} and profile_values.{in_pids} and not {_IN_WINDOW}",
            with_keys=True,
        ),
    )
    con.execute("drop table __es_wmem").fetchall()
    red_where = "false" if config is not None else "hash(to_id) in (select pkey from __es_pids)"
    redirects = read_frame(con, _live("redirects", red_where))
    # the profiles holding the values, and the merged profiles redirecting to them
    con.register("__es_redirect_from", redirects[["from_id"]])
    try:
        profiles = read_frame(
            con,
            _live(
                "profiles",
                f"profiles.{in_pids}"
                + (
                    " or profiles.pkey in (select hash(from_id) from __es_redirect_from)"
                    if len(redirects)
                    else ""
                ),
                with_keys=True,
            ),
        )
    finally:
        con.unregister("__es_redirect_from")
    empty = GraphState.empty()
    state = GraphState(
        profiles=_conform(profiles, empty.profiles),
        profile_values=_conform(memberships, empty.profile_values),
        value_registry=_conform(registry, empty.value_registry),
        redirects=_conform(redirects, empty.redirects),
        next_sequence=_next_sequence_before(
            con,
            before_window if isinstance(before_window, Window) else Window("", start, start),
            int(empty.next_sequence),
        ),
    )
    return state


def carry_unloaded_rows(
    con: duckdb.DuckDBPyConnection, config: Any, window: Window, loaded: Any, result_state: Any
) -> tuple[Any, Any]:
    """(loaded, result) states extended with the rows `load_subgraph(config=...)` left out that the
    window's merges change, before and after the change: the memberships of each profile merged in this
    window and its survivor's rows of the same values (`carry_merged_memberships`), and the older redirects
    to a profile merged now with the profiles they come from (`carry_merged_redirects`). `save_window` then
    diffs them like the rest. Call right after `load_subgraph` (it reads the window's values table
    `__es_wv`)."""
    from dataclasses import replace

    from identity_pipeline.core.event_stitching.state import (
        carry_merged_memberships,
        carry_merged_redirects,
        profile_wide_types,
    )

    red = result_state.redirects
    red = red[red["window_key"] == window.key]
    if len(red) == 0:
        return loaded, result_state
    merged_to = dict(zip(red["from_id"].astype(object), red["to_id"].astype(object), strict=True))
    not_loaded = f"not {_types_sql(profile_wide_types(config))} and not {_IN_WINDOW}"
    con.register("__es_merged", pd.DataFrame({"from_id": list(merged_to), "to_id": list(merged_to.values())}))
    try:
        # one scan of the live memberships for both sides (merged profiles, survivors)
        con.execute(
            "create or replace temp table __es_carry as select *, dinmo_stitched_profile_id in "
            "(select from_id from __es_merged) as is_merged from ("
            + _live(
                "profile_values",
                "profile_values.pkey in (select hash(from_id) from __es_merged union all "
                f"select hash(to_id) from __es_merged) and {not_loaded}",
            )
            + ")"
        ).fetchall()
        cols = _select_cols("profile_values")
        losers = read_frame(con, f"select {cols} from __es_carry where is_merged")
        survivors = read_frame(
            con,
            f"select {cols} from __es_carry profile_values where not is_merged and exists (select 1 from "
            "__es_carry m where m.is_merged and m.identifier_type = profile_values.identifier_type "
            "and m.value = profile_values.value)",
        )
        con.execute("drop table __es_carry").fetchall()
        # redirects this window did not load (none with config) to a profile it merged
        loaded_from = loaded.redirects["from_id"].astype(object).tolist()
        con.register("__es_loaded_from", pd.DataFrame({"from_id": pd.Series(loaded_from, dtype=object)}))
        try:
            old_red = read_frame(
                con,
                _live(
                    "redirects",
                    "to_id in (select from_id from __es_merged) "
                    "and from_id not in (select from_id from __es_loaded_from)",
                ),
            )
        finally:
            con.unregister("__es_loaded_from")
    finally:
        con.unregister("__es_merged")
    if len(old_red):
        con.register("__es_old_red", old_red[["from_id"]])
        try:
            sources = read_frame(
                con, _live("profiles", "profiles.pkey in (select hash(from_id) from __es_old_red)")
            )
        finally:
            con.unregister("__es_old_red")
        old_red = _conform(old_red, loaded.redirects)
        sources = _conform(sources, loaded.profiles)
        moved_red, moved_prof = carry_merged_redirects(old_red, sources, merged_to)
        loaded = replace(
            loaded,
            redirects=pd.concat([loaded.redirects, old_red], ignore_index=True),
            profiles=pd.concat([loaded.profiles, sources], ignore_index=True),
        )
        result_state = replace(
            result_state,
            redirects=pd.concat([result_state.redirects, moved_red], ignore_index=True),
            profiles=pd.concat([result_state.profiles, moved_prof], ignore_index=True),
        )
    template = loaded.profile_values
    unloaded = pd.concat([_conform(losers, template), _conform(survivors, template)], ignore_index=True)
    if len(unloaded) == 0:
        return loaded, result_state
    carried = carry_merged_memberships(unloaded, merged_to)
    loaded = replace(loaded, profile_values=pd.concat([loaded.profile_values, unloaded], ignore_index=True))
    result_state = replace(
        result_state, profile_values=pd.concat([result_state.profile_values, carried], ignore_index=True)
    )
    return loaded, result_state


def _conform(df: pd.DataFrame, template: pd.DataFrame) -> pd.DataFrame:
    """Give a loaded frame the engine's dtypes (from GraphState.empty()) where they can be applied."""
    df = df.reset_index(drop=True)
    for c in template.columns:
        if c not in df.columns:
            if c not in _HASH_KEY_COLUMNS:  # a frame without hash keys stays so (the engine hashes strings)
                df[c] = pd.Series([None] * len(df), dtype=template[c].dtype)
            continue
        want = template[c].dtype
        if str(df[c].dtype) == str(want):
            continue
        try:
            if pd.api.types.is_datetime64_any_dtype(want):
                df[c] = pd.to_datetime(df[c]).astype(want)
            elif pd.api.types.is_bool_dtype(want) and df[c].isna().any():
                df[c] = df[c].astype("boolean")
            else:
                df[c] = df[c].astype(want)
        except (TypeError, ValueError):
            pass
    return df


# --------------------------------------------------------------------------------------------------------
# Saving a window (one transaction)
# --------------------------------------------------------------------------------------------------------


def _state_fingerprint(con: duckdb.DuckDBPyConnection) -> int:
    """Hash of the state rows this window wrote (the `__es_diff_<name>` tables of `_write_diff`)."""
    total = 0
    for name in LIVE_COLUMNS:
        row = _first(
            con.execute(f"select coalesce(sum(hash(*COLUMNS(*))::HUGEINT), 0) from __es_diff_{name}")
        )
        total = (total * 1_000_003 + int(row[0] if row else 0)) % (1 << 126)
    return total


def _write_diff(con: duckdb.DuckDBPyConnection, name: str, window: Window) -> int:
    """Append the rows of temp table `__es_diff_<name>` (is_deleted + columns) as versions of `window`, and
    apply them to `live_<name>` (replace the rows of those keys; tombstones only delete)."""
    cols = _select_cols(name)
    con.execute(
        f"insert into {STATE}.{name} select ?, ?, is_deleted, {cols} from __es_diff_{name}",
        [window.start, window.key],
    ).fetchall()
    keys = _key_exprs(name)
    if name == "profiles":
        _check_new_profile_keys(con)
    # replaced live rows: by hash key where the table has them (one integer per live row to compare; the
    # keys computed first, far faster than inside the join), else by the state keys
    source, on_keys = f"__es_diff_{name}", LIVE_KEYS[name]
    if keys:
        source, on_keys = "__es_diff_keys", list(keys)
        con.execute(
            "create or replace temp table __es_diff_keys as select distinct "
            + ", ".join(f"{e} as {k}" for k, e in keys.items())
            + f" from __es_diff_{name}"
        ).fetchall()
    on = " and ".join(f"l.{k} = d.{k}" for k in on_keys)
    con.execute(
        f"delete from {STATE}.live_{name} l where exists (select 1 from {source} d where {on})"
    ).fetchall()
    key_cols = "".join(f", {e}" for e in keys.values())
    con.execute(
        f"insert into {STATE}.live_{name} select {cols}{key_cols} from __es_diff_{name} where not is_deleted"
    ).fetchall()
    row = _first(con.execute(f"select count(*) from __es_diff_{name}"))
    return int(row[0]) if row else 0


def _check_new_profile_keys(con: duckdb.DuckDBPyConnection) -> None:
    """No profile written by this window shares its hash key with another profile (`KeyCollisionError`)."""
    con.execute(
        "create or replace temp table __es_pkeys as select distinct dinmo_stitched_profile_id, "
        "hash(dinmo_stitched_profile_id) as pkey from __es_diff_profiles where not is_deleted"
    ).fetchall()
    row = _first(
        con.execute(
            f"""select d.dinmo_stitched_profile_id, l.dinmo_stitched_profile_id
            from __es_pkeys d join {STATE}.live_profiles l on l.pkey = d.pkey
            where l.dinmo_stitched_profile_id <> d.dinmo_stitched_profile_id limit 1"""
        )
    )
    if row is None:
        row = _first(
            con.execute(
                "select min(dinmo_stitched_profile_id), max(dinmo_stitched_profile_id) from __es_pkeys "
                "group by pkey having count(*) > 1 limit 1"
            )
        )
    con.execute("drop table __es_pkeys").fetchall()
    if row is not None:
        raise KeyCollisionError(
            f"event stitching: profile ids {row[0]!r} and {row[1]!r} have the same 64-bit hash key; please "
            "report it with the DuckDB version"
        )


def _write_state_diff(
    con: duckdb.DuckDBPyConnection, name: str, new: pd.DataFrame, old: pd.DataFrame, window: Window
) -> int:
    """Write changed/new rows of `new` vs `old` as versions of `window`, tombstones for keys gone; the live
    table follows."""
    con.register("__es_new", _fit(new, name))
    con.register("__es_old", _fit(old, name))
    keys = STATE_KEYS[name]
    on = " and ".join(f"n.{k} = o.{k}" for k in keys)
    tomb_cols = ", ".join(
        f"o.{quote_ident(c)}" if c in keys else f"NULL::{t}" for c, t in STATE_COLUMNS[name].items()
    )
    try:
        con.execute(
            f"""create or replace temp table __es_diff_{name} as
            select false as is_deleted, * from (
                select {_cast_frame_sql(name, "__es_new")} from __es_new
                except
                select {_cast_frame_sql(name, "__es_old")} from __es_old)
            union all
            select true, {tomb_cols} from (select {_cast_frame_sql(name, "__es_old")} from __es_old) o
            where not exists (select 1 from (select {_cast_frame_sql(name, "__es_new")} from __es_new) n
                              where {on})"""
        ).fetchall()
    finally:
        con.unregister("__es_new")
        con.unregister("__es_old")
    return _write_diff(con, name, window)


def _lifetime_seconds(policy: Any) -> float | None:
    lt = getattr(policy, "lifetime", None)
    if lt in (None, ""):
        return None
    if isinstance(lt, timedelta):
        return lt.total_seconds()
    if isinstance(lt, int | float):
        return float(lt)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(lt))
    if not m:
        return None
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * unit


def _lifetimes_sql(config: Any) -> str:
    """VALUES list (identifier_type, lifetime_seconds, from_last_seen) for every configured type."""
    rows = []
    for t, pol in dict(config.identifiers).items():
        secs = _lifetime_seconds(pol)
        from_last = str(getattr(pol, "lifetime_from", "first_seen") or "first_seen") == "last_seen"
        t_lit = "'" + str(t).replace("'", "''") + "'"
        rows.append(f"({t_lit}, {'NULL' if secs is None else secs}::DOUBLE, {str(from_last).lower()})")
    if not rows:
        rows.append("(NULL::VARCHAR, NULL::DOUBLE, false)")
    return "(values " + ", ".join(rows) + ") as lt(identifier_type, lifetime_seconds, from_last_seen)"


def _update_conflicts(con: duckdb.DuckDBPyConnection, config: Any, window: Window) -> None:
    """Re-evaluate the values whose memberships/registry this window wrote (live tables, already updated);
    version those that are/were conflicting (a non-quarantined value active on more than one active
    profile)."""
    con.execute(
        """create or replace temp table __es_touched as
            select *, hash(identifier_type, value) as vkey from (
                select distinct identifier_type, value from __es_diff_profile_values
                union select distinct identifier_type, value from __es_diff_value_registry)"""
    ).fetchall()
    con.execute(
        f"""create or replace temp table __es_diff_value_conflicts as
        with mem as (select pkey, vkey, status from {STATE}.live_profile_values
                     where vkey in (select vkey from __es_touched)),
        prof as (select pkey, status from {STATE}.live_profiles where pkey in (select pkey from mem)),
        reg as (select vkey, first_seen_at, last_seen_at, quarantined from {STATE}.live_value_registry
                where vkey in (select vkey from __es_touched)),
        cnt as (
            select t.identifier_type, t.value, t.vkey,
                   count(distinct m.pkey) filter (
                       where m.status = 'active' and p.status = 'active') as active_profiles
            from __es_touched t
            left join mem m on m.vkey = t.vkey
            left join prof p on p.pkey = m.pkey
            group by all),
        cur as (
            select c.identifier_type, c.value, c.active_profiles,
                   c.active_profiles > 1 and not coalesce(r.quarantined, false) as is_conflict,
                   case when lt.lifetime_seconds is null then NULL::TIMESTAMP
                        else (case when lt.from_last_seen then r.last_seen_at else r.first_seen_at end)
                             + to_microseconds(cast(lt.lifetime_seconds * 1e6 as BIGINT)) end as expires_at
            from cnt c left join reg r on r.vkey = c.vkey
            left join {_lifetimes_sql(config)} using (identifier_type)),
        prev as ({_live("value_conflicts", _key_in("__es_touched", "value_conflicts"))})
        select false as is_deleted, cur.identifier_type, cur.value, cur.active_profiles, cur.is_conflict,
               cur.expires_at
        from cur left join prev using (identifier_type, value)
        where cur.is_conflict or coalesce(prev.is_conflict, false)
        """
    ).fetchall()
    _write_diff(con, "value_conflicts", window)


def _active_conflicts_at(con: duckdb.DuckDBPyConnection, window: Window) -> int:
    row = _first(
        con.execute(
            f"""select count(*) from {STATE}.live_value_conflicts
            where is_conflict and (expires_at is null or expires_at >= ?)""",
            [window.end],
        )
    )
    return int(row[0]) if row else 0


def _profile_totals_delta(
    con: duckdb.DuckDBPyConnection, new: pd.DataFrame, old: pd.DataFrame
) -> tuple[int, int]:
    def totals(df: pd.DataFrame) -> tuple[int, int]:
        if df is None or len(df) == 0:
            return 0, 0
        active = df["status"].astype(str) == "active"
        known = active & df["is_known"].fillna(False).astype(bool)
        return int(active.sum()), int(known.sum())

    a_new, k_new = totals(new)
    a_old, k_old = totals(old)
    return a_new - a_old, k_new - k_old


def _metrics_rows(
    window: Window, metrics: dict[str, Any], by_model: pd.DataFrame | None, by_type: pd.DataFrame | None
) -> pd.DataFrame:
    rows: list[tuple[str, str | None, str, float]] = []
    for k, v in metrics.items():
        num = _as_number(v)
        if num is not None:
            rows.append(("window", None, str(k), num))
    for breakdown, df, col in (("model", by_model, "model"), ("identifier_type", by_type, "identifier_type")):
        if df is None or len(df) == 0:
            continue
        key_col = col if col in df.columns else df.columns[0]
        for rec in df.to_dict("records"):
            for k, v in rec.items():
                if k == key_col:
                    continue
                num = _as_number(v)
                if num is not None:
                    rows.append((breakdown, str(rec[key_col]), str(k), num))
    out = pd.DataFrame(rows, columns=["breakdown", "breakdown_value", "metric", "value"])
    out.insert(0, "window_start", window.start)
    out.insert(0, "window_key", window.key)
    return out


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _insert_by_name(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, window_key: str) -> None:
    """Insert the frame's columns that the table has, by name; `window_key` forced to this window."""
    if df is None or len(df) == 0:
        return
    cols = [r[0] for r in con.execute(f"describe {table}").fetchall()]
    df = df.copy()
    df["window_key"] = window_key
    keep = [c for c in df.columns if c in cols]
    extra = [c for c in df.columns if c not in cols]
    if extra and "detail" in cols and "detail" not in df.columns:
        df["detail"] = (
            df[extra].astype(str).agg(lambda r: "; ".join(f"{c}={v}" for c, v in r.items()), axis=1)
        )
        keep.append("detail")
    con.register("__es_ins", df[keep])
    try:
        sel = ", ".join(quote_ident(c) for c in keep)
        con.execute(f"insert into {table} by name select {sel} from __es_ins").fetchall()
    finally:
        con.unregister("__es_ins")


def save_window(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window: Window,
    result: Any,
    loaded_state: Any,
    *,
    events: int,
    started: float | None = None,
) -> dict[str, float]:
    """Persist one window in one transaction: replace the window's state versions and outputs.

    Returns the window-level metrics written to `identity_event_profile_run_metrics`.
    """
    ensure_live(con, window.start)
    old_fp_row = _first(
        con.execute(f"select state_fingerprint from {STATE}.windows where window_key = ?", [window.key])
    )
    prev_totals = _first(
        con.execute(
            f"select active_profiles, known_profiles from {STATE}.windows where window_start < ? "
            "order by window_start desc limit 1",
            [window.start],
        )
    )
    d_active, d_known = _profile_totals_delta(con, result.state.profiles, loaded_state.profiles)
    active = int(prev_totals[0] or 0) + d_active if prev_totals else d_active
    known = int(prev_totals[1] or 0) + d_known if prev_totals else d_known

    with transaction(con):
        if old_fp_row is not None:  # a re-run: replace the window's rows (all written with its windows row)
            for name in (*STATE_COLUMNS, "value_conflicts"):
                con.execute(
                    f"delete from {STATE}.{name} where version_window_key = ?", [window.key]
                ).fetchall()
            for table in ("attribution", "audit_events", "run_metrics"):
                con.execute(f"delete from {OUT}.{table} where window_key = ?", [window.key]).fetchall()
        for name in STATE_COLUMNS:
            _write_state_diff(con, name, getattr(result.state, name), getattr(loaded_state, name), window)
        _update_conflicts(con, config, window)
        active_conflicts = _active_conflicts_at(con, window)

        attribution = result.attribution.copy()
        attribution["window_key"] = window.key
        con.register("__es_attr", attribution)
        try:
            cols = ", ".join(
                f"cast({quote_ident(c)} as {t}) as {quote_ident(c)}" for c, t in ATTRIBUTION_COLUMNS.items()
            )
            con.execute(
                f"insert into {OUT}.attribution select {cols} from __es_attr "
                "order by event_ts, model, event_id"
            ).fetchall()
        finally:
            con.unregister("__es_attr")
        _insert_by_name(con, f"{OUT}.audit_events", result.audit_events, window.key)

        metrics = {k: v for k, v in dict(result.metrics).items() if _as_number(v) is not None}
        metrics.setdefault("events_processed", float(events))
        metrics.update(
            {
                "active_profiles": float(active),
                "known_profiles": float(known),
                "known_profile_share": float(known / active) if active else 0.0,
                "active_conflicts": float(active_conflicts),
            }
        )
        duration = time.perf_counter() - started if started is not None else 0.0
        metrics["duration_seconds"] = float(duration)
        rows = _metrics_rows(window, metrics, result.metrics_by_model, result.metrics_by_identifier_type)
        con.register("__es_metrics", rows)
        try:
            con.execute(f"insert into {OUT}.run_metrics by name select * from __es_metrics").fetchall()
        finally:
            con.unregister("__es_metrics")

        fingerprint = _state_fingerprint(con)
        _set_live_as_of(con, window.end)
        next_seq = int(result.state.next_sequence)
        changed = old_fp_row is not None and int(old_fp_row[0] or 0) != fingerprint
        con.execute(f"delete from {STATE}.windows where window_key = ?", [window.key]).fetchall()
        con.execute(
            f"insert into {STATE}.windows values (?, ?, ?, now()::TIMESTAMP, ?, 'processed', ?, ?, ?, ?, ?)",
            [window.key, window.start, window.end, events, duration, next_seq, active, known, fingerprint],
        ).fetchall()
        if changed:
            con.execute(
                f"update {STATE}.windows set status = 'outdated' "
                "where window_start > ? and status = 'processed'",
                [window.start],
            ).fetchall()
        publish_views(con, config)
    return metrics


def _event_keys_usable(events: pd.DataFrame, observations: pd.DataFrame) -> bool:
    """`ekey` names one event of the window: distinct over the events (whose (model, event_id) the staging
    checked unique), and every observation's key is an event's. Otherwise (a 64-bit collision among the
    window's events, or frames without keys) the engine hashes the strings instead."""
    if "ekey" not in events.columns or "ekey" not in observations.columns:
        return False
    ev = events["ekey"].to_numpy()
    if pd.Series(ev).duplicated().any():
        return False
    return bool(pd.Series(observations["ekey"].to_numpy()).isin(ev).all())


def process_window(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window: Window,
    events: pd.DataFrame,
    observations: pd.DataFrame,
) -> dict[str, float]:
    """Check order, load the touched subgraph, stitch, save. Returns the window's metrics."""
    from identity_pipeline.core.event_stitching.engine import stitch_window

    started = time.perf_counter()
    ensure_schema(con)
    check_predecessor(con, config, window)
    if not _event_keys_usable(events, observations):
        events = events.drop(columns="ekey", errors="ignore")
        observations = observations.drop(columns="ekey", errors="ignore")
    loaded = load_subgraph(con, observations, window, config)
    t_load = time.perf_counter()
    result = stitch_window(loaded, events, observations, config, window.key)
    t_stitch = time.perf_counter()
    loaded, state = carry_unloaded_rows(con, config, window, loaded, result.state)
    result.state = state
    t_carry = time.perf_counter()
    metrics = save_window(con, config, window, result, loaded, events=len(events), started=started)
    LAST_TIMINGS.clear()
    LAST_TIMINGS.update(
        load_s=t_load - started,
        stitch_s=t_stitch - t_load,
        carry_s=t_carry - t_stitch,
        save_s=time.perf_counter() - t_carry,
        loaded_profiles=len(loaded.profiles),
        loaded_memberships=len(loaded.profile_values),
    )
    return metrics


# seconds spent in each step of the last `process_window` and the size of its subgraph (for benchmarks)
LAST_TIMINGS: dict[str, float] = {}


# --------------------------------------------------------------------------------------------------------
# Published views (DinMo's names)
# --------------------------------------------------------------------------------------------------------


def publish_views(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    """(Re)create the six published views. Cheap; called inside each window's transaction."""
    cur_redirects = _latest("redirects", "true")
    con.execute(f"create or replace view {STATE}.current_redirects as {cur_redirects}").fetchall()
    con.execute(
        f"create or replace view {STATE}.current_profiles as {_latest('profiles', 'true')}"
    ).fetchall()
    con.execute(
        f"create or replace view {STATE}.current_profile_values as {_latest('profile_values', 'true')}"
    ).fetchall()
    con.execute(
        f"create or replace view {STATE}.current_value_registry as {_latest('value_registry', 'true')}"
    ).fetchall()
    con.execute(
        f"""create or replace view main.{ATTRIBUTION_VIEW} as
        select a.model, a.event_id, a.event_ts, a.window_key, a.dinmo_stitched_profile_id,
               case when a.dinmo_stitched_profile_id is null then NULL
                    else coalesce(r.to_id, a.dinmo_stitched_profile_id) end
                    as resolved_dinmo_stitched_profile_id,
               a.status, a.reason, a.decided_by_identifier_type, a.decided_by_value
        from {OUT}.attribution a
        left join {STATE}.current_redirects r on r.from_id = a.dinmo_stitched_profile_id
        order by a.window_key, a.event_ts, a.model, a.event_id"""
    ).fetchall()
    con.execute(
        f"""create or replace view main.{PROFILES_VIEW} as
        select p.dinmo_stitched_profile_id, p.created_sequence, p.created_at, p.first_seen_at, p.last_seen_at,
               p.status, p.merged_to_dinmo_stitched_profile_id,
               coalesce(r.to_id, p.dinmo_stitched_profile_id) as resolved_dinmo_stitched_profile_id,
               p.is_known, case when p.is_known then 'known' else 'anonymous' end as profile_type,
               p.event_count
        from {STATE}.current_profiles p
        left join {STATE}.current_redirects r on r.from_id = p.dinmo_stitched_profile_id
        order by p.created_sequence, p.dinmo_stitched_profile_id"""
    ).fetchall()
    con.execute(
        f"""create or replace view main.{VALUES_VIEW} as
        with as_of as (select max(window_end) as t from {STATE}.windows)
        select v.dinmo_stitched_profile_id, v.identifier_type, v.value,
               case when v.status = 'blocked' then 'blocked'
                    when coalesce(g.quarantined, false) then 'quarantined'
                    when v.status = 'demoted' then 'demoted'
                    when lt.lifetime_seconds is not null and as_of.t >
                         (case when lt.from_last_seen then g.last_seen_at else g.first_seen_at end)
                         + to_microseconds(cast(lt.lifetime_seconds * 1e6 as BIGINT)) then 'expired'
                    else v.status end as status,
               v.first_seen_at, v.last_seen_at, v.event_count
        from {STATE}.current_profile_values v
        cross join as_of
        left join {STATE}.current_value_registry g using (identifier_type, value)
        left join {_lifetimes_sql(config)} using (identifier_type)
        order by v.dinmo_stitched_profile_id, v.identifier_type, v.value"""
    ).fetchall()
    con.execute(
        f"""create or replace view main.{REDIRECTS_VIEW} as
        select from_id, to_id, to_id as resolved_dinmo_stitched_profile_id, merged_at, evidence_model,
               evidence_event_id, window_key
        from {STATE}.current_redirects order by from_id"""
    ).fetchall()
    con.execute(
        f"""create or replace view main.{AUDIT_VIEW} as
        select * from {OUT}.audit_events order by window_key, event_ts nulls first, audit_type, model,
                 event_id, identifier_type, value"""
    ).fetchall()
    con.execute(
        f"""create or replace view main.{METRICS_VIEW} as
        select * from {OUT}.run_metrics order by window_start, breakdown, breakdown_value, metric"""
    ).fetchall()


def published_table(con: duckdb.DuckDBPyConnection, name: str, window_key: str | None = None) -> pd.DataFrame:
    """One published view as a DataFrame (optionally one window of a per-window output)."""
    if name not in PUBLISHED:
        raise KeyError(name)
    if (
        not table_exists(con, name)
        and not _first(
            con.execute("select count(*) from information_schema.tables where table_name = ?", [name])
        )[0]
    ):
        return pd.DataFrame()
    if window_key is not None:
        return read_frame(con, f"select * from main.{name} where window_key = ?", [window_key])
    return read_frame(con, f"select * from main.{name}")


def window_metrics(con: duckdb.DuckDBPyConnection, window_key: str | None = None) -> pd.DataFrame:
    """Window-level metrics, one row per window, one column per metric."""
    where = "breakdown = 'window'" + (" and window_key = ?" if window_key else "")
    df = read_frame(
        con,
        f"select window_key, metric, value from {OUT}.run_metrics where {where} order by window_key, metric",
        [window_key] if window_key else [],
    )
    if df.empty:
        return pd.DataFrame()
    return df.pivot(index="window_key", columns="metric", values="value").reset_index()
