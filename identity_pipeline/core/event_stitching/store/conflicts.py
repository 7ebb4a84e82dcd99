"""Incremental bookkeeping of conflicted values (a non-quarantined value active on more than one active
profile) for the `active_conflicts` metric."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import duckdb

from identity_pipeline.core.event_stitching.store.diffs import _write_diff
from identity_pipeline.core.event_stitching.store.live_state import _key_in, _live
from identity_pipeline.core.event_stitching.store.tables import STATE
from identity_pipeline.core.event_stitching.store.windows import Window
from identity_pipeline.core.storage import first_row


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
    row = first_row(
        con.execute(
            f"""select count(*) from {STATE}.live_value_conflicts
            where is_conflict and (expires_at is null or expires_at >= ?)""",
            [window.end],
        )
    )
    return int(row[0]) if row else 0
