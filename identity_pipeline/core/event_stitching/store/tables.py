"""Names, columns and keys of the Event Stitching tables, and `ensure_schema` that creates them."""

from __future__ import annotations

import duckdb

from identity_pipeline.core.source_io import quote_ident

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


class WindowOrderError(RuntimeError):
    """A window was asked for before its predecessor was processed (or after it became outdated)."""


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
