"""Hypothesis strategies for random small event streams, reused to compare engine paths.

`streams()` draws (config, windows) where windows is a list of lists of event dicts (see helpers.ev), over a
few identifier types with small value pools so that collisions, merges, conflicts, expiry, demotion and
quarantine all happen. `run_stream(config, windows, stitch_fn)` runs them window by window with the state
carried and returns (final state, results); pass another `stitch_fn` (same signature as `stitch_window`) to
compare a fast path with the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.engine import WindowResult, stitch_window
from identity_pipeline.core.event_stitching.observations import extract_observations
from identity_pipeline.core.event_stitching.state import GraphState
from identity_pipeline_tests.event_stitching.helpers import T0, frames

POOLS: dict[str, list[str]] = {
    "user_id": ["u0", "u1", "u2", "u3"],
    "email": ["a@x.com", "b@x.com", "c@x.com", "test@test.com"],
    "anonymous_id": ["a0", "a1", "a2", "a3", "a4"],
    "cookie_id": ["c0", "c1", "c2"],
    "device_id": ["d0", "d1", "d2", "d3"],
    "session_id": ["s0", "s1", "s2"],
}
MODELS = ["web", "app"]


@st.composite
def configs(draw: st.DrawFn) -> EventStitchingConfig:
    idents: dict[str, dict[str, Any]] = {
        "user_id": {"priority": 1, "anchor": True},
        "email": {
            "priority": 2,
            "anchor": True,
            "standardize": "email",
            "blocked_values": ["test@test.com"],
            "max_unique_values_per_profile": draw(st.sampled_from([1, 1, 2])),
        },
        "anonymous_id": {"priority": 3, "lifetime": draw(st.sampled_from([None, "2h"]))},
        "cookie_id": {"priority": 4, "max_profiles_per_value": draw(st.sampled_from([None, 1, 2]))},
        "device_id": {"priority": 5, "max_unique_values_per_profile": draw(st.sampled_from([None, 1, 2]))},
        "session_id": {
            "priority": 6,
            "lifetime": "30m",
            "lifetime_from": draw(st.sampled_from(["first_seen", "last_seen"])),
        },
    }
    released = []
    if draw(st.booleans()):
        released.append({"identifier": "cookie_id", "value": draw(st.sampled_from(POOLS["cookie_id"]))})
    cols = {t: t for t in idents}
    return EventStitchingConfig.model_validate(
        {
            "window": "daily",
            "start": "2026-11-01",
            "models": [
                {
                    "name": m,
                    "path": f"{m}.csv",
                    "event_id": "event_id",
                    "timestamp": "event_ts",
                    "identifiers": cols,
                }
                for m in MODELS
            ],
            "identifiers": idents,
            "released_values": released,
        }
    )


@st.composite
def events(draw: st.DrawFn, window: int, first_id: int, max_events: int = 12) -> list[dict[str, Any]]:
    n = draw(st.integers(0, max_events))
    out = []
    for i in range(n):
        minute = draw(st.integers(0, 180))  # a few hours: sessions expire, many ties in time
        e: dict[str, Any] = {
            "model": draw(st.sampled_from(MODELS)),
            "event_id": f"e{first_id + i:04d}",
            "event_ts": T0 + pd.Timedelta(days=window, minutes=minute),
        }
        types = draw(st.lists(st.sampled_from(list(POOLS)), min_size=0, max_size=4, unique=True))
        for t in types:
            if t == "user_id" and draw(st.integers(0, 9)) == 0:
                e[t] = draw(st.lists(st.sampled_from(POOLS[t]), min_size=2, max_size=2, unique=True))
            else:
                e[t] = draw(st.sampled_from(POOLS[t]))
        out.append(e)
    return out


@st.composite
def streams(draw: st.DrawFn, max_windows: int = 3, max_events: int = 12, reuse_ids: bool = True):
    """(config, windows): windows[i] holds the events of day i (`reuse_ids`: a window may reuse the event ids
    of earlier ones)."""
    config = draw(configs())
    n = draw(st.integers(1, max_windows))
    windows = []
    next_id = 0
    for w in range(n):
        # sometimes a window reuses event ids of earlier windows (ids are only unique per model and window):
        # the profile such an event creates would get the id of an existing one
        reuse = reuse_ids and next_id > 0 and draw(st.integers(0, 3)) == 0
        first = draw(st.integers(0, next_id)) if reuse else next_id
        evs = draw(events(w, first, max_events))
        next_id = max(next_id, first + len(evs))
        windows.append(evs)
    return config, windows


def reference_stitch(state, events, observations, config, window_key) -> WindowResult:
    """The reference path explicitly (stitch_window may take a faster path)."""
    return stitch_window(state, events, observations, config, window_key, use_fast_path=False)


StitchFn = Callable[[GraphState, pd.DataFrame, pd.DataFrame, EventStitchingConfig, str], WindowResult]


def window_inputs(
    evs: list[dict[str, Any]], config: EventStitchingConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    events_df, long = frames(evs)
    return events_df, extract_observations(long, config)


def run_stream(
    config: EventStitchingConfig,
    windows: list[list[dict[str, Any]]],
    stitch_fn: StitchFn = stitch_window,
    state: GraphState | None = None,
) -> tuple[GraphState, list[WindowResult]]:
    state = state or GraphState.empty()
    results = []
    for i, evs in enumerate(windows):
        events_df, obs = window_inputs(evs, config)
        r = stitch_fn(state, events_df, obs, config, f"w{i}")
        state = r.state
        results.append(r)
    return state, results
