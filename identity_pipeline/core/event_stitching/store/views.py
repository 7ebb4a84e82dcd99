"""The published views under DinMo's names: the integer-coded tables with their strings joined back.

Profile ids are `esp_` + the 16 hex digits of the profile's key; a value's type and string come from the
dictionary. The state tables hold the graph after the newest processed window, so the current-state views
(profiles, identifier values, redirects) read them directly; `resolved_dinmo_stitched_profile_id` follows a
profile's `merged_to` (always the final survivor: redirects are one hop).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from identity_pipeline.core.event_stitching.fast_path.outcome import AUDIT_KINDS
from identity_pipeline.core.event_stitching.metrics import REASONS
from identity_pipeline.core.event_stitching.store.tables import (
    ATTRIBUTION_VIEW,
    AUDIT_VIEW,
    METRICS_VIEW,
    OUT,
    PROFILES_VIEW,
    PUBLISHED,
    REDIRECTS_VIEW,
    STATE,
    VALUES_VIEW,
)
from identity_pipeline.core.storage import first_row, read_frame


def esp(key: str) -> str:
    """SQL of a profile id from its 64-bit key."""
    return f"('esp_' || lpad(lower(hex({key})), 16, '0'))"


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _codes(values: tuple, first: int = 0) -> str:
    """`(values (0, 'a'), (1, 'b'), ...) t(code, name)` for a tuple of names."""
    rows = ", ".join(f"({i + first}, {_literal(v)})" for i, v in enumerate(values))
    return f"(values {rows}) t(code, name)"


def _lifetimes(config: Any) -> str:
    rows = []
    for t, pol in dict(config.identifiers).items():
        d = pol.lifetime_delta()
        us = "NULL" if d is None else str(int(d.total_seconds() * 1_000_000))
        rows.append(f"({_literal(t)}, {us}::BIGINT, {str(pol.lifetime_from == 'last_seen').lower()})")
    return "(values " + ", ".join(rows) + ") lt(identifier_type, lifetime_us, from_last_seen)"


def attribution_select(where: str = "true") -> str:
    reasons = _codes(REASONS, first=1)
    return f"""
        select a.model, a.event_id, a.event_ts, a.window_key,
               {esp("p.pkey")} as dinmo_stitched_profile_id,
               {esp("r.pkey")} as resolved_dinmo_stitched_profile_id,
               case a.status when 0 then 'stitched' when 1 then 'excluded'
                    else 'invalid status ' || a.status end as status,
               rs.name as reason,
               ty.identifier_type as decided_by_identifier_type,
               d.value as decided_by_value
        from (select * from {OUT}.attribution where {where}) a
        left join {STATE}.profiles p on p.pid = a.pid
        left join {STATE}.profiles r on r.pid = coalesce(p.merged_to, p.pid)
        left join {reasons.replace(" t(", " rs(")} on rs.code = a.reason
        left join {STATE}.identifier_types ty on ty.type_code = a.type_code
        left join {STATE}.value_dictionary d on d.vid = a.vid
        order by a.window_key, a.seq"""


def profiles_select(where: str = "true") -> str:
    return f"""
        select {esp("p.pkey")} as dinmo_stitched_profile_id, p.pid as created_sequence, p.created_at,
               p.first_seen_at, p.last_seen_at,
               case p.status when 0 then 'active' when 1 then 'merged'
                    else 'invalid status ' || p.status end as status,
               {esp("m.pkey")} as merged_to_dinmo_stitched_profile_id,
               {esp("coalesce(m.pkey, p.pkey)")} as resolved_dinmo_stitched_profile_id,
               p.is_known, case when p.is_known then 'known' else 'anonymous' end as profile_type,
               p.event_count
        from (select * from {STATE}.profiles where {where}) p
        left join {STATE}.profiles m on m.pid = p.merged_to
        order by p.pid"""


def identifier_values_select(config: Any, where: str = "true") -> str:
    """Status as of the end of the newest processed window: blocked > quarantined > demoted > expired >
    active."""
    return f"""
        with as_of as (select max(window_end) as t from {STATE}.windows where status = 'processed')
        select {esp("p.pkey")} as dinmo_stitched_profile_id, ty.identifier_type, d.value,
               case when m.status not in (0, 1, 2) then 'invalid status ' || m.status
                    when m.status = 2 then 'blocked'
                    when coalesce(g.quarantined, false) then 'quarantined'
                    when m.status = 1 then 'demoted'
                    when lt.lifetime_us is not null and as_of.t >
                         (case when lt.from_last_seen then g.last_seen_at else g.first_seen_at end)
                         + to_microseconds(lt.lifetime_us) then 'expired'
                    else 'active' end as status,
               m.first_seen_at, m.last_seen_at, m.event_count
        from (select * from {STATE}.memberships where {where}) m
        cross join as_of
        join {STATE}.profiles p on p.pid = m.pid
        join {STATE}.value_dictionary d on d.vid = m.vid
        join {STATE}.identifier_types ty on ty.type_code = m.type_code
        left join {STATE}.registry g on g.vid = m.vid
        left join {_lifetimes(config)} on lt.identifier_type = ty.identifier_type
        order by dinmo_stitched_profile_id, ty.identifier_type, d.value"""


def redirects_select() -> str:
    return f"""
        select {esp("f.pkey")} as from_id, {esp("t.pkey")} as to_id,
               {esp("t.pkey")} as resolved_dinmo_stitched_profile_id, r.merged_at, r.evidence_model,
               r.evidence_event_id, r.window_key
        from {STATE}.redirects r
        join {STATE}.profiles f on f.pid = r.from_pid
        join {STATE}.profiles t on t.pid = r.to_pid
        order by from_id"""


def audit_select(where: str = "true") -> str:
    return f"""
        select a.window_key, a.event_ts, k.name as audit_type, ty.identifier_type, d.value,
               {esp("p.pkey")} as dinmo_stitched_profile_id,
               {esp("o.pkey")} as other_dinmo_stitched_profile_id,
               a.model, a.event_id, a.detail
        from (select * from {OUT}.audit_events where {where}) a
        left join {_codes(AUDIT_KINDS).replace(" t(", " k(")} on k.code = a.audit_code
        left join {STATE}.identifier_types ty on ty.type_code = a.type_code
        left join {STATE}.value_dictionary d on d.vid = a.vid
        left join {STATE}.profiles p on p.pid = a.pid
        left join {STATE}.profiles o on o.pid = a.other_pid
        order by a.window_key, a.ord"""


def publish_views(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    """(Re)create the six published views (cheap; the values view depends on the config's lifetimes)."""
    views = {
        ATTRIBUTION_VIEW: attribution_select(),
        PROFILES_VIEW: profiles_select(),
        VALUES_VIEW: identifier_values_select(config),
        REDIRECTS_VIEW: redirects_select(),
        AUDIT_VIEW: audit_select(),
        METRICS_VIEW: (
            f"select * from {OUT}.run_metrics order by window_start, breakdown, breakdown_value, metric"
        ),
    }
    for name, sql in views.items():
        con.execute(f"create or replace view main.{name} as {sql}").fetchall()


def published_table(con: duckdb.DuckDBPyConnection, name: str, window_key: str | None = None) -> pd.DataFrame:
    """One published view as a DataFrame (optionally one window of a per-window output)."""
    if name not in PUBLISHED:
        raise KeyError(name)
    exists = first_row(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = 'main' and table_name = ?",
            [name],
        )
    )
    if not exists or not exists[0]:
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
