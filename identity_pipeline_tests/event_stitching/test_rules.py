"""One or more tests per numbered rule of the spec's per-event decision."""

from __future__ import annotations

import pandas as pd

from identity_pipeline.core.event_stitching.observations import extract_observations
from identity_pipeline.core.event_stitching.reference import profile_id_for
from identity_pipeline_tests.event_stitching.helpers import (
    active_profiles,
    attribution,
    audits,
    ev,
    frames,
    graph,
    make_config,
    pid,
    quarantined,
    redirects,
    run,
    run_windows,
    values_of,
)


# ---- rule 1: standardize; empty after standardization is no observation ----------------------------------
def test_rule_1_standardize_and_empty_is_no_observation():
    cfg = make_config()
    _, long = frames(
        [
            ev("e1", 1, email="  Alice@Example.COM ", user_id="  "),
            ev("e2", 2, email="not-an-email", anonymous_id=None),
        ]
    )
    obs = extract_observations(long, cfg)
    assert obs[["event_id", "identifier_type", "value", "blocked"]].to_dict("records") == [
        {"event_id": "e1", "identifier_type": "email", "value": "alice@example.com", "blocked": False}
    ]


def test_rule_1_standardized_values_match_across_spellings():
    state, r = run(make_config(), [ev("e1", 1, email="A@B.com"), ev("e2", 2, email=" a@b.COM")])
    assert attribution(r) == {"e1": (pid("e1"), "stitched", None), "e2": (pid("e1"), "stitched", None)}


# ---- rule 2: blocked values dropped, evidence, audited once per value and window ---------------------------
def test_rule_2_blocked_patterns_and_literals():
    cfg = make_config(anonymous_id={"blocked_patterns": ["^undefined$", "^null"]})
    _, long = frames(
        [ev("e1", 1, anonymous_id="undefined", email="test@test.com"), ev("e2", 2, anonymous_id="nullx")]
    )
    obs = extract_observations(long, cfg)
    assert obs["blocked"].tolist() == [True, True, True]


def test_rule_2_blocked_only_event_is_excluded_and_audited_once_per_window():
    cfg = make_config()
    state, results = run_windows(
        cfg,
        [
            [ev("e1", 1, email="test@test.com"), ev("e2", 2, email="test@test.com")],
            [ev("e3", 1500, email="test@test.com")],
        ],
    )
    assert attribution(*results) == {
        e: (None, "excluded", "no_matchable_identifier") for e in ("e1", "e2", "e3")
    }
    assert len(audits(results[0], "blocked_value")) == 1
    assert len(audits(results[1], "blocked_value")) == 1
    assert results[0].metrics["values_blocked"] == 1
    assert len(state.profiles) == 0


# ---- rule 3: unusable = quarantined, expired or demoted everywhere; unknown values usable ----
def test_rule_3_expired_value_does_not_match():
    state, r = run(
        make_config(), [ev("e1", 0, session_id="s1"), ev("e2", 31, session_id="s1", anonymous_id="a2")]
    )
    assert attribution(r)["e2"] == (pid("e2"), "stitched", None)
    assert values_of(state, pid("e2")) == {("anonymous_id", "a2"): "active"}  # expired value not attached
    assert [a["value"] for a in audits(r, "expired_value")] == ["s1"]


def test_rule_3_lifetime_boundary_is_inclusive():
    state, r = run(make_config(), [ev("e1", 0, session_id="s1"), ev("e2", 30, session_id="s1")])
    assert attribution(r)["e2"] == (pid("e1"), "stitched", None)  # expired means event_ts > first_seen + 30m


def test_rule_3_demoted_everywhere_value_never_reaches_a_profile_by_itself():
    cfg = make_config(device_id={"max_unique_values_per_profile": 1})
    state, r = run(
        cfg,
        [
            ev("e1", 1, user_id="u", device_id="d1"),
            ev("e2", 2, user_id="u", device_id="d2"),
            ev("e3", 3, device_id="d1"),
        ],
    )
    assert values_of(state, pid("e1"))[("device_id", "d1")] == "demoted"
    assert attribution(r)["e3"] == (None, "excluded", "no_matchable_identifier")


def test_rule_3_unknown_values_are_usable():
    _, r = run(make_config(), [ev("e1", 1, ip_address="1.2.3.4")])
    assert attribution(r)["e1"] == (pid("e1"), "stitched", None)


# ---- rule 4: no usable value -> excluded with the right reason ---------------------------------------------
def test_rule_4_no_identifier_at_all_is_no_matchable_identifier():
    _, r = run(make_config(), [ev("e1", 1)])
    assert attribution(r) == {"e1": (None, "excluded", "no_matchable_identifier")}
    assert r.metrics["events_excluded_no_matchable_identifier"] == 1


def test_rule_4_quarantined_value_is_conflicted_identifier_value():
    _, r = run(
        make_config(),
        [
            ev("e1", 1, user_id="a", cookie_id="c"),
            ev("e2", 2, user_id="b", cookie_id="c"),
            ev("e3", 3, cookie_id="c", session_id=None),
        ],
    )
    assert attribution(r)["e3"] == (None, "excluded", "conflicted_identifier_value")
    row = r.attribution[r.attribution["event_id"] == "e3"].iloc[0]
    assert (row["decided_by_identifier_type"], row["decided_by_value"]) == ("cookie_id", "c")


# ---- rule 5: too many values of one anchor type on the event -> limit_conflict, nothing changes -----------
def test_rule_5_two_user_ids_on_one_event_is_limit_conflict():
    cfg = make_config()
    state0, r0 = run(cfg, [ev("e0", 0, user_id="u1", anonymous_id="a")])
    from identity_pipeline_tests.event_stitching.helpers import stitch

    r = stitch(state0, [ev("e1", 1, user_id=["u1", "u2"], anonymous_id="a")], cfg, "w1")
    assert attribution(r) == {"e1": (None, "excluded", "limit_conflict")}
    assert graph(r.state) == graph(state0)  # nothing changed
    assert sorted(a["value"] for a in audits(r, "limit_conflict")) == ["u1", "u2"]


def test_rule_5_limit_is_configurable():
    cfg = make_config(user_id={"max_unique_values_per_profile": 2})
    state, r = run(cfg, [ev("e1", 1, user_id=["u1", "u2"])])
    assert attribution(r)["e1"] == (pid("e1"), "stitched", None)
    assert graph(state)[pid("e1")]["values"] == {("user_id", "u1"): "active", ("user_id", "u2"): "active"}


# ---- rule 6: priority walk, target, merges, incompatible anchors dropped, weak values attached -------------
def test_rule_6_target_is_the_first_compatible_profile_reached_by_priority():
    # e3 carries email (reaches P_email) and anonymous_id (reaches P_anon); both compatible -> merge,
    # survivor = oldest = P_anon (created first)
    state, r = run(
        make_config(),
        [
            ev("e1", 1, anonymous_id="a1"),
            ev("e2", 2, email="x@y.com"),
            ev("e3", 3, email="x@y.com", anonymous_id="a1"),
        ],
    )
    assert active_profiles(state) == {pid("e1")}
    assert redirects(state) == {pid("e2"): pid("e1")}
    assert attribution(r)["e3"] == (pid("e1"), "stitched", None)
    row = r.attribution[r.attribution["event_id"] == "e3"].iloc[0]
    assert (row["decided_by_identifier_type"], row["decided_by_value"]) == ("email", "x@y.com")
    m = audits(r, "merge")
    assert [(a["dinmo_stitched_profile_id"], a["other_dinmo_stitched_profile_id"]) for a in m] == [
        (pid("e1"), pid("e2"))
    ]


def test_rule_6_value_on_several_profiles_reaches_the_most_recent():
    cfg = make_config(cookie_id={"max_profiles_per_value": None})
    state, r = run(
        cfg,
        [
            ev("e1", 1, user_id="a", cookie_id="c"),
            ev("e2", 2, user_id="b", cookie_id="c"),
            ev("e3", 3, cookie_id="c"),
        ],
    )
    assert attribution(r)["e3"] == (pid("e2"), "stitched", None)


def test_rule_6_most_recent_tie_goes_to_smallest_profile_id():
    cfg = make_config(cookie_id={"max_profiles_per_value": None})
    # same timestamp: both memberships last seen at minute 1
    _, r = run(
        cfg,
        [
            ev("e1", 1, user_id="a", cookie_id="c"),
            ev("e2", 1, user_id="b", cookie_id="c"),
            ev("e3", 3, cookie_id="c"),
        ],
    )
    assert attribution(r)["e3"][0] == min(pid("e1"), pid("e2"))


def test_rule_6_anchor_on_incompatible_profile_is_dropped_and_event_still_stitches():
    # u1 owns email x; an event with user u2 + email x: x is held by an incompatible profile -> dropped
    state, r = run(
        make_config(),
        [ev("e1", 1, user_id="u1", email="x@y.com"), ev("e2", 2, user_id="u2", email="x@y.com")],
    )
    assert attribution(r)["e2"] == (pid("e2"), "stitched", None)
    assert values_of(state, pid("e2")) == {("user_id", "u2"): "active"}
    lc = audits(r, "limit_conflict")
    assert [(a["value"], a["other_dinmo_stitched_profile_id"]) for a in lc] == [("x@y.com", pid("e1"))]


def test_rule_6_new_anchor_over_limit_is_dropped():
    # profile of u1 already has email x; event u1 + new email z: z would make 2 emails -> dropped
    state, r = run(
        make_config(),
        [ev("e1", 1, user_id="u1", email="x@y.com"), ev("e2", 2, user_id="u1", email="z@y.com")],
    )
    assert attribution(r)["e2"] == (pid("e1"), "stitched", None)
    assert values_of(state, pid("e1")) == {("user_id", "u1"): "active", ("email", "x@y.com"): "active"}
    # spec rule 6: a new anchor over the limit is dropped and audited as limit_conflict (no other profile)
    lc = audits(r, "limit_conflict")
    assert [
        (a["value"], a["dinmo_stitched_profile_id"], a["other_dinmo_stitched_profile_id"]) for a in lc
    ] == [("z@y.com", pid("e1"), None)]


def test_rule_6_weak_value_on_incompatible_profile_merges_nothing_and_is_attached_too():
    cfg = make_config(anonymous_id={})  # no max_profiles_per_value on anonymous_id
    state, r = run(
        cfg, [ev("e1", 1, user_id="a", anonymous_id="x"), ev("e2", 2, user_id="b", anonymous_id="x")]
    )
    assert redirects(state) == {}
    assert values_of(state, pid("e2")) == {("user_id", "b"): "active", ("anonymous_id", "x"): "active"}
    assert values_of(state, pid("e1")) == {("user_id", "a"): "active", ("anonymous_id", "x"): "active"}


def test_rule_6_recheck_compatibility_after_each_merge():
    # P1 {user u1}, P2 {anon a2}, P3 {user u3, cookie k3}. Event: user u1, anon a2, device d3 held by P3?
    # walk: u1 -> target P1; a2 -> P2 compatible -> merge; k3 -> P3 has u3: incompatible with u1 -> no merge.
    state, r = run(
        make_config(),
        [
            ev("e1", 1, user_id="u1"),
            ev("e2", 2, anonymous_id="a2"),
            ev("e3", 3, user_id="u3", device_id="k3"),
            ev("e4", 4, user_id="u1", anonymous_id="a2", device_id="k3"),
        ],
    )
    assert redirects(state) == {pid("e2"): pid("e1")}
    assert active_profiles(state) == {pid("e1"), pid("e3")}
    assert values_of(state, pid("e1"))[("device_id", "k3")] == "active"


# ---- rule 7: creation with deterministic ids ---------------------------------------------------------------
def test_rule_7_profile_id_is_hash_of_model_and_event_id():
    from identity_pipeline.core.event_stitching.hashing import SEED_PROFILE, hash64_bytes

    _, r = run(make_config(), [ev("e1", 1, model="app", anonymous_id="a")])
    expected = f"esp_{hash64_bytes(b'app' + bytes([0x1F]) + b'e1', SEED_PROFILE):016x}"
    assert profile_id_for("app", "e1") == expected
    assert attribution(r)["e1"][0] == expected
    # the same ids on every machine and in every version: pinned
    assert expected == "esp_ae108a39d81f3c56"
    assert profile_id_for("web_events", "w1") == "esp_470f0f230b1de89d"


def test_rule_7_created_sequence_increases():
    state, _ = run(make_config(), [ev("e1", 1, anonymous_id="a"), ev("e2", 2, anonymous_id="b")])
    seq = dict(
        zip(state.profiles["dinmo_stitched_profile_id"], state.profiles["created_sequence"], strict=True)
    )
    assert seq == {pid("e1"): 1, pid("e2"): 2}
    assert state.next_sequence == 3


# ---- rule 8: attach, refresh, demote (LRU + re-activation), quarantine ----
def test_rule_8_attach_refreshes_first_last_seen_and_counts():
    state, _ = run(make_config(), [ev("e1", 1, anonymous_id="a"), ev("e2", 5, anonymous_id="a")])
    p = state.profiles.iloc[0]
    assert (p["event_count"], p["first_seen_at"], p["last_seen_at"]) == (
        2,
        pd.Timestamp("2026-11-01 00:01"),
        pd.Timestamp("2026-11-01 00:05"),
    )
    m = state.profile_values.iloc[0]
    assert (m["event_count"], m["first_seen_at"], m["last_seen_at"]) == (
        2,
        pd.Timestamp("2026-11-01 00:01"),
        pd.Timestamp("2026-11-01 00:05"),
    )
    reg = state.value_registry.iloc[0]
    assert reg["event_count"] == 2 and not reg["quarantined"]


def test_rule_8_lru_demotion_and_reactivation():
    cfg = make_config(device_id={"max_unique_values_per_profile": 2})
    state, r = run(
        cfg,
        [
            ev("e1", 1, user_id="u", device_id="d1"),
            ev("e2", 2, user_id="u", device_id="d2"),
            ev("e3", 3, user_id="u", device_id="d3"),  # d1 demoted
            ev("e4", 4, user_id="u", device_id="d1"),  # d1 re-activated, d2 (LRU) demoted
        ],
    )
    assert values_of(state, pid("e1")) == {
        ("user_id", "u"): "active",
        ("device_id", "d1"): "active",
        ("device_id", "d2"): "demoted",
        ("device_id", "d3"): "active",
    }
    assert [a["value"] for a in audits(r, "demoted_value")] == ["d1", "d2"]
    assert [a["value"] for a in audits(r, "reactivated_value")] == ["d1"]


def test_rule_8_quarantine_is_for_good_without_release():
    cfg = make_config()
    state, results = run_windows(
        cfg,
        [
            [ev("e1", 1, user_id="a", cookie_id="c"), ev("e2", 2, user_id="b", cookie_id="c")],
            [ev("e3", 1500, cookie_id="c"), ev("e4", 1501, user_id="a", cookie_id="c")],
        ],
    )
    assert quarantined(state) == {("cookie_id", "c")}
    assert attribution(*results)["e3"] == (None, "excluded", "conflicted_identifier_value")
    assert attribution(*results)["e4"] == (pid("e1"), "stitched", None)


# ---- rule 9: Known / Anonymous -----------------------------------------------------------------------------
def test_rule_9_known_when_holding_an_active_anchor():
    state, _ = run(make_config(), [ev("e1", 1, anonymous_id="a"), ev("e2", 2, email="x@y.com")])
    g = graph(state)
    assert g[pid("e1")]["known"] is False
    assert g[pid("e2")]["known"] is True
    assert quarantined(state) == set()
