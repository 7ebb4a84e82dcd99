"""Catalogue of small scenarios with hand-written expected graphs."""

from __future__ import annotations

import random

import pandas as pd
import pandas.testing as pdt

from identity_pipeline.core.event_stitching.state import GraphState
from identity_pipeline_tests.event_stitching.helpers import (
    active_profiles,
    attribution,
    audits,
    ev,
    graph,
    make_config,
    pid,
    quarantined,
    redirects,
    run,
    run_windows,
    stitch,
    values_of,
)


def test_chain_a_b_then_b_c_is_one_profile():
    state, r = run(
        make_config(),
        [ev("e1", 1, anonymous_id="a", device_id="b"), ev("e2", 2, device_id="b", ip_address="c")],
    )
    assert active_profiles(state) == {pid("e1")}
    assert set(values_of(state, pid("e1"))) == {
        ("anonymous_id", "a"),
        ("device_id", "b"),
        ("ip_address", "c"),
    }
    assert redirects(state) == {}


def test_fan_in_three_profiles_merge_into_the_oldest():
    state, r = run(
        make_config(),
        [
            ev("e1", 1, anonymous_id="a"),
            ev("e2", 2, device_id="d"),
            ev("e3", 3, ip_address="i"),
            ev("e4", 4, anonymous_id="a", device_id="d", ip_address="i"),
        ],
    )
    assert active_profiles(state) == {pid("e1")}
    assert redirects(state) == {pid("e2"): pid("e1"), pid("e3"): pid("e1")}
    assert attribution(r)["e4"] == (pid("e1"), "stitched", None)
    assert r.metrics["profiles_merged"] == 2 and r.metrics["profiles_created"] == 3
    g = graph(state)
    assert g[pid("e2")]["status"] == "merged" and g[pid("e2")]["values"] == {}


def test_diamond_two_paths_to_one_profile():
    # a-b, a-c, then b-c: everything is already one profile, no merge
    state, r = run(
        make_config(),
        [
            ev("e1", 1, anonymous_id="a", device_id="b"),
            ev("e2", 2, anonymous_id="a", ip_address="c"),
            ev("e3", 3, device_id="b", ip_address="c"),
        ],
    )
    assert active_profiles(state) == {pid("e1")}
    assert r.metrics["profiles_merged"] == 0


def test_older_profile_appearing_later_cascade_survivor_is_oldest():
    # P1 (oldest) and P2, P3; first P3 absorbs P2 (P2 older -> survivor P2), then P1 absorbs P2
    state, r = run(
        make_config(),
        [
            ev("e1", 1, anonymous_id="a1"),
            ev("e2", 2, anonymous_id="a2"),
            ev("e3", 3, anonymous_id="a3"),
            ev("e4", 4, anonymous_id="a3", device_id="x"),
            ev("e5", 5, anonymous_id="a2", ip_address="y", device_id="x"),
            ev("e6", 6, ip_address="y", anonymous_id="a1"),
        ],
    )
    assert active_profiles(state) == {pid("e1")}
    # redirects are one hop to the final survivor (e3's redirect re-pointed from e2 to e1)
    assert redirects(state) == {pid("e2"): pid("e1"), pid("e3"): pid("e1")}
    g = graph(state)
    assert g[pid("e3")]["merged_to"] == pid("e1")
    assert attribution(r)["e5"] == (pid("e2"), "stitched", None)  # as decided then
    assert attribution(r)["e6"] == (pid("e1"), "stitched", None)


def test_merge_across_two_windows_state_is_carried():
    cfg = make_config()
    state, results = run_windows(
        cfg,
        [
            [ev("e1", 1, anonymous_id="a"), ev("e2", 2, email="x@y.com")],
            [ev("e3", 1500, anonymous_id="a", email="x@y.com")],
        ],
    )
    assert redirects(state) == {pid("e2"): pid("e1")}
    r = state.redirects.iloc[0]
    assert (r["window_key"], r["evidence_event_id"]) == ("w1", "e3")
    assert graph(state)[pid("e1")]["known"] is True


def test_expiry_across_windows_30m_session():
    cfg = make_config()
    state, results = run_windows(
        cfg,
        [
            [ev("e1", 23 * 60 + 50, session_id="s")],
            [ev("e2", 24 * 60 + 10, session_id="s")],
            [ev("e3", 24 * 60 + 21, session_id="s")],
        ],
    )
    a = attribution(*results)
    assert a["e2"] == (pid("e1"), "stitched", None)  # 20 minutes later, still alive
    assert a["e3"] == (None, "excluded", "no_matchable_identifier")  # 31 minutes after first seen


def test_sliding_lifetime_from_last_seen():
    cfg = make_config(ip_address={"lifetime": "10m", "lifetime_from": "last_seen"})
    _, r = run(
        cfg,
        [
            ev("e1", 0, ip_address="ip"),
            ev("e2", 8, ip_address="ip"),  # refreshes last_seen
            ev("e3", 16, ip_address="ip"),  # 8 after last seen: alive (would be expired from first_seen)
            ev("e4", 30, ip_address="ip"),  # 14 after last seen: expired
            ev("e5", 32, ip_address="ip"),  # an expired value does not refresh: still expired
        ],
    )
    a = attribution(r)
    assert [a[e][0] for e in ("e1", "e2", "e3")] == [pid("e1")] * 3
    assert a["e4"] == (None, "excluded", "no_matchable_identifier")
    assert a["e5"] == (None, "excluded", "no_matchable_identifier")
    assert len(audits(r, "expired_value")) == 1


def test_quarantine_then_release_in_a_later_window():
    cfg = make_config()
    state, results = run_windows(
        cfg, [[ev("e1", 1, user_id="a", cookie_id="k"), ev("e2", 2, user_id="b", cookie_id="k")]]
    )
    assert quarantined(state) == {("cookie_id", "k")}
    released = make_config(released=[{"identifier": "cookie_id", "value": " k "}])
    r = stitch(state, [ev("e3", 1500, cookie_id="k")], released, "w1")
    assert quarantined(r.state) == set()
    assert [a["value"] for a in audits(r, "released_value")] == ["k"]
    assert attribution(r)["e3"] == (pid("e2"), "stitched", None)  # most recent holder
    # exempt while listed: touching a third profile does not quarantine it again
    r2 = stitch(r.state, [ev("e4", 1600, user_id="c", cookie_id="k")], released, "w2")
    assert quarantined(r2.state) == set()


def test_release_with_released_at_only_lifts_older_quarantines():
    cfg = make_config(released=[{"identifier": "cookie_id", "value": "k", "released_at": "2026-10-01"}])
    state, r = run(cfg, [ev("e1", 1, user_id="a", cookie_id="k"), ev("e2", 2, user_id="b", cookie_id="k")])
    r2 = stitch(state, [ev("e3", 1500, cookie_id="k")], cfg, "w1")
    assert quarantined(r2.state) == {("cookie_id", "k")}  # quarantined after released_at: stays
    assert audits(r2, "released_value") == []


def test_limit_conflict_two_user_ids():
    _, r = run(make_config(), [ev("e1", 1, user_id=["u1", "u2"], email="x@y.com")])
    assert attribution(r) == {"e1": (None, "excluded", "limit_conflict")}
    assert r.metrics["events_excluded_limit_conflict"] == 1 and r.metrics["profiles_created"] == 0


def test_dropped_anchor_value_keeps_the_stronger_identity():
    state, r = run(
        make_config(),
        [
            ev("e1", 1, user_id="u1", email="a@x.com"),
            ev("e2", 2, user_id="u1", email="b@x.com", anonymous_id="z"),
        ],
    )
    assert values_of(state, pid("e1")) == {
        ("user_id", "u1"): "active",
        ("email", "a@x.com"): "active",
        ("anonymous_id", "z"): "active",
    }
    assert r.metrics["limit_conflicts"] == 1  # the dropped new anchor, audited limit_conflict (spec rule 6)


def test_blocked_placeholder_email_never_merges():
    state, r = run(
        make_config(),
        [ev("e1", 1, user_id="u1", email="test@test.com"), ev("e2", 2, user_id="u2", email="test@test.com")],
    )
    assert active_profiles(state) == {pid("e1"), pid("e2")}
    assert redirects(state) == {}
    assert values_of(state, pid("e1"))[("email", "test@test.com")] == "blocked"


def _scenario() -> list[dict]:
    return [
        ev("e1", 1, anonymous_id="a1"),
        ev("e2", 1, model="app", anonymous_id="a1", user_id="u"),
        ev("e3", 2, user_id="u", cookie_id="k"),
        ev("e4", 2, user_id="v", cookie_id="k"),
        ev("e5", 3, cookie_id="k"),
        ev("e6", 3, email="test@test.com", device_id="d"),
        ev("e7", 4, device_id="d", ip_address="i"),
    ]


def _same(a, b) -> None:
    pdt.assert_frame_equal(a.attribution, b.attribution)
    pdt.assert_frame_equal(a.audit_events, b.audit_events)
    for name in ("profiles", "profile_values", "value_registry", "redirects"):
        pdt.assert_frame_equal(getattr(a.state, name), getattr(b.state, name))
    assert a.metrics == b.metrics


def test_shuffled_input_order_within_a_window_gives_identical_outputs():
    cfg = make_config()
    _, base = run(cfg, _scenario())
    for seed in range(5):
        events = _scenario()
        random.Random(seed).shuffle(events)
        _, other = run(cfg, events)
        _same(base, other)


def test_deterministic_ids_across_runs():
    cfg = make_config()
    _, a = run(cfg, _scenario())
    _, b = run(cfg, _scenario())
    _same(a, b)
    assert set(a.state.profiles["dinmo_stitched_profile_id"]).issubset(
        {pid(f"e{i}") for i in range(1, 8)} | {pid("e2", "app")}
    )


def test_every_event_has_one_attribution_row_even_without_identifiers():
    events = [ev("e1", 1), ev("e2", 2, anonymous_id=" "), ev("e3", 3, anonymous_id="a")]
    _, r = run(make_config(), events)
    assert sorted(r.attribution["event_id"]) == ["e1", "e2", "e3"]
    assert r.metrics["events_processed"] == 3 and abs(r.metrics["stitch_rate"] - 1 / 3) < 1e-12


def test_empty_window_returns_state_unchanged():
    cfg = make_config()
    state, _ = run(cfg, [ev("e1", 1, anonymous_id="a")])
    r = stitch(state, [], cfg, "w1")
    assert len(r.attribution) == 0
    pdt.assert_frame_equal(r.state.profiles, state.profiles)
    assert r.metrics["events_processed"] == 0


def test_empty_state_has_contract_columns():
    s = GraphState.empty()
    assert list(s.profiles.columns)[:3] == ["dinmo_stitched_profile_id", "created_sequence", "created_at"]
    assert list(s.redirects.columns) == [
        "from_id",
        "to_id",
        "merged_at",
        "evidence_model",
        "evidence_event_id",
        "window_key",
    ]
    assert isinstance(s.next_sequence, int)
    assert s.profiles["created_at"].dtype == "datetime64[us]"
    assert len(pd.concat([s.profiles])) == 0
