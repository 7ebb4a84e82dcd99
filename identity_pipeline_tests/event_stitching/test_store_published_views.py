"""The published views read the live tables after windows in order (`point_current_views`): on random streams,
after every window, they hold exactly the rows they hold when read over the whole version history."""

from __future__ import annotations

import duckdb
import pandas as pd
from hypothesis import HealthCheck, given, settings

from identity_pipeline.core.event_stitching import store
from identity_pipeline.core.event_stitching.store.live_state import CURRENT_STATE, _latest, live_is_current
from identity_pipeline_tests.event_stitching.helpers import T0
from identity_pipeline_tests.event_stitching.strategies import streams, window_inputs

STATE_VIEWS = (store.PROFILES_VIEW, store.VALUES_VIEW, store.REDIRECTS_VIEW, store.ATTRIBUTION_VIEW)


def _read(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    return {name: con.execute(f"select * from main.{name}").df() for name in STATE_VIEWS}


def _read_over_history(con: duckdb.DuckDBPyConnection, config) -> dict[str, pd.DataFrame]:
    """The same views with `es_state.current_*` over the version history (as before the live tables)."""
    for name in CURRENT_STATE:
        con.execute(f"create or replace view {store.STATE}.current_{name} as {_latest(name, 'true')}")
    try:
        return _read(con)
    finally:
        store.publish_views(con, config)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(max_windows=4, max_events=14))
def test_views_over_the_live_tables_equal_the_views_over_the_history_after_every_window(stream):
    config, windows = stream
    con = duckdb.connect()
    for i, evs in enumerate(windows):
        window = store.window_for_key(config, f"{T0 + pd.Timedelta(days=i):%Y-%m-%d}")
        events_df, obs = window_inputs(evs, config)
        store.process_window(con, config, window, events_df, obs)
        assert live_is_current(con)
        on_live = _read(con)
        over_history = _read_over_history(con, config)
        for name in STATE_VIEWS:  # same rows in the same order (the views sort them)
            pd.testing.assert_frame_equal(on_live[name], over_history[name], obj=name)
