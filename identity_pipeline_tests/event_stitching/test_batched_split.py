"""Which path decides each event (`batched/split.py`): simple, merge, complex or excluded.

The equivalence tests prove the fast path's outputs equal the reference's whatever the split; these check the
split itself on one window holding each situation, so a split that sends everything to the reference (correct
but slow) or lets a limit through the simple path is caught here by name.
"""

from __future__ import annotations

from identity_pipeline.core.event_stitching.batched import stitch_window_batched
from identity_pipeline.core.event_stitching.batched.split import split_components
from identity_pipeline.core.event_stitching.batched.window_input import read_window
from identity_pipeline.core.event_stitching.reference import Context
from identity_pipeline.core.event_stitching.state import GraphState
from identity_pipeline_tests.event_stitching import helpers
from identity_pipeline_tests.event_stitching.strategies import window_inputs

DAY = 1440


def _paths(config, state, evs, window_key="w1") -> dict[str, str]:
    events_df, obs = window_inputs(evs, config)
    ctx = Context.build(config, window_key)
    w = read_window(state, events_df, obs, ctx, window_key)
    assert w is not None
    s = split_components(w, ctx, config.identifiers)
    out = {}
    for i, eid in enumerate(w.e_e):
        flags = {
            "simple": s.ev_simple[i],
            "merge": s.ev_merge[i],
            "complex": s.ev_complex[i],
            "excluded": s.ev_excluded[i],
        }
        assert sum(bool(v) for v in flags.values()) == 1, (eid, flags)  # exactly one path per event
        out[str(eid)] = next(k for k, v in flags.items() if v)
    return out


def _state_after(config, evs) -> GraphState:
    events_df, obs = window_inputs(evs, config)
    return stitch_window_batched(GraphState.empty(), events_df, obs, config, "w0").state


def test_each_event_takes_the_path_of_its_component():
    config = helpers.make_config()
    state = _state_after(
        config,
        [
            helpers.ev("a0", 1, cookie_id="ca"),  # profile A
            helpers.ev("b0", 2, cookie_id="cb"),  # profile B
            helpers.ev("k0", 3, cookie_id="ck", user_id="u1"),  # profile K, known (anchor u1)
        ],
    )
    paths = _paths(
        config,
        state,
        [
            helpers.ev("new1", DAY + 1, cookie_id="c_new"),  # one creator, nothing loaded
            helpers.ev("new2", DAY + 2, cookie_id="c_two"),  # a creator and an event on its value
            helpers.ev("new3", DAY + 3, cookie_id="c_two"),
            helpers.ev("back", DAY + 4, cookie_id="ca"),  # returns to one loaded profile
            helpers.ev("join", DAY + 5, cookie_id=["ca", "cb"]),  # reaches A and B: a merge, nothing else
            helpers.ev("u2", DAY + 6, cookie_id="ck", user_id="u2"),  # a 2nd user_id on K: anchor limit
            helpers.ev("blk", DAY + 7, email="test@test.com"),  # only a blocked value
        ],
    )
    assert paths == {
        "new1": "simple",
        "new2": "simple",
        "new3": "simple",
        "back": "merge",  # in the component of `join`: A and B are one component
        "join": "merge",
        "u2": "complex",
        "blk": "excluded",
    }


def test_a_component_with_two_creators_merges_and_one_without_a_profile_stays_simple():
    config = helpers.make_config()
    paths = _paths(
        config,
        GraphState.empty(),
        [
            helpers.ev("x1", 1, cookie_id="c1"),
            helpers.ev("x2", 2, cookie_id="c2"),
            helpers.ev("x3", 3, cookie_id=["c1", "c2"]),  # joins the profiles x1 and x2 created
            helpers.ev("y1", 4, cookie_id="c3", session_id="s3"),
            helpers.ev("y2", 5, session_id="s3"),
        ],
        window_key="w0",
    )
    assert paths == {"x1": "merge", "x2": "merge", "x3": "merge", "y1": "simple", "y2": "simple"}


def test_an_expiring_value_sends_its_component_to_the_reference():
    config = helpers.make_config()  # session_id: lifetime 30m from first seen
    paths = _paths(
        config,
        GraphState.empty(),
        [
            helpers.ev("s1", 1, session_id="s"),
            helpers.ev("s2", 45, session_id="s"),  # 44 minutes later: the session has expired
            helpers.ev("c1", 50, cookie_id="c"),
        ],
        window_key="w0",
    )
    assert paths == {"s1": "complex", "s2": "complex", "c1": "simple"}
