"""The store keeps `active_conflicts` incrementally (only the values a window touched are re-evaluated):
after every window of random streams it equals a full recount over the whole live graph."""

from __future__ import annotations

import duckdb
import pandas as pd
from hypothesis import HealthCheck, given, settings

from identity_pipeline.core.event_stitching import store
from identity_pipeline.core.event_stitching.store.conflicts import _lifetimes_sql
from identity_pipeline_tests.event_stitching.helpers import T0, ev, make_config, pid
from identity_pipeline_tests.event_stitching.strategies import streams, window_inputs


def _full_recount(con: duckdb.DuckDBPyConnection, config, window: store.Window) -> int:
    """Values active on more than one active profile, not quarantined, not expired at the window's end."""
    s = store.STATE
    row = con.execute(
        f"""with act as (
                select m.identifier_type, m.value, count(distinct m.dinmo_stitched_profile_id) n
                from {s}.live_profile_values m join {s}.live_profiles p using (dinmo_stitched_profile_id)
                where m.status = 'active' and p.status = 'active' group by all)
            select count(*) from act
            left join {s}.live_value_registry r using (identifier_type, value)
            left join {_lifetimes_sql(config)} using (identifier_type)
            where n > 1 and not coalesce(r.quarantined, false)
              and (lt.lifetime_seconds is null
                   or (case when lt.from_last_seen then r.last_seen_at else r.first_seen_at end)
                      + to_microseconds(cast(lt.lifetime_seconds * 1e6 as BIGINT)) >= ?)""",
        [window.end],
    ).fetchall()
    return int(row[0][0])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(max_windows=4, max_events=14))
def test_active_conflicts_metric_equals_a_full_recount_after_every_window(stream):
    config, windows = stream
    con = duckdb.connect()
    for i, evs in enumerate(windows):
        window = store.window_for_key(config, f"{T0 + pd.Timedelta(days=i):%Y-%m-%d}")
        events_df, obs = window_inputs(evs, config)
        metrics = store.process_window(con, config, window, events_df, obs)
        assert metrics["active_conflicts"] == _full_recount(con, config, window)


def test_a_conflicting_value_the_window_does_not_observe_is_recounted_from_the_live_tables():
    # d is active on P1, P2 and P3 (different user ids): one active conflict. Window 2 demotes d on P1 (one
    # device per profile) without observing d: d is touched but not a window value, and stays a conflict
    # (P2, P3), which only the live tables can tell.
    cfg = make_config(device_id={"max_unique_values_per_profile": 1})
    con = duckdb.connect()
    windows = [
        (
            "2026-11-01",
            [ev(f"e{i}", i, user_id=f"u{i}", device_id="d") for i in (1, 2, 3)],
        ),
        ("2026-11-02", [ev("e4", 24 * 60 + 1, user_id="u1", device_id="d2")]),
    ]
    conflicts = []
    for key, evs in windows:
        window = store.window_for_key(cfg, key)
        events_df, obs = window_inputs(evs, cfg)
        conflicts.append(store.process_window(con, cfg, window, events_df, obs)["active_conflicts"])
        assert conflicts[-1] == _full_recount(con, cfg, window)
    assert conflicts == [1, 1]
    status = con.execute(
        f"select value, status from main.{store.VALUES_VIEW} where dinmo_stitched_profile_id = ? "
        "order by value",
        [pid("e1")],
    ).fetchall()
    assert status == [("d", "demoted"), ("d2", "active"), ("u1", "active")]
