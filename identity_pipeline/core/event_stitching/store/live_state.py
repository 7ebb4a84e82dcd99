"""Versioned state and the live tables, and loading the subgraph a window touches (plus carrying the rows
it did not load along the window's merges)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from identity_pipeline.core.event_stitching.store.tables import (
    _HASH_KEY_COLUMNS,
    _HASH_PROBE,
    LIVE_COLUMNS,
    LIVE_HASH_KEYS,
    LIVE_KEYS,
    STATE,
    STATE_COLUMNS,
    _key_exprs,
    _live_ddl,
    ensure_schema,
)
from identity_pipeline.core.event_stitching.store.windows import Window, _next_sequence_before
from identity_pipeline.core.source_io import quote_ident
from identity_pipeline.core.storage import first_row, read_frame, transaction


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
    row = first_row(
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
        point_current_views(con)  # the live tables may now be older than the newest processed window


class KeyCollisionError(RuntimeError):
    """Two identifier values (or two profile ids) of the live state got the same 64-bit hash key.

    Astronomically unlikely (~n^2 / 2^65 for n distinct values); raised before anything is written so the
    state stays correct, rather than letting one value's rows stand for another's."""


def _check_unique_value_keys(con: duckdb.DuckDBPyConnection) -> None:
    """After a rebuild: every key of the live tables names one value and one profile (a full scan; rare)."""
    row = first_row(
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


# the state tables the published views read, through `es_state.current_<name>`
CURRENT_STATE = ("profiles", "profile_values", "value_registry", "redirects")


def live_is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """The live tables hold the state after the newest processed window (always so after windows processed
    in order; not after an earlier window was re-run and the later ones not yet)."""
    row = first_row(
        con.execute(
            f"select (select max(valid_before) from {STATE}.live_as_of) "
            f"is not distinct from (select max(window_end) from {STATE}.windows)"
        )
    )
    return bool(row and row[0])


def point_current_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the views `es_state.current_<name>` (the current graph state the published views and the
    asset checks read) over the live tables when they are current, else over the version history.

    The live tables hold only current rows, so reading them costs the size of the current graph; the latest
    version per key costs a window function over every version ever written, which grows with history (at
    10M events, counting the identifier values took 19 s instead of 4 s, one profile's values 6.3 s instead
    of 0.25 s; see docs/event-stitching-storage.md). The history is read only in the state a re-run leaves
    until the later windows are re-run too. Called wherever `live_as_of` moves (`ensure_live`, `save_window`
    via `publish_views`), in the same transaction, so a failed run never leaves the views on live tables
    that are not current."""
    current = live_is_current(con)
    for name in CURRENT_STATE:
        sql = _live(name) if current else _latest(name, "true")
        con.execute(f"create or replace view {STATE}.current_{name} as {sql}").fetchall()


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
    row = first_row(
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
    dup = first_row(con.execute("select count(*) - count(distinct vkey) from __es_wv"))
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
