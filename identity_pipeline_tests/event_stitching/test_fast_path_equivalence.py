"""The fast path (`fast_path/`, through `frames.py`) gives exactly the reference's WindowResult on every
input.

* hypothesis streams of the engine's strategies (small pools: most components are complex),
* targeted "people" streams (many people with their own values, a few shared values, several windows with
  the state carried: most components simple, some complex),
* every seed example / scenario / rule test re-run with a stitch function that runs both paths and compares,
* the dispatch: generator-like data goes mostly through the simple path (`events_fast_path`).
"""

from __future__ import annotations

import inspect
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity_pipeline.core.event_stitching import engine
from identity_pipeline.core.event_stitching.frames import stitch_frames
from identity_pipeline.core.event_stitching.reference import profile_id_for, run_reference
from identity_pipeline.core.event_stitching.state import GraphState
from identity_pipeline_tests.event_stitching import helpers, test_rules, test_scenarios, test_seed_examples
from identity_pipeline_tests.event_stitching.helpers import T0
from identity_pipeline_tests.event_stitching.strategies import configs, streams, window_inputs

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_window(state, events, observations, config, window_key) -> engine.WindowResult:
    g, ctx = run_reference(state, events, observations, config, window_key)
    return engine.build_result(g, ctx, observations)


def assert_same(ref: engine.WindowResult, fast: engine.WindowResult) -> None:
    for name in ("profiles", "profile_values", "value_registry", "redirects"):
        # state row order carries no meaning (GraphState.sorted); every row and value must match
        pdt.assert_frame_equal(
            getattr(ref.state.sorted(), name), getattr(fast.state.sorted(), name), obj=name
        )
    assert ref.state.next_sequence == fast.state.next_sequence
    pdt.assert_frame_equal(ref.attribution, fast.attribution, obj="attribution")
    pdt.assert_frame_equal(ref.audit_events, fast.audit_events, obj="audit_events")
    fm = {k: v for k, v in fast.metrics.items() if k != "events_fast_path"}
    assert ref.metrics == fm
    pdt.assert_frame_equal(ref.metrics_by_model, fast.metrics_by_model, obj="metrics_by_model")
    pdt.assert_frame_equal(
        ref.metrics_by_identifier_type, fast.metrics_by_identifier_type, obj="metrics_by_identifier_type"
    )


def compare_window(state, events, observations, config, window_key) -> engine.WindowResult:
    ref = reference_window(state, events, observations, config, window_key)
    fast = stitch_frames(state, events, observations, config, window_key)
    assert_same(ref, fast)
    return fast


def run_both(config, windows: list[list[dict[str, Any]]]) -> int:
    """Run the windows through the reference and the fast path, each with its own state carried, and compare
    every window. Returns the number of events that took the fast path."""
    s_ref = s_fast = GraphState.empty()
    fast_events = 0
    for i, evs in enumerate(windows):
        events_df, obs = window_inputs(evs, config)
        ref = reference_window(s_ref, events_df, obs, config, f"w{i}")
        fast = stitch_frames(s_fast, events_df, obs, config, f"w{i}")
        assert_same(ref, fast)
        fast_events += int(fast.metrics["events_fast_path"])
        s_ref, s_fast = ref.state, fast.state
    return fast_events


# ------------------------------------------------------------------------------------------------------------
# hypothesis: the engine's random streams (dense collisions)
# ------------------------------------------------------------------------------------------------------------


@SETTINGS
@given(streams(max_windows=4, max_events=14))
def test_fast_path_equals_reference_on_random_streams(stream):
    config, windows = stream
    run_both(config, windows)


# ------------------------------------------------------------------------------------------------------------
# hypothesis: generator-like people streams (mostly simple components, some complex)
# ------------------------------------------------------------------------------------------------------------


@st.composite
def people_streams(draw: st.DrawFn, max_windows: int = 4):
    config = draw(configs())
    n_people = draw(st.integers(1, 12))
    n_windows = draw(st.integers(1, max_windows))
    windows = []
    next_id = 0
    for w in range(n_windows):
        evs = []
        for _ in range(draw(st.integers(0, 25))):
            p = draw(st.integers(0, n_people - 1))
            minute = draw(st.integers(0, 24 * 60 - 1)) if draw(st.booleans()) else draw(st.integers(0, 90))
            e: dict[str, Any] = {
                "model": draw(st.sampled_from(["web", "app"])),
                "event_id": f"e{next_id:05d}",
                "event_ts": T0 + pd.Timedelta(days=w, minutes=minute),
            }
            next_id += 1
            dev = draw(st.integers(0, 2))
            epoch = draw(st.sampled_from([0, 0, 0, 1]))  # cookie reset now and then
            if draw(st.integers(0, 3)) == 0:
                e["user_id"] = f"u{p}"
                if draw(st.booleans()):
                    e["email"] = f"p{p}@x.com"
            if draw(st.integers(0, 3)) > 0:
                e["cookie_id"] = f"c{p}_{dev}_{w // 2 + epoch}"
            if draw(st.booleans()):
                e["session_id"] = f"s{p}_{dev}_{w}_{minute // 30}"
            if draw(st.integers(0, 3)) == 0:
                e["device_id"] = f"d{p}_{dev}"
            if draw(st.integers(0, 4)) == 0:
                e["anonymous_id"] = f"a{p}_{dev}"
            if draw(st.integers(0, 15)) == 0:  # shared / placeholder / conflicting values
                t = draw(st.sampled_from(["cookie_id", "email", "user_id", "device_id"]))
                e[t] = draw(
                    st.sampled_from(
                        {
                            "cookie_id": ["kiosk", "c0_0_0"],
                            "email": ["test@test.com", "p0@x.com"],
                            "user_id": ["u0", "u1"],
                            "device_id": ["d0_0", "shared"],
                        }[t]
                    )
                )
            evs.append(e)
        windows.append(evs)
    return config, windows


@SETTINGS
@given(people_streams())
def test_fast_path_equals_reference_on_people_streams(stream):
    config, windows = stream
    run_both(config, windows)


def test_people_like_data_mostly_takes_the_fast_path():
    config = helpers.make_config()
    windows = []
    n = 0
    for w in range(3):
        evs = []
        for p in range(200):
            for j in range(3):
                e = helpers.ev(f"e{n}", w * 1440 + p * 2 + j * 0.5, cookie_id=f"c{p}", session_id=f"s{p}_{w}")
                if j == 0 and p % 3 == 0:
                    e["user_id"] = f"u{p}"
                if p % 50 == 0 and j == 2:
                    e["cookie_id"] = "shared_kiosk"  # a few complex components
                evs.append(e)
                n += 1
        windows.append(evs)
    fast = run_both(config, windows)
    assert fast >= 0.9 * n


def test_merge_path_repoints_older_redirects_and_moves_memberships_of_loaded_profiles():
    # Window 0: A, B, C are created; C merges into B (redirect C -> B). Window 1: an event links A and B,
    # both loaded: B merges into A (oldest), C's redirect must now point to A (one hop), B's memberships
    # (incl. its device, a profile-wide value) move to A. Then a login event merges a new anonymous profile
    # into A in the same window (creator + loaded profile). No limit applies: the merge path decides all.
    config = helpers.make_config(device_id={"max_unique_values_per_profile": 3})
    w0 = [
        helpers.ev("a1", 1, cookie_id="ca", user_id="u1"),
        helpers.ev("b1", 2, cookie_id="cb", device_id="d1"),
        helpers.ev("c1", 3, cookie_id="cc"),
        helpers.ev("bc", 4, cookie_id=["cb", "cc"]),
    ]
    w1 = [
        helpers.ev("new", 1440 + 1, anonymous_id="x1"),
        helpers.ev("ab", 1440 + 2, cookie_id=["ca", "cb"]),
        helpers.ev("login", 1440 + 3, anonymous_id="x1", user_id="u1"),
    ]
    assert run_both(config, [w0, w1]) == 7
    s = GraphState.empty()
    for i, evs in enumerate([w0, w1]):
        events_df, obs = window_inputs(evs, config)
        r = stitch_frames(s, events_df, obs, config, f"w{i}")
        s = r.state
    red = dict(zip(s.redirects["from_id"], s.redirects["to_id"], strict=True))
    a, b, c, n = (profile_id_for("web", e) for e in ("a1", "b1", "c1", "new"))
    assert red == {b: a, c: a, n: a}
    assert set(s.profile_values["dinmo_stitched_profile_id"]) == {a}
    assert r.metrics["profiles_merged"] == 2 and r.metrics["profiles_created"] == 1


# ------------------------------------------------------------------------------------------------------------
# every engine example test, re-run with both paths compared at each window
# ------------------------------------------------------------------------------------------------------------


def _example_tests():
    out = []
    for mod in (test_seed_examples, test_scenarios, test_rules):
        for name, fn in sorted(vars(mod).items()):
            if name.startswith("test_") and inspect.isfunction(fn) and not inspect.signature(fn).parameters:
                out.append(pytest.param(fn, id=f"{mod.__name__.rsplit('.', 1)[-1]}::{name}"))
    return out


@pytest.mark.parametrize("test_fn", _example_tests())
def test_example_tests_give_identical_results_on_both_paths(test_fn, monkeypatch):
    monkeypatch.setattr(helpers, "stitch_window", compare_window)
    for mod in (test_seed_examples, test_scenarios, test_rules):
        if hasattr(mod, "stitch_window"):
            monkeypatch.setattr(mod, "stitch_window", compare_window)
    test_fn()


def test_engine_dispatches_to_the_fast_path():
    config = helpers.make_config()
    events_df, obs = window_inputs(
        [helpers.ev("e1", 0, cookie_id="c1"), helpers.ev("e2", 1, cookie_id="c1")], config
    )
    r = engine.stitch_window(GraphState.empty(), events_df, obs, config, "w0")
    assert r.metrics.get("events_fast_path") == 2
    ref = engine.stitch_window(GraphState.empty(), events_df, obs, config, "w0", use_fast_path=False)
    assert "events_fast_path" not in ref.metrics or ref.metrics["events_fast_path"] == 0
