"""Names and columns of the Event Stitching tables, and `ensure_schema` that creates them.

Three schemas (see docs/event-stitching-storage.md):

* `es_stage`: each window's staged events and observations (replaced per window), integer-coded values;
* `es_state`: the value dictionary (every value once, with its integer id `vid`), the graph state after the
  newest processed window (`registry`, `memberships`, `profiles`, `redirects`, `conflicts`: one row per key,
  integer-coded, stamped with the window that last wrote it), the undo log of each commit of a run (the rows
  its windows replaced, as they were before its first window), and the processed windows;
* `es_output`: the per-window outputs (attribution, audit events, run metrics).

The names DinMo documents are views in `main` (`views.py`) that turn the codes back into strings.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

STATE = "es_state"
OUT = "es_output"
STAGE = "es_stage"
SCHEMA_VERSION = 2

ATTRIBUTION_VIEW = "identity_event_profile_attribution"
PROFILES_VIEW = "identity_event_profiles"
VALUES_VIEW = "identity_event_profile_identifier_values"
REDIRECTS_VIEW = "identity_event_profile_redirects"
AUDIT_VIEW = "identity_event_profile_audit_events"
METRICS_VIEW = "identity_event_profile_run_metrics"
PUBLISHED = (ATTRIBUTION_VIEW, PROFILES_VIEW, VALUES_VIEW, REDIRECTS_VIEW, AUDIT_VIEW, METRICS_VIEW)

# graph state tables: columns (DuckDB types) and key. `written_window` is the start of the window that last
# wrote the row. Rolling back the windows of one commit (`undo.py`) deletes the rows they wrote and puts back
# the ones they replaced (`undo_<table>`, stamped with the commit's first window, `undo_window`).
STATE_TABLES: dict[str, dict[str, str]] = {
    "registry": {
        "vid": "INTEGER",
        "type_code": "SMALLINT",
        "first_seen_at": "TIMESTAMP",
        "last_seen_at": "TIMESTAMP",
        "event_count": "BIGINT",
        "quarantined": "BOOLEAN",
        "quarantined_at": "TIMESTAMP",
        "written_window": "TIMESTAMP",
    },
    "memberships": {
        "pid": "BIGINT",
        "vid": "INTEGER",
        "type_code": "SMALLINT",
        "status": "UTINYINT",
        "first_seen_at": "TIMESTAMP",
        "last_seen_at": "TIMESTAMP",
        "event_count": "BIGINT",
        "written_window": "TIMESTAMP",
    },
    "profiles": {
        "pid": "BIGINT",
        "pkey": "UBIGINT",
        "created_at": "TIMESTAMP",
        "first_seen_at": "TIMESTAMP",
        "last_seen_at": "TIMESTAMP",
        "status": "UTINYINT",
        "merged_to": "BIGINT",
        "event_count": "BIGINT",
        "is_known": "BOOLEAN",
        "written_window": "TIMESTAMP",
    },
    "redirects": {
        "from_pid": "BIGINT",
        "to_pid": "BIGINT",
        "merged_at": "TIMESTAMP",
        "evidence_model": "VARCHAR",
        "evidence_event_id": "VARCHAR",
        "window_key": "VARCHAR",
        "written_window": "TIMESTAMP",
    },
    "conflicts": {
        "vid": "INTEGER",
        "active_profiles": "BIGINT",
        "expires_at": "TIMESTAMP",
        "written_window": "TIMESTAMP",
    },
}
STATE_KEYS: dict[str, tuple[str, ...]] = {
    "registry": ("vid",),
    "memberships": ("pid", "vid"),
    "profiles": ("pid",),
    "redirects": ("from_pid",),
    "conflicts": ("vid",),
}

_DDL = {
    f"{STATE}.meta": "schema_version INTEGER",
    f"{STATE}.identifier_types": "type_code SMALLINT, identifier_type VARCHAR",
    f"{STATE}.value_dictionary": "vid INTEGER, h1 UBIGINT, h2 UBIGINT, type_code SMALLINT, value VARCHAR",
    f"{STATE}.windows": (
        "window_key VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, processed_at TIMESTAMP, "
        "events BIGINT, status VARCHAR, duration_seconds DOUBLE, next_sequence BIGINT, "
        "active_profiles BIGINT, known_profiles BIGINT, undo_window TIMESTAMP"
    ),
    f"{STAGE}.events": (
        "window_key VARCHAR, seq INTEGER, model VARCHAR, event_id VARCHAR, event_ts TIMESTAMP"
    ),
    # rows in (seq, identifier_type, value) order; `tie` orders the values of one type on one event as strings
    f"{STAGE}.observations": (
        "window_key VARCHAR, seq INTEGER, vid INTEGER, type_code SMALLINT, blocked BOOLEAN, tie SMALLINT"
    ),
    f"{STAGE}.stage_log": "window_key VARCHAR, step VARCHAR, row_count BIGINT, staged_at TIMESTAMP",
    f"{OUT}.attribution": (
        "window_key VARCHAR, seq INTEGER, model VARCHAR, event_id VARCHAR, event_ts TIMESTAMP, pid BIGINT, "
        "status UTINYINT, reason UTINYINT, type_code SMALLINT, vid INTEGER"
    ),
    f"{OUT}.audit_events": (
        "window_key VARCHAR, ord INTEGER, event_ts TIMESTAMP, audit_code UTINYINT, type_code SMALLINT, "
        "vid INTEGER, pid BIGINT, other_pid BIGINT, model VARCHAR, event_id VARCHAR, detail VARCHAR"
    ),
    f"{OUT}.run_metrics": (
        "window_key VARCHAR, window_start TIMESTAMP, breakdown VARCHAR, breakdown_value VARCHAR, "
        "metric VARCHAR, value DOUBLE"
    ),
}


class WindowOrderError(RuntimeError):
    """A window was asked for before its predecessor was processed (or after it became outdated)."""


class StoreVersionError(RuntimeError):
    """The database holds Event Stitching tables of another storage layout."""


def on_arrow(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, sql: str) -> duckdb.DuckDBPyRelation:
    """`sql` with the Arrow `table` readable as `name`. Not `con.register`: a view registered and dropped
    inside a transaction keeps its Arrow data alive until the transaction ends (a long run would hold every
    window's rows)."""
    return con.from_arrow(table).query(name, sql)


def sql_text(value: str) -> str:
    """A SQL string literal (for statements `on_arrow` runs, which take no parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def columns_ddl(cols: dict[str, str]) -> str:
    return ", ".join(f"{c} {t}" for c, t in cols.items())


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas and tables (idempotent). A database written by the previous storage layout
    (versioned state tables) is refused with a clear error instead of being mixed with this one."""
    old = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = ? and table_name = 'live_profiles'",
        [STATE],
    ).fetchall()[0]
    if old and old[0]:
        raise StoreVersionError(
            "this DuckDB file holds Event Stitching tables of an older storage layout "
            f"({STATE}.live_profiles); "
            f"drop the schemas {STAGE}, {STATE} and {OUT} (or use a new file) and re-run the windows"
        )
    for schema in (STAGE, STATE, OUT):
        con.execute(f"create schema if not exists {schema}")
    for name, ddl in _DDL.items():
        con.execute(f"create table if not exists {name} ({ddl})")
    # files written before undo logs were kept per commit: their windows' `undo_window` is null, which
    # `undo.py` reads as the window itself (each of those windows has its own undo log)
    has = con.execute(
        "select count(*) from information_schema.columns "
        "where table_schema = ? and table_name = 'windows' and column_name = 'undo_window'",
        [STATE],
    ).fetchall()[0]
    if not has[0]:
        con.execute(f"alter table {STATE}.windows add column undo_window TIMESTAMP")
    for name, cols in STATE_TABLES.items():
        con.execute(f"create table if not exists {STATE}.{name} ({columns_ddl(cols)})")
        con.execute(
            f"create table if not exists {STATE}.undo_{name} (undo_window TIMESTAMP, {columns_ddl(cols)})"
        )
    row = con.execute(f"select max(schema_version) from {STATE}.meta").fetchall()[0]
    if row is None or row[0] is None:
        con.execute(f"insert into {STATE}.meta values ({SCHEMA_VERSION})")
    elif int(row[0]) != SCHEMA_VERSION:
        raise StoreVersionError(
            f"{STATE}.meta says storage layout {row[0]}, this version writes layout {SCHEMA_VERSION}; "
            f"drop the schemas {STAGE}, {STATE} and {OUT} (or use a new file) and re-run the windows"
        )
