"""The seven examples of the seed (003_fb22c0619620027e), each asserting the exact graph and attribution.

user_id / email are anchors; cookie_id has max_profiles_per_value = 1 (as the spec says).
"""

from __future__ import annotations

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
)


def test_example_1_anonymous_visitor_becomes_known():
    cfg = make_config()
    state, r = run(
        cfg,
        [
            ev("t1", 1, anonymous_id="anon_abc"),
            ev("t2", 2, anonymous_id="anon_abc"),
            ev("t3", 3, user_id="123", anonymous_id="anon_abc"),
        ],
    )
    p1 = pid("t1")
    assert graph(state) == {
        p1: {
            "status": "active",
            "merged_to": None,
            "known": True,
            "values": {("anonymous_id", "anon_abc"): "active", ("user_id", "123"): "active"},
        }
    }
    assert redirects(state) == {}
    assert attribution(r) == {e: (p1, "stitched", None) for e in ("t1", "t2", "t3")}


def test_example_1_profile_is_anonymous_before_login():
    state, _ = run(
        make_config(), [ev("t1", 1, anonymous_id="anon_abc"), ev("t2", 2, anonymous_id="anon_abc")]
    )
    assert graph(state)[pid("t1")]["known"] is False


def test_example_2_one_person_two_devices():
    state, r = run(
        make_config(),
        [ev("t1", 1, user_id="123", device_id="laptop_1"), ev("t2", 2, user_id="123", device_id="phone_1")],
    )
    p1 = pid("t1")
    assert graph(state) == {
        p1: {
            "status": "active",
            "merged_to": None,
            "known": True,
            "values": {
                ("user_id", "123"): "active",
                ("device_id", "laptop_1"): "active",
                ("device_id", "phone_1"): "active",
            },
        }
    }
    assert attribution(r) == {"t1": (p1, "stitched", None), "t2": (p1, "stitched", None)}


def _shared_cookie_graph(alice: str, bob: str, cookie: str) -> dict:
    return {
        alice: {
            "status": "active",
            "merged_to": None,
            "known": True,
            "values": {("user_id", "alice"): "active", ("cookie_id", cookie): "active"},
        },
        bob: {
            "status": "active",
            "merged_to": None,
            "known": True,
            "values": {("user_id", "bob"): "active", ("cookie_id", cookie): "active"},
        },
    }


def test_example_3_two_users_share_a_weak_identifier():
    state, r = run(
        make_config(),
        [
            ev("t1", 1, user_id="alice", cookie_id="shared_cookie"),
            ev("t2", 2, user_id="bob", cookie_id="shared_cookie"),
        ],
    )
    alice, bob = pid("t1"), pid("t2")
    assert graph(state) == _shared_cookie_graph(alice, bob, "shared_cookie")
    assert redirects(state) == {}
    assert quarantined(state) == {("cookie_id", "shared_cookie")}
    assert attribution(r) == {"t1": (alice, "stitched", None), "t2": (bob, "stitched", None)}
    q = audits(r, "quarantined_value")
    assert [(a["value"], a["event_id"]) for a in q] == [("shared_cookie", "t2")]


def test_example_4_weak_only_event_on_quarantined_shared_value():
    state, r = run(
        make_config(),
        [
            ev("t1", 1, user_id="alice", cookie_id="shared_cookie"),
            ev("t2", 2, user_id="bob", cookie_id="shared_cookie"),
            ev("t3", 3, cookie_id="shared_cookie"),
        ],
    )
    assert attribution(r)["t3"] == (None, "excluded", "conflicted_identifier_value")
    assert graph(state) == _shared_cookie_graph(pid("t1"), pid("t2"), "shared_cookie")


def test_example_5_account_switching_on_the_same_browser():
    state, r = run(
        make_config(),
        [
            ev("t1", 1, cookie_id="browser_1"),
            ev("t2", 2, user_id="alice", cookie_id="browser_1"),
            ev("t3", 3, user_id="bob", cookie_id="browser_1"),
            ev("t4", 4, cookie_id="browser_1"),
        ],
    )
    alice, bob = pid("t1"), pid("t3")  # the anonymous profile of t1 becomes Alice's at login
    assert graph(state) == _shared_cookie_graph(alice, bob, "browser_1")
    assert quarantined(state) == {("cookie_id", "browser_1")}
    assert attribution(r) == {
        "t1": (alice, "stitched", None),
        "t2": (alice, "stitched", None),
        "t3": (bob, "stitched", None),
        "t4": (None, "excluded", "conflicted_identifier_value"),
    }


def test_example_6_bad_placeholder_value_is_blocked():
    state, r = run(
        make_config(),
        [
            ev("t1", 1, email="test@test.com", anonymous_id="anon_1"),
            ev("t2", 2, email="TEST@test.com ", anonymous_id="anon_2"),
            ev("t3", 3, email="test@test.com", anonymous_id="anon_3"),
        ],
    )
    expected = {}
    for i in (1, 2, 3):
        expected[pid(f"t{i}")] = {
            "status": "active",
            "merged_to": None,
            "known": False,
            "values": {("anonymous_id", f"anon_{i}"): "active", ("email", "test@test.com"): "blocked"},
        }
    assert graph(state) == expected
    assert attribution(r) == {f"t{i}": (pid(f"t{i}"), "stitched", None) for i in (1, 2, 3)}
    blocked = audits(r, "blocked_value")
    assert [(a["value"], a["event_id"]) for a in blocked] == [("test@test.com", "t1")]  # once per window
    assert ("email", "test@test.com") not in set(
        zip(state.value_registry["identifier_type"], state.value_registry["value"], strict=False)
    )


def test_example_7_max_profiles_per_value_quarantines_kiosk_cookie():
    cfg = make_config(cookie_id={"max_profiles_per_value": 3})
    events = [ev(f"t{i}", i, user_id=f"u{i}", cookie_id="kiosk_cookie") for i in range(1, 5)]
    state, r = run(cfg, events)
    g = graph(state)
    assert set(g) == {pid(f"t{i}") for i in range(1, 5)}
    for i in range(1, 5):
        assert g[pid(f"t{i}")]["values"] == {
            ("user_id", f"u{i}"): "active",
            ("cookie_id", "kiosk_cookie"): "active",
        }
    assert quarantined(state) == {("cookie_id", "kiosk_cookie")}
    assert [a["event_id"] for a in audits(r, "quarantined_value")] == ["t4"]  # the 4th profile crosses 3


def test_example_7_max_unique_values_per_profile_demotes_oldest_device():
    cfg = make_config(device_id={"max_unique_values_per_profile": 3})
    events = [
        ev("t1", 1, user_id="u", device_id="old_device_1"),
        ev("t2", 2, user_id="u", device_id="old_device_2"),
        ev("t3", 3, user_id="u", device_id="old_device_3"),
        ev("t4", 4, user_id="u", device_id="new_device_4"),
    ]
    state, r = run(cfg, events)
    p = pid("t1")
    assert active_profiles(state) == {p}
    assert graph(state)[p]["values"] == {
        ("user_id", "u"): "active",
        ("device_id", "old_device_1"): "demoted",
        ("device_id", "old_device_2"): "active",
        ("device_id", "old_device_3"): "active",
        ("device_id", "new_device_4"): "active",
    }
    assert quarantined(state) == set()  # demotion is not a global verdict on the value
    assert [a["value"] for a in audits(r, "demoted_value")] == ["old_device_1"]
