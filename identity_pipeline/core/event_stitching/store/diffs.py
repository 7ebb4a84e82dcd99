"""A window's changed rows: the diff of the engine's state against what it loaded, appended as versions of
the window and applied to the live tables."""

from __future__ import annotations

import duckdb
import pandas as pd

from identity_pipeline.core.event_stitching.store.live_state import (
    KeyCollisionError,
    _cast_frame_sql,
    _fit,
    _select_cols,
)
from identity_pipeline.core.event_stitching.store.tables import (
    LIVE_COLUMNS,
    LIVE_KEYS,
    STATE,
    STATE_COLUMNS,
    STATE_KEYS,
    _key_exprs,
)
from identity_pipeline.core.event_stitching.store.windows import Window
from identity_pipeline.core.source_io import quote_ident
from identity_pipeline.core.storage import first_row


def _state_fingerprint(con: duckdb.DuckDBPyConnection) -> int:
    """Hash of the state rows this window wrote (the `__es_diff_<name>` tables of `_write_diff`)."""
    total = 0
    for name in LIVE_COLUMNS:
        row = first_row(
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
    row = first_row(con.execute(f"select count(*) from __es_diff_{name}"))
    return int(row[0]) if row else 0


def _check_new_profile_keys(con: duckdb.DuckDBPyConnection) -> None:
    """No profile written by this window shares its hash key with another profile (`KeyCollisionError`)."""
    con.execute(
        "create or replace temp table __es_pkeys as select distinct dinmo_stitched_profile_id, "
        "hash(dinmo_stitched_profile_id) as pkey from __es_diff_profiles where not is_deleted"
    ).fetchall()
    row = first_row(
        con.execute(
            f"""select d.dinmo_stitched_profile_id, l.dinmo_stitched_profile_id
            from __es_pkeys d join {STATE}.live_profiles l on l.pkey = d.pkey
            where l.dinmo_stitched_profile_id <> d.dinmo_stitched_profile_id limit 1"""
        )
    )
    if row is None:
        row = first_row(
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
