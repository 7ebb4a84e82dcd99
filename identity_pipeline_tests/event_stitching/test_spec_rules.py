"""Items of the Event Stitching contract (docs/event-stitching.md) no other test pinned down, one test each.

Every expected value below is derived by hand from the spec (or, where the spec is silent, from the
decision written in docs/event-stitching.md, named in the test). Engine-level tests run on both paths
(fast path and reference); store-level tests drive `store.process_frames` on an in-memory DuckDB and read
the published views, as downstream users would.
"""

from __future__ import annotations

import functools
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching import engine, store
from identity_pipeline.core.event_stitching.fast_path import Policy
from identity_pipeline.core.event_stitching.observations import extract_observations
from identity_pipeline.core.event_stitching.store.dictionary import type_codes
from identity_pipeline.core.event_stitching.store.graph_cache import GraphCache
from identity_pipeline.core.event_stitching.store.subgraph import extract
from identity_pipeline.core.event_stitching.store.tables import STATE_KEYS
from identity_pipeline_tests.event_stitching import helpers
from identity_pipeline_tests.event_stitching.helpers import (
    T0,
    active_profiles,
    attribution,
    audits,
    config_with_models,
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

DAY = 24 * 60  # minutes


@pytest.fixture(params=["fast_path", "reference"])
def engine_path(request, monkeypatch) -> str:
    """Run the test through `stitch_window`'s default fast path, then through the reference only."""
    if request.param == "reference":
        monkeypatch.setattr(
            helpers, "stitch_window", functools.partial(engine.stitch_window, use_fast_path=False)
        )
    return request.param


def at(minute: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minute)


def _none(v: Any) -> Any:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v


def store_run(
    config: EventStitchingConfig, windows: list[tuple[str, list[dict]]]
) -> duckdb.DuckDBPyConnection:
    """Process each (window key, events) with the store, in order, on a fresh in-memory DuckDB."""
    con = duckdb.connect()
    for key, events in windows:
        events_df, long = frames(events)
        obs = extract_observations(long, config)
        store.process_frames(con, config, store.window_for_key(config, key), events_df, obs)
    return con


def view(con: duckdb.DuckDBPyConnection, name: str) -> list[dict[str, Any]]:
    rows = con.execute(f"select * from main.{name}").df().to_dict("records")
    return [{k: _none(v) for k, v in r.items()} for r in rows]


def decided_by(result, event_id: str) -> tuple[str, str]:
    row = result.attribution[result.attribution["event_id"] == event_id].iloc[0]
    return row["decided_by_identifier_type"], row["decided_by_value"]


# ============================================================================================================
# Inputs: identifier type config
# ============================================================================================================


def test_inputs_priority_must_be_unique_per_type():
    with pytest.raises(ValueError, match="priorities must be unique"):
        make_config(email={"priority": 1})  # user_id already has priority 1


def test_inputs_anchor_limit_defaults_to_one_weak_limit_to_none():
    cfg = make_config()
    ids = cfg.identifiers
    assert ids["user_id"].max_unique_values_per_profile == 1
    assert ids["email"].max_unique_values_per_profile == 1
    assert ids["device_id"].max_unique_values_per_profile is None
    assert ids["anonymous_id"].max_profiles_per_value is None


@pytest.mark.usefixtures("engine_path")
def test_inputs_lifetime_in_days_counts_from_first_observation():
    # 90d from the value's FIRST observation (minute 0): a sighting at day 60 does not extend it;
    # day 90 exactly is still alive (expired means event_ts > first + 90d), day 90 + 1 min is expired.
    cfg = make_config(anonymous_id={"lifetime": "90d"})
    _, results = run_windows(
        cfg,
        [
            [ev("e1", 0, anonymous_id="a")],
            [ev("e2", 60 * DAY, anonymous_id="a")],
            [ev("e3", 90 * DAY, anonymous_id="a")],
            [ev("e4", 90 * DAY + 1, anonymous_id="a")],
        ],
    )
    assert attribution(*results) == {
        "e1": (pid("e1"), "stitched", None),
        "e2": (pid("e1"), "stitched", None),
        "e3": (pid("e1"), "stitched", None),
        "e4": (None, "excluded", "no_matchable_identifier"),
    }
    assert [(a["value"], a["event_id"]) for a in audits(results[3], "expired_value")] == [("a", "e4")]


@pytest.mark.usefixtures("engine_path")
def test_inputs_empty_lifetime_is_forever():
    cfg = make_config()  # anonymous_id has no lifetime
    _, results = run_windows(cfg, [[ev("e1", 0, anonymous_id="a")], [ev("e2", 400 * DAY, anonymous_id="a")]])
    assert attribution(*results)["e2"] == (pid("e1"), "stitched", None)


def test_inputs_csv_parquet_and_duckdb_table_models_feed_one_graph(tmp_path: Path):
    # three models, three source kinds, different column names, one graph
    (tmp_path / "web.csv").write_text(
        "id,ts,anon,uid\n"
        "w1,2026-11-01 10:00:00,A1,\n"
        "w2,2026-11-01 13:00:00,A1,U1\n"
        "w3,2026-11-02 01:00:00,A1,\n"  # next window: not read for 2026-11-01
    )
    con = duckdb.connect()
    con.execute(
        "create table app_src as select * from (values "
        "('p1', timestamp '2026-11-01 11:00:00', 'D1', 'A1')) t(event_key, happened_at, device, anon)"
    )
    con.execute(f"copy app_src to '{tmp_path / 'app.parquet'}' (format parquet)")
    con.execute(
        "create table crm_events as select * from (values "
        "('c1', timestamp '2026-11-01 12:00:00', ' Alice@X.com ', 'U1')) t(eid, ts, mail, usr)"
    )
    cfg = config_with_models(
        [
            {
                "name": "web",
                "path": "web.csv",
                "event_id": "id",
                "timestamp": "ts",
                "identifiers": {"anon": "anonymous_id", "uid": "user_id"},
            },
            {
                "name": "app",
                "path": "app.parquet",
                "event_id": "event_key",
                "timestamp": "happened_at",
                "identifiers": {"device": "device_id", "anon": "anonymous_id"},
            },
            {
                "name": "crm",
                "table": "crm_events",
                "event_id": "eid",
                "timestamp": "ts",
                "identifiers": {"mail": "email", "usr": "user_id"},
            },
        ]
    )
    window = store.window_for_key(cfg, "2026-11-01")
    events, long = store.read_window_events(con, cfg, window.start, window.end, tmp_path)
    assert list(zip(events["model"], events["event_id"], strict=True)) == [
        ("web", "w1"),
        ("app", "p1"),
        ("crm", "c1"),
        ("web", "w2"),
    ]
    store.process_frames(con, cfg, window, events, extract_observations(long, cfg))
    # w1 creates P(web,w1); p1 reaches it through A1; c1 creates P(crm,c1) (U1 + alice@x.com);
    # w2: U1 -> P(crm,c1) is the target, A1 -> P(web,w1) compatible -> merge, survivor = older P(web,w1)
    p_web, p_crm = pid("w1", "web"), pid("c1", "crm")
    rows = {r["event_id"]: r for r in view(con, store.ATTRIBUTION_VIEW)}
    assert {
        e: (r["model"], r["dinmo_stitched_profile_id"], r["resolved_dinmo_stitched_profile_id"])
        for e, r in rows.items()
    } == {
        "w1": ("web", p_web, p_web),
        "p1": ("app", p_web, p_web),
        "c1": ("crm", p_crm, p_web),
        "w2": ("web", p_web, p_web),
    }
    values = {
        (r["identifier_type"], r["value"]): r["status"]
        for r in view(con, store.VALUES_VIEW)
        if r["dinmo_stitched_profile_id"] == p_web
    }
    assert values == {
        ("anonymous_id", "A1"): "active",
        ("device_id", "D1"): "active",
        ("user_id", "U1"): "active",
        ("email", "alice@x.com"): "active",
    }


@pytest.mark.usefixtures("engine_path")
def test_inputs_order_ties_broken_by_model_then_event_id_as_strings():
    # same event_ts: (app, x2) is processed before (web, x1) and creates the profile;
    # web "e10" < "e9" as strings: e10 creates the second profile
    state, r = run(
        make_config(),
        [
            ev("e9", 2, anonymous_id="b"),
            ev("e10", 2, anonymous_id="b"),
            ev("x1", 1, model="web", anonymous_id="a"),
            ev("x2", 1, model="app", anonymous_id="a"),
        ],
    )
    p_a, p_b = pid("x2", "app"), pid("e10")
    assert attribution(r) == {
        "x1": (p_a, "stitched", None),
        "x2": (p_a, "stitched", None),
        "e9": (p_b, "stitched", None),
        "e10": (p_b, "stitched", None),
    }
    seq = dict(
        zip(state.profiles["dinmo_stitched_profile_id"], state.profiles["created_sequence"], strict=True)
    )
    assert seq == {p_a: 1, p_b: 2}
    assert list(r.attribution["event_id"]) == ["x2", "x1", "e10", "e9"]


def test_hourly_windows_carry_state_and_expiry():
    cfg = EventStitchingConfig.model_validate({**make_config().model_dump(), "window": "hourly"})
    keys = [w.key for w in store.config_windows(cfg, until=datetime(2026, 11, 1, 3))]
    assert keys == ["2026-11-01-00:00", "2026-11-01-01:00", "2026-11-01-02:00"]
    con = store_run(
        cfg,
        [
            ("2026-11-01-00:00", [ev("e1", 50, session_id="s")]),
            # 20 min after first seen: alive; 31 min after: expired (session lifetime 30m)
            ("2026-11-01-01:00", [ev("e2", 70, session_id="s"), ev("e3", 81, session_id="s")]),
        ],
    )
    rows = {
        r["event_id"]: (r["window_key"], r["dinmo_stitched_profile_id"], r["status"], r["reason"])
        for r in view(con, store.ATTRIBUTION_VIEW)
    }
    assert rows == {
        "e1": ("2026-11-01-00:00", pid("e1"), "stitched", None),
        "e2": ("2026-11-01-01:00", pid("e1"), "stitched", None),
        "e3": ("2026-11-01-01:00", None, "excluded", "no_matchable_identifier"),
    }


# ============================================================================================================
# Per-event decision
# ============================================================================================================


@pytest.mark.usefixtures("engine_path")
def test_rule_3_value_demoted_on_one_profile_but_active_on_another_stays_usable():
    # d1 is shared by P(e1) {u2} and P(e2) {u1}; P(e2) then demotes it (device limit 1). It is not demoted on
    # EVERY profile holding it, so it stays usable and reaches its only active holder P(e1), although P(e2)
    # saw it more recently.
    cfg = make_config(device_id={"max_unique_values_per_profile": 1})
    state, r = run(
        cfg,
        [
            ev("e1", 1, user_id="u2", device_id="d1"),
            ev("e2", 2, user_id="u1", device_id="d1"),
            ev("e3", 3, user_id="u1", device_id="d9"),
            ev("e4", 4, device_id="d1"),
        ],
    )
    assert values_of(state, pid("e2")) == {
        ("user_id", "u1"): "active",
        ("device_id", "d1"): "demoted",
        ("device_id", "d9"): "active",
    }
    assert attribution(r)["e4"] == (pid("e1"), "stitched", None)
    assert values_of(state, pid("e1")) == {("user_id", "u2"): "active", ("device_id", "d1"): "active"}


@pytest.mark.usefixtures("engine_path")
def test_rule_6_walk_ties_within_a_type_go_by_value():
    # P(e1) holds a2, P(e2) holds a1. e3 carries both: the walk takes a1 first (value order) -> target P(e2),
    # decided by a1; a2 -> P(e1) compatible -> merge, survivor = oldest = P(e1).
    state, r = run(
        make_config(),
        [
            ev("e1", 1, anonymous_id="a2"),
            ev("e2", 2, anonymous_id="a1"),
            ev("e3", 3, anonymous_id=["a2", "a1"]),
        ],
    )
    assert attribution(r)["e3"] == (pid("e1"), "stitched", None)
    assert decided_by(r, "e3") == ("anonymous_id", "a1")
    assert redirects(state) == {pid("e2"): pid("e1")}
    merges = audits(r, "merge")
    assert [
        (a["dinmo_stitched_profile_id"], a["other_dinmo_stitched_profile_id"], a["value"]) for a in merges
    ] == [(pid("e1"), pid("e2"), "a2")]


@pytest.mark.usefixtures("engine_path")
def test_rule_6_compatibility_rechecked_after_a_merge_that_brings_an_anchor():
    # e4: a1 -> target P1 (no anchor); d2 -> P2 {u2} compatible -> merge (P1 now holds u2);
    # i3 -> P3 {u3}: u2 + u3 exceed user_id's limit 1 -> no merge, i3 attached to P1 as well.
    state, r = run(
        make_config(),
        [
            ev("e1", 1, anonymous_id="a1"),
            ev("e2", 2, user_id="u2", device_id="d2"),
            ev("e3", 3, user_id="u3", ip_address="i3"),
            ev("e4", 4, anonymous_id="a1", device_id="d2", ip_address="i3"),
        ],
    )
    p1, p2, p3 = pid("e1"), pid("e2"), pid("e3")
    assert active_profiles(state) == {p1, p3}
    assert redirects(state) == {p2: p1}
    g = graph(state)
    assert g[p1] == {
        "status": "active",
        "merged_to": None,
        "known": True,
        "values": {
            ("anonymous_id", "a1"): "active",
            ("user_id", "u2"): "active",
            ("device_id", "d2"): "active",
            ("ip_address", "i3"): "active",
        },
    }
    assert g[p3]["values"] == {("user_id", "u3"): "active", ("ip_address", "i3"): "active"}
    assert (g[p2]["status"], g[p2]["merged_to"], g[p2]["values"]) == ("merged", p1, {})
    assert attribution(r)["e4"] == (p1, "stitched", None)
    assert decided_by(r, "e4") == ("anonymous_id", "a1")
    assert r.metrics["profiles_merged"] == 1


@pytest.mark.usefixtures("engine_path")
def test_rule_6_new_anchor_over_limit_is_dropped_and_audited_as_limit_conflict():
    # Spec rule 6: "a new anchor value that would exceed the limit: that value is dropped from this event
    # (not attached; audited as `limit_conflict`)".
    state, r = run(
        make_config(),
        [ev("e1", 1, user_id="u1", email="a@x.com"), ev("e2", 2, user_id="u1", email="b@x.com")],
    )
    assert attribution(r)["e2"] == (pid("e1"), "stitched", None)
    assert values_of(state, pid("e1")) == {("user_id", "u1"): "active", ("email", "a@x.com"): "active"}
    rows = r.audit_events[r.audit_events["value"] == "b@x.com"]
    assert list(rows["audit_type"]) == ["limit_conflict"]


@pytest.mark.usefixtures("engine_path")
def test_rule_8_demotion_ties_by_value_and_several_values_at_once():
    # limit 1, three new devices seen at the same time: keep one, demote two; ties go by value, smallest
    # demoted first (docs/event-stitching.md, "Demotion ties") -> d1, d2 demoted, d3 stays active.
    cfg = make_config(device_id={"max_unique_values_per_profile": 1})
    state, r = run(cfg, [ev("e1", 1, user_id="u", device_id=["d3", "d1", "d2"])])
    assert values_of(state, pid("e1")) == {
        ("user_id", "u"): "active",
        ("device_id", "d1"): "demoted",
        ("device_id", "d2"): "demoted",
        ("device_id", "d3"): "active",
    }
    assert sorted(a["value"] for a in audits(r, "demoted_value")) == ["d1", "d2"]
    assert r.metrics["values_demoted"] == 2


@pytest.mark.usefixtures("engine_path")
def test_rule_8_merge_over_weak_capacity_demotes_least_recently_seen():
    # P1 {a, d1@1}, P2 {i, d2@2}; e3 merges them (P1 survives) -> two active devices > limit 1 -> d1 demoted
    cfg = make_config(device_id={"max_unique_values_per_profile": 1})
    state, r = run(
        cfg,
        [
            ev("e1", 1, anonymous_id="a", device_id="d1"),
            ev("e2", 2, ip_address="i", device_id="d2"),
            ev("e3", 3, anonymous_id="a", ip_address="i"),
        ],
    )
    assert redirects(state) == {pid("e2"): pid("e1")}
    assert values_of(state, pid("e1")) == {
        ("anonymous_id", "a"): "active",
        ("ip_address", "i"): "active",
        ("device_id", "d1"): "demoted",
        ("device_id", "d2"): "active",
    }
    assert [(a["value"], a["event_id"]) for a in audits(r, "demoted_value")] == [("d1", "e3")]


# ============================================================================================================
# Outputs (published DuckDB views)
# ============================================================================================================


def _three_anonymous_profiles() -> list[dict[str, Any]]:
    """P1{a1}, P2{a2}, P3{a3}, created in that order on day 1."""
    return [ev("e1", 1, anonymous_id="a1"), ev("e2", 2, anonymous_id="a2"), ev("e3", 3, anonymous_id="a3")]


def test_outputs_attribution_profiles_and_redirects_resolve_to_the_current_survivor():
    # w1: P1{a1}, P2{a2}, P3{a3}. w2: e4 {a2, a3} -> P3 merges into P2. w3: e5 {u, a1, a2} -> target P1
    # (through a1), P2 merges into P1; P3's redirect is re-pointed to P1 (one hop).
    cfg = make_config()
    con = store_run(
        cfg,
        [
            (
                "2026-11-01",
                _three_anonymous_profiles(),
            ),
            ("2026-11-02", [ev("e4", DAY + 60, anonymous_id=["a2", "a3"])]),
            ("2026-11-03", [ev("e5", 2 * DAY + 60, user_id="u", anonymous_id=["a1", "a2"])]),
        ],
    )
    p1, p2, p3 = pid("e1"), pid("e2"), pid("e3")
    attr = {
        r["event_id"]: (
            r["window_key"],
            r["dinmo_stitched_profile_id"],
            r["resolved_dinmo_stitched_profile_id"],
        )
        for r in view(con, store.ATTRIBUTION_VIEW)
    }
    assert attr == {
        "e1": ("2026-11-01", p1, p1),
        "e2": ("2026-11-01", p2, p1),
        "e3": ("2026-11-01", p3, p1),
        "e4": ("2026-11-02", p2, p1),  # as decided then; resolved = current survivor
        "e5": ("2026-11-03", p1, p1),
    }
    profiles = {r["dinmo_stitched_profile_id"]: r for r in view(con, store.PROFILES_VIEW)}
    assert set(profiles) == {p1, p2, p3}
    s = profiles[p1]
    assert (
        s["created_sequence"],
        s["created_at"],
        s["first_seen_at"],
        s["last_seen_at"],
        s["status"],
        s["merged_to_dinmo_stitched_profile_id"],
        s["resolved_dinmo_stitched_profile_id"],
        s["is_known"],
        s["profile_type"],
        s["event_count"],
    ) == (1, at(1), at(1), at(2 * DAY + 60), "active", None, p1, True, "known", 5)
    for p, seq in ((p2, 2), (p3, 3)):
        r = profiles[p]
        assert (
            r["created_sequence"],
            r["created_at"],
            r["status"],
            r["merged_to_dinmo_stitched_profile_id"],
            r["resolved_dinmo_stitched_profile_id"],
        ) == (seq, at(seq), "merged", p1, p1)
    red = {
        r["from_id"]: (
            r["to_id"],
            r["resolved_dinmo_stitched_profile_id"],
            r["merged_at"],
            r["evidence_model"],
            r["evidence_event_id"],
            r["window_key"],
        )
        for r in view(con, store.REDIRECTS_VIEW)
    }
    assert red == {
        p2: (p1, p1, at(2 * DAY + 60), "web", "e5", "2026-11-03"),
        p3: (p1, p1, at(DAY + 60), "web", "e4", "2026-11-02"),
    }
    merges = sorted(
        (r["window_key"], r["dinmo_stitched_profile_id"], r["other_dinmo_stitched_profile_id"], r["event_id"])
        for r in view(con, store.AUDIT_VIEW)
        if r["audit_type"] == "merge"
    )
    assert merges == [("2026-11-02", p2, p3, "e4"), ("2026-11-03", p1, p2, "e5")]


def test_outputs_identifier_values_statuses_and_audit_events():
    # one window; values view evaluated at the window's end (2026-11-02 00:00)
    cfg = make_config(device_id={"max_unique_values_per_profile": 1})
    con = store_run(
        cfg,
        [
            (
                "2026-11-01",
                [
                    ev(
                        "e1",
                        1,
                        user_id="u1",
                        email="test@test.com",
                        cookie_id="k",
                        device_id="d1",
                        session_id="s1",
                    ),
                    ev("e2", 2, user_id="u2", cookie_id="k"),  # k on 2 profiles > 1 -> quarantined
                    ev("e3", 3, user_id="u1", device_id="d2"),  # d1 demoted on P1
                    ev("e4", 40, session_id="s1", anonymous_id="a4"),  # s1 expired (30m) -> new P4
                    ev("e5", 41, user_id=["u1", "u2"]),  # rule 5
                ],
            )
        ],
    )
    p1, p2, p4 = pid("e1"), pid("e2"), pid("e4")
    got = {
        (r["dinmo_stitched_profile_id"], r["identifier_type"], r["value"]): (
            r["status"],
            r["first_seen_at"],
            r["last_seen_at"],
            r["event_count"],
        )
        for r in view(con, store.VALUES_VIEW)
    }
    assert got == {
        (p1, "user_id", "u1"): ("active", at(1), at(3), 2),
        (p1, "email", "test@test.com"): ("blocked", at(1), at(1), 1),
        (p1, "cookie_id", "k"): ("quarantined", at(1), at(1), 1),
        (p1, "device_id", "d1"): ("demoted", at(1), at(1), 1),
        (p1, "device_id", "d2"): ("active", at(3), at(3), 1),
        (p1, "session_id", "s1"): ("expired", at(1), at(1), 1),
        (p2, "user_id", "u2"): ("active", at(2), at(2), 1),
        (p2, "cookie_id", "k"): ("quarantined", at(2), at(2), 1),  # quarantined everywhere
        (p4, "anonymous_id", "a4"): ("active", at(40), at(40), 1),
    }
    audit = sorted(
        (r["audit_type"], r["identifier_type"], r["value"], r["event_id"])
        for r in view(con, store.AUDIT_VIEW)
    )
    assert audit == [
        ("blocked_value", "email", "test@test.com", "e1"),
        ("demoted_value", "device_id", "d1", "e3"),
        ("expired_value", "session_id", "s1", "e4"),
        ("limit_conflict", "user_id", "u1", "e5"),
        ("limit_conflict", "user_id", "u2", "e5"),
        ("quarantined_value", "cookie_id", "k", "e2"),
    ]
    attr = {r["event_id"]: (r["status"], r["reason"]) for r in view(con, store.ATTRIBUTION_VIEW)}
    assert attr["e5"] == ("excluded", "limit_conflict")


def test_outputs_run_metrics_per_window_model_and_identifier_type():
    cfg = make_config(device_id={"max_unique_values_per_profile": 1})
    con = store_run(
        cfg,
        [
            (
                "2026-11-01",
                [
                    ev("e1", 1, user_id="u1", cookie_id="k"),  # P1
                    ev(
                        "e2", 2, model="app", user_id="u2", cookie_id="k", ip_address="i"
                    ),  # P2, k quarantined
                    ev("e3", 3, user_id="u1", ip_address="i"),  # P1; i active on P1 and P2: active conflict
                    ev("e4", 4, cookie_id="k"),  # excluded conflicted_identifier_value
                    ev("e5", 5, model="app"),  # excluded no_matchable_identifier
                    ev("e6", 6, user_id=["u1", "u2"]),  # excluded limit_conflict
                    ev("e7", 7, anonymous_id="a7"),  # P7, anonymous
                    ev("e8", 8, user_id="u1", device_id="d1"),  # P1
                    ev("e9", 9, user_id="u1", device_id="d2"),  # P1, d1 demoted
                ],
            )
        ],
    )
    m = pd.DataFrame(view(con, store.METRICS_VIEW))
    assert set(m["window_key"]) == {"2026-11-01"}

    def metrics(breakdown: str, value: str | None) -> dict[str, float]:
        same = m["breakdown_value"].isna() if value is None else m["breakdown_value"] == value
        sel = m[(m["breakdown"] == breakdown) & same]
        return dict(zip(sel["metric"], sel["value"], strict=True))

    w = metrics("window", None)
    expected_window = {
        "events_processed": 9,
        "events_stitched": 6,
        "events_excluded": 3,
        "events_excluded_no_matchable_identifier": 1,
        "events_excluded_conflicted_identifier_value": 1,
        "events_excluded_limit_conflict": 1,
        "stitch_rate": pytest.approx(6 / 9),
        "profiles_created": 3,
        "profiles_merged": 0,
        "known_profile_share": pytest.approx(2 / 3),
        "values_quarantined": 1,  # the spec's "conflicted values"
        "active_conflicts": 1,  # ip_address i (no max_profiles_per_value) on P1 and P2
        "values_demoted": 1,
    }
    assert {k: w[k] for k in expected_window} == expected_window
    assert w["duration_seconds"] >= 0
    model_keys = [
        "events_processed",
        "events_stitched",
        "events_excluded",
        "events_excluded_no_matchable_identifier",
        "events_excluded_conflicted_identifier_value",
        "events_excluded_limit_conflict",
    ]
    web, app = metrics("model", "web"), metrics("model", "app")
    assert [web[k] for k in model_keys] == [7, 5, 2, 0, 1, 1]
    assert web["stitch_rate"] == pytest.approx(5 / 7)
    assert [app[k] for k in model_keys] == [2, 1, 1, 1, 0, 0]
    assert app["stitch_rate"] == pytest.approx(0.5)
    type_keys = ["observations", "distinct_values", "events_decided", "values_quarantined", "values_demoted"]
    by_type = {
        t: [metrics("identifier_type", t)[k] for k in type_keys]
        for t in set(m["breakdown_value"].dropna())
        if t not in ("web", "app")
    }
    assert by_type == {
        "user_id": [7, 2, 5, 0, 0],
        "cookie_id": [3, 1, 0, 1, 0],
        "ip_address": [2, 1, 0, 0, 0],
        "anonymous_id": [1, 1, 1, 0, 0],
        "device_id": [2, 2, 0, 0, 1],
    }
    assert metrics("identifier_type", "user_id")["limit_conflicts"] == 2


# ============================================================================================================
# Guarantees
# ============================================================================================================


def _subgraph_of(con: duckdb.DuckDBPyConnection, cfg: EventStitchingConfig, events: list[dict], key: str):
    """What a new run loads for a window of these events: (loaded subgraph as strings, the run's cache)."""
    window = store.window_for_key(cfg, key)
    events_df, long = frames(events)
    store.stage_frames(con, cfg, window, events_df, extract_observations(long, cfg))
    pol = Policy.from_config(cfg)
    codes = type_codes(con, list(cfg.identifiers))
    walk = pol.index()
    cache = GraphCache(con, pol, {codes[t]: walk[t] for t in pol.names})
    vids = np.unique(
        con.execute(f"select vid from {store.STAGE}.observations where window_key = ?", [key]).df()["vid"]
    ).astype(np.int64)
    cache.v.ensure(int(vids.max()) + 1)
    cache.v.code[vids] = (
        con.execute(
            f"select vid, any_value(type_code) c from {store.STAGE}.observations where window_key = ? "
            "group by vid order by vid",
            [key],
        )
        .df()["c"]
        .to_numpy()
    )
    ex = extract(cache, vids, np.zeros(0, np.int64), next_seq=1)
    text = dict(con.execute(f"select vid, value from {store.STATE}.value_dictionary").fetchall())
    ids = {int(p): f"esp_{int(k):016x}" for p, k in zip(ex.sub.p_seq, ex.sub.p_key, strict=True)}
    memberships = sorted(
        (ids[int(ex.sub.p_seq[p])], text[int(ex.vids[v])])
        for p, v in zip(ex.sub.m_p, ex.sub.m_v, strict=True)
    )
    registry = sorted(text[int(v)] for v in ex.vids[ex.sub.v_reg])
    return {"profiles": set(ids.values()), "memberships": memberships, "registry": registry}, cache


def test_guarantee_window_loads_only_the_graph_state_its_values_touch():
    # cost of a window: the run loads the profiles holding the window's values, their memberships of those
    # values and of profile-wide types, and those values' registry rows; nothing else (no merged profile, no
    # redirect, no other value).
    cfg = make_config()
    con = store_run(
        cfg,
        [
            (
                "2026-11-01",
                [
                    ev("e1", 1, anonymous_id="a1"),
                    ev("e2", 2, anonymous_id="a2"),
                    ev("e3", 3, anonymous_id="a3"),
                    ev("e4", 4, anonymous_id=["a1", "a3"]),  # P3 merges into P1
                    ev("e5", 5, anonymous_id="a5", device_id="d5"),
                ],
            )
        ],
    )
    p1 = pid("e1")
    loaded, cache = _subgraph_of(con, cfg, [ev("e6", DAY + 1, anonymous_id="a1")], "2026-11-02")
    assert loaded == {"profiles": {p1}, "memberships": [(p1, "a1")], "registry": ["a1"]}
    assert cache.redirects == {}  # no redirect is read by a window that merges nothing
    assert int(cache.p.state[: cache.p.n].astype(bool).sum()) == 1  # one profile row in memory
    store.stitch_windows(con, cfg, [store.window_for_key(cfg, "2026-11-02")])
    rows = {r["event_id"]: r["dinmo_stitched_profile_id"] for r in view(con, store.ATTRIBUTION_VIEW)}
    assert rows["e6"] == p1
    untouched = {r["dinmo_stitched_profile_id"]: r["event_count"] for r in view(con, store.PROFILES_VIEW)}
    assert (untouched[pid("e2")], untouched[pid("e5")], untouched[p1]) == (1, 1, 4)


def test_subgraph_maps_the_window_observations_to_its_local_rows_as_local_values_does():
    # `extract(observed=...)` maps the observation vids (repeated, in event order) while it builds the local
    # map: the same rows `Extracted.local_values` gives, each pointing back at its vid
    cfg = make_config()
    con = store_run(
        cfg,
        [("2026-11-01", [ev("e1", 1, anonymous_id="a1", device_id="d1"), ev("e2", 2, anonymous_id="a2")])],
    )
    key = "2026-11-02"
    events = [ev("e3", DAY + 1, anonymous_id="a1"), ev("e4", DAY + 2, anonymous_id=["a2", "a3"])]
    _, cache = _subgraph_of(con, cfg, events, key)
    obs = (
        con.execute(
            f"select vid from {store.STAGE}.observations where window_key = ? order by seq, vid desc", [key]
        )
        .df()["vid"]
        .to_numpy(dtype=np.int64)
    )
    window_vids = np.unique(obs)
    ex = extract(cache, window_vids, np.zeros(0, np.int64), next_seq=10, observed=obs)
    assert ex.observed is not None and len(ex.observed) == len(obs) == 3
    assert ex.observed.tolist() == ex.local_values(cache, obs).tolist()
    assert ex.vids[ex.observed].tolist() == obs.tolist()
    assert extract(cache, window_vids, np.zeros(0, np.int64), next_seq=10).observed is None
    assert (cache.v.scratch[: cache.v.n] == -1).all()  # the map is cleared after use


def test_guarantees_a_window_loads_only_the_memberships_its_rules_read_and_merges_carry_the_rest():
    # Day 1: P1 = {user u1, anon a1, sessions s1, s2}, P2 = {anon a2, session s3}. Day 2 sees a1 and a2
    # (P2 merges into P1) but no session: the window loads the anchors and the window's values only, and
    # P2's session moves to P1 in the store all the same.
    cfg = make_config()
    con = store_run(
        cfg,
        [
            (
                "2026-11-01",
                [
                    ev("e1", 1, user_id="u1", anonymous_id="a1", session_id="s1"),
                    ev("e2", 50, anonymous_id="a1", session_id="s2"),
                    ev("e3", 60, anonymous_id="a2", session_id="s3"),
                ],
            )
        ],
    )
    p1, p2 = pid("e1"), pid("e3")
    day2 = [ev("e4", DAY + 1, anonymous_id=["a1", "a2"])]
    loaded, _ = _subgraph_of(con, cfg, day2, "2026-11-02")
    assert loaded["memberships"] == sorted([(p1, "a1"), (p1, "u1"), (p2, "a2")])
    store.stitch_windows(con, cfg, [store.window_for_key(cfg, "2026-11-02")])
    values = {(r["dinmo_stitched_profile_id"], r["value"]): r for r in view(con, store.VALUES_VIEW)}
    assert sorted(values) == sorted((p1, v) for v in ("u1", "a1", "a2", "s1", "s2", "s3"))
    s3 = values[(p1, "s3")]
    assert (s3["status"], s3["event_count"], s3["first_seen_at"]) == ("expired", 1, at(60))
    profiles = {r["dinmo_stitched_profile_id"]: r for r in view(con, store.PROFILES_VIEW)}
    assert (profiles[p2]["status"], profiles[p1]["event_count"]) == ("merged", 4)


def test_guarantees_a_window_loads_no_redirects_and_merges_re_point_the_older_ones_in_the_store():
    # Day 1: P3 merges into P2 (redirect P3 -> P2). Day 2 merges P2 into P1 without seeing P3's values: the
    # window loads neither the redirect nor P3 to decide, and the store still re-points it to P1 (one hop),
    # with P3's merged_to, as a run over the whole state would.
    cfg = make_config()
    con = store_run(
        cfg,
        [
            (
                "2026-11-01",
                [*_three_anonymous_profiles(), ev("e4", 4, anonymous_id=["a2", "a3"])],
            )
        ],
    )
    p1, p2, p3 = pid("e1"), pid("e2"), pid("e3")
    day2 = [ev("e5", DAY + 1, anonymous_id=["a1", "a2"])]
    loaded, cache = _subgraph_of(con, cfg, day2, "2026-11-02")
    assert loaded["profiles"] == {p1, p2} and cache.redirects == {}
    store.stitch_windows(con, cfg, [store.window_for_key(cfg, "2026-11-02")])
    redirects = {r["from_id"]: r["to_id"] for r in view(con, store.REDIRECTS_VIEW)}
    assert redirects == {p3: p1, p2: p1}
    profiles = {r["dinmo_stitched_profile_id"]: r for r in view(con, store.PROFILES_VIEW)}
    assert {p: profiles[p]["merged_to_dinmo_stitched_profile_id"] for p in (p2, p3)} == {p2: p1, p3: p1}
    assert (profiles[p1]["status"], profiles[p1]["event_count"]) == ("active", 5)


_STATE_VIEWS = (store.PROFILES_VIEW, store.VALUES_VIEW, store.REDIRECTS_VIEW, store.ATTRIBUTION_VIEW)


def _state_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {
        name: sorted(
            map(tuple, con.execute(f"select * exclude (written_window) from {store.STATE}.{name}").fetchall())
        )
        for name in store.STATE_TABLES
    }


def test_guarantees_re_running_an_earlier_window_rolls_back_to_it_and_gives_the_in_order_tables():
    # Re-running day 2 rolls the state back to day 1 (day 3's and day 2's changes undone from their undo
    # logs), marks day 3 outdated; re-running day 3 then gives the tables of the in-order run.
    cfg = make_config()
    day1 = [ev("e1", 1, user_id="u1", cookie_id="c1"), ev("e2", 2, cookie_id="c2")]
    day2 = [ev("e3", DAY + 1, cookie_id="c1", anonymous_id="a1"), ev("e4", DAY + 2, cookie_id="c2")]
    day3 = [ev("e5", 2 * DAY + 1, anonymous_id="a1", cookie_id="c2")]  # merges the two profiles
    con = store_run(cfg, [("2026-11-01", day1)])
    after_day1 = _state_rows(con)
    for key, evs in (("2026-11-02", day2), ("2026-11-03", day3)):
        events_df, long = frames(evs)
        store.process_frames(
            con, cfg, store.window_for_key(cfg, key), events_df, extract_observations(long, cfg)
        )
    published = {name: view(con, name) for name in _STATE_VIEWS}
    in_order = _state_rows(con)
    assert len(published[store.REDIRECTS_VIEW]) == 1  # the merge of day 3 is there to be seen
    # roll back days 3 and 2 by hand (one run each, so one commit and one undo log each): day 1's state again
    from identity_pipeline.core.event_stitching.store.undo import rollback_commit

    con.execute("begin transaction")
    for key in ("2026-11-03", "2026-11-02"):
        rollback_commit(con, store.window_for_key(cfg, key).start)
    assert _state_rows(con) == after_day1
    con.execute("rollback")
    # the re-run of day 2: day 3 becomes outdated, the state is day 2's; then day 3 again
    store.stitch_windows(con, cfg, [store.window_for_key(cfg, "2026-11-02")])
    status = dict(con.execute(f"select window_key, status from {store.STATE}.windows").fetchall())
    assert status == {"2026-11-01": "processed", "2026-11-02": "processed", "2026-11-03": "outdated"}
    with pytest.raises(store.WindowOrderError, match="outdated"):
        store.stitch_windows(con, cfg, [store.window_for_key(cfg, "2026-11-04")])
    store.stitch_windows(con, cfg, [store.window_for_key(cfg, "2026-11-03")])
    assert _state_rows(con) == in_order
    assert {name: view(con, name) for name in _STATE_VIEWS} == published


def _engine_failing_at(call: int, real):
    """`real` (the engine) that raises on its `call`-th call instead."""
    calls = []

    def engine(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError("engine failed")
        return real(*args, **kwargs)

    return engine


def test_guarantees_a_run_that_fails_leaves_every_table_as_it_was(monkeypatch):
    # One run = one transaction: a failure in its second window undoes its first window too.
    cfg = make_config()
    day1 = [ev("e1", 1, user_id="u1", cookie_id="c1"), ev("e2", 2, cookie_id="c2")]
    day2 = [ev("e3", DAY + 1, cookie_id="c1", anonymous_id="a1")]
    day3 = [ev("e4", 2 * DAY + 1, anonymous_id="a1", cookie_id="c2")]
    con = store_run(cfg, [("2026-11-01", day1)])
    for key, evs in (("2026-11-02", day2), ("2026-11-03", day3)):
        events_df, long = frames(evs)
        store.stage_frames(
            con, cfg, store.window_for_key(cfg, key), events_df, extract_observations(long, cfg)
        )
    before = {name: view(con, name) for name in store.PUBLISHED}
    state = _state_rows(con)
    from identity_pipeline.core.event_stitching.store import run as run_module

    real = run_module.stitch_arrays
    monkeypatch.setattr(run_module, "stitch_arrays", _engine_failing_at(2, real))
    windows = [store.window_for_key(cfg, k) for k in ("2026-11-02", "2026-11-03")]
    with pytest.raises(RuntimeError, match="engine failed"):
        store.stitch_windows(con, cfg, windows)
    assert {name: view(con, name) for name in store.PUBLISHED} == before
    assert _state_rows(con) == state
    monkeypatch.setattr(run_module, "stitch_arrays", real)
    store.stitch_windows(con, cfg, windows)
    rows = {r["event_id"]: r["resolved_dinmo_stitched_profile_id"] for r in view(con, store.ATTRIBUTION_VIEW)}
    assert rows["e3"] == rows["e4"] == pid("e1")


def test_guarantees_a_long_run_that_fails_keeps_the_windows_committed_before_it(monkeypatch):
    # A run commits every `commit_every` windows: a failure after a commit point keeps the committed
    # windows (a consistent prefix, as if the run had asked for them alone) and the next run goes on from
    # there to the same tables as one run without a failure.
    cfg = make_config()
    days = [
        ("2026-11-01", [ev("e1", 1, user_id="u1", cookie_id="c1"), ev("e2", 2, cookie_id="c2")]),
        ("2026-11-02", [ev("e3", DAY + 1, cookie_id="c1", anonymous_id="a1")]),
        ("2026-11-03", [ev("e4", 2 * DAY + 1, anonymous_id="a1", cookie_id="c2")]),
    ]

    def staged() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        store.ensure_schema(con)
        for key, evs in days:
            events_df, long = frames(evs)
            store.stage_frames(
                con, cfg, store.window_for_key(cfg, key), events_df, extract_observations(long, cfg)
            )
        return con

    windows = [store.window_for_key(cfg, k) for k, _ in days]
    clean = staged()
    store.stitch_windows(clean, cfg, windows, commit_every=1)
    expected = {name: view(clean, name) for name in _STATE_VIEWS}
    first_only = staged()
    store.stitch_windows(first_only, cfg, windows[:1])
    first_state = _state_rows(first_only)

    from identity_pipeline.core.event_stitching.store import run as run_module

    real = run_module.stitch_arrays
    con = staged()
    monkeypatch.setattr(run_module, "stitch_arrays", _engine_failing_at(2, real))
    with pytest.raises(RuntimeError, match="engine failed"):
        store.stitch_windows(con, cfg, windows, commit_every=1)
    monkeypatch.setattr(run_module, "stitch_arrays", real)
    status = dict(con.execute(f"select window_key, status from {store.STATE}.windows").fetchall())
    assert status == {"2026-11-01": "processed"}
    assert _state_rows(con) == first_state
    store.stitch_windows(con, cfg, windows[1:], commit_every=1)
    assert {name: view(con, name) for name in _STATE_VIEWS} == expected


_FIVE_DAYS = [
    ("2026-11-01", [ev("e1", 1, user_id="u1", cookie_id="c1"), ev("e2", 2, cookie_id="c2")]),
    ("2026-11-02", [ev("e3", DAY + 1, cookie_id="c1", anonymous_id="a1"), ev("e4", DAY + 2, cookie_id="c3")]),
    ("2026-11-03", [ev("e5", 2 * DAY + 1, anonymous_id="a1", cookie_id="c2")]),  # merges c2's profile in
    (
        "2026-11-04",
        [ev("e6", 3 * DAY + 1, cookie_id="c3", session_id="s1"), ev("e7", 3 * DAY + 2, cookie_id="c4")],
    ),
    (
        "2026-11-05",
        [ev("e8", 4 * DAY + 1, session_id="s1", anonymous_id="a1"), ev("e9", 4 * DAY + 2, cookie_id="c1")],
    ),
]


def _staged(cfg, days=_FIVE_DAYS) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    store.ensure_schema(con)
    for key, evs in days:
        _stage(con, cfg, key, evs)
    return con


def _stage(con: duckdb.DuckDBPyConnection, cfg, key: str, evs: list) -> None:
    events_df, long = frames(evs)
    store.stage_frames(con, cfg, store.window_for_key(cfg, key), events_df, extract_observations(long, cfg))


def _outputs(con: duckdb.DuckDBPyConnection, before_key: str) -> list[tuple]:
    return con.execute(
        f"select * from {store.OUT}.attribution where window_key < ? order by window_key, seq", [before_key]
    ).fetchall()


def test_guarantees_the_undo_log_is_kept_per_commit_and_re_running_inside_a_commit_replays_its_start():
    # One undo log per commit: a row is journaled the first time a commit changes it, as it was before the
    # commit (rows the commit created are not journaled). Re-running a window inside a commit rolls the whole
    # commit back and stitches its earlier windows again from their staged rows (their outputs kept): from
    # every window, the tables are those of the in-order run.
    cfg = make_config()
    windows = [store.window_for_key(cfg, k) for k, _ in _FIVE_DAYS]
    clean = _staged(cfg)
    store.stitch_windows(clean, cfg, windows, commit_every=1)
    expected_views = {name: view(clean, name) for name in _STATE_VIEWS}
    expected_state = _state_rows(clean)

    con = _staged(cfg)
    store.stitch_windows(con, cfg, windows, commit_every=2)
    assert _state_rows(con) == expected_state
    undo_of = dict(con.execute(f"select window_key, undo_window from {store.STATE}.windows").fetchall())
    starts = [w.start for w in windows]
    assert undo_of == dict(
        zip([w.key for w in windows], [starts[0], starts[0], starts[2], starts[2], starts[4]], strict=True)
    )
    for name in store.STATE_TABLES:
        stamps = con.execute(f"select distinct undo_window from {store.STATE}.undo_{name}").fetchall()
        assert {t for (t,) in stamps} <= {starts[2], starts[4]}, name  # nothing existed before the first
        # journaled once per commit: no key twice under one stamp
        keys = ", ".join(STATE_KEYS[name])
        dup = con.execute(
            f"select count(*) from (select undo_window, {keys} from {store.STATE}.undo_{name} group by all "
            "having count(*) > 1)"
        ).fetchall()
        assert dup == [(0,)], name
    per_window = _staged(cfg)
    for w in windows:
        store.stitch_windows(per_window, cfg, [w])
    for name in store.STATE_TABLES:
        q = f"select count(*) from {store.STATE}.undo_{name}"
        assert con.execute(q).fetchall()[0][0] <= per_window.execute(q).fetchall()[0][0], name
    assert con.execute(f"select count(*) from {store.STATE}.undo_registry").fetchall()[0][0] > 0

    for k in range(1, len(windows)):
        con = _staged(cfg)
        store.stitch_windows(con, cfg, windows, commit_every=2)
        kept = _outputs(con, windows[k].key)
        store.stitch_windows(con, cfg, windows[k:], commit_every=3)
        assert _state_rows(con) == expected_state, k
        assert {name: view(con, name) for name in _STATE_VIEWS} == expected_views, k
        assert _outputs(con, windows[k].key) == kept, k  # the replayed windows' outputs are the same rows
        status = con.execute(f"select distinct status from {store.STATE}.windows").fetchall()
        assert status == [("processed",)], k


def test_guarantees_a_replay_that_fails_after_a_commit_point_leaves_the_rest_outdated(monkeypatch):
    # Days 1-5 in one commit; re-running day 5 with commits of 2 replays days 1-4 and commits after days 2
    # and 4. A failure while day 4 is replayed keeps the commit of days 1-2; days 3-4 are `outdated` (not
    # `processed` over a state without them), and re-running from day 3 gives the in-order tables.
    cfg = make_config()
    windows = [store.window_for_key(cfg, k) for k, _ in _FIVE_DAYS]
    clean = _staged(cfg)
    store.stitch_windows(clean, cfg, windows, commit_every=1)
    expected = ({name: view(clean, name) for name in _STATE_VIEWS}, _state_rows(clean))
    two_days = _staged(cfg)
    store.stitch_windows(two_days, cfg, windows[:2])

    con = _staged(cfg)
    store.stitch_windows(con, cfg, windows)
    from identity_pipeline.core.event_stitching.store import run as run_module

    real = run_module.stitch_arrays
    monkeypatch.setattr(run_module, "stitch_arrays", _engine_failing_at(4, real))
    with pytest.raises(RuntimeError, match="engine failed"):
        store.stitch_windows(con, cfg, windows[4:], commit_every=2)
    monkeypatch.setattr(run_module, "stitch_arrays", real)
    status = dict(con.execute(f"select window_key, status from {store.STATE}.windows").fetchall())
    assert status == {
        "2026-11-01": "processed",
        "2026-11-02": "processed",
        "2026-11-03": "outdated",
        "2026-11-04": "outdated",
    }
    assert _state_rows(con) == _state_rows(two_days)
    with pytest.raises(store.WindowOrderError, match="outdated"):
        store.stitch_windows(con, cfg, windows[4:])
    store.stitch_windows(con, cfg, windows[2:], commit_every=2)
    assert ({name: view(con, name) for name in _STATE_VIEWS}, _state_rows(con)) == expected


def test_guarantees_a_window_staged_again_is_not_replayed_from_its_new_rows():
    # Window 2 is staged again after the run that stitched windows 1-3 in one commit. Re-running window 3
    # would stitch window 2 again (same commit) from rows its outputs were not built from: a clear error
    # before anything is written. Re-running from window 2 is what the message asks for, and works.
    cfg = make_config()
    windows = [store.window_for_key(cfg, k) for k, _ in _FIVE_DAYS[:3]]
    con = _staged(cfg, _FIVE_DAYS[:3])
    store.stitch_windows(con, cfg, windows)
    state = _state_rows(con)
    _stage(con, cfg, *_FIVE_DAYS[1])
    with pytest.raises(store.WindowOrderError, match=r"2026-11-02 was staged again.*from 2026-11-02 on"):
        store.stitch_windows(con, cfg, windows[2:])
    assert _state_rows(con) == state
    store.stitch_windows(con, cfg, windows[1:])
    assert _state_rows(con) == state  # the same rows were staged again


# ============================================================================================================
# Scenario catalogue (hand-written expected graphs)
# ============================================================================================================


@pytest.mark.usefixtures("engine_path")
def test_scenario_diamond_two_paths_merge_into_the_oldest_profile():
    # a, b, c start as three profiles; a-b and a-c merge them (two paths), then b-c-d closes the diamond
    # with no further merge and attaches d.
    state, r = run(
        make_config(),
        [
            ev("e1", 1, anonymous_id="a"),
            ev("e2", 2, device_id="b"),
            ev("e3", 3, ip_address="c"),
            ev("e4", 4, anonymous_id="a", device_id="b"),
            ev("e5", 5, anonymous_id="a", ip_address="c"),
            ev("e6", 6, device_id="b", ip_address="c", cookie_id="d"),
        ],
    )
    p1, p2, p3 = pid("e1"), pid("e2"), pid("e3")
    assert graph(state) == {
        p1: {
            "status": "active",
            "merged_to": None,
            "known": False,
            "values": {
                ("anonymous_id", "a"): "active",
                ("device_id", "b"): "active",
                ("ip_address", "c"): "active",
                ("cookie_id", "d"): "active",
            },
        },
        p2: {"status": "merged", "merged_to": p1, "known": False, "values": {}},
        p3: {"status": "merged", "merged_to": p1, "known": False, "values": {}},
    }
    assert redirects(state) == {p2: p1, p3: p1}
    assert attribution(r) == {
        "e1": (p1, "stitched", None),
        "e2": (p2, "stitched", None),
        "e3": (p3, "stitched", None),
        "e4": (p1, "stitched", None),
        "e5": (p1, "stitched", None),
        "e6": (p1, "stitched", None),
    }
    assert (r.metrics["profiles_created"], r.metrics["profiles_merged"]) == (3, 2)


def _mixed_scenario() -> list[dict]:
    return [
        ev("e1", 1, anonymous_id="a1"),
        ev("e2", 1, model="app", anonymous_id="a1", user_id="u"),
        ev("e3", 2, user_id="u", cookie_id="k"),
        ev("e4", 2, user_id="v", cookie_id="k"),
        ev("e5", 3, cookie_id="k"),
        ev("e6", 3, email="test@test.com", device_id="d"),
        ev("e7", 4, device_id="d", ip_address="i"),
    ]


@pytest.mark.usefixtures("engine_path")
@pytest.mark.parametrize("seed", range(4))
def test_scenario_shuffled_input_order_gives_the_hand_written_graph(seed):
    # processing order (event_ts, model, event_id): (1,app,e2) creates P_u with u + a1; (1,web,e1) joins it;
    # e3 adds k; e4: v is incompatible with P_u, k is weak -> new P_v {v, k}, k on 2 profiles -> quarantined;
    # e5 only has quarantined k -> conflicted; e6: blocked email + new d -> P_d; e7 joins P_d through d.
    events = _mixed_scenario()
    random.Random(seed).shuffle(events)
    state, r = run(make_config(), events)
    p_u, p_v, p_d = pid("e2", "app"), pid("e4"), pid("e6")
    assert graph(state) == {
        p_u: {
            "status": "active",
            "merged_to": None,
            "known": True,
            "values": {
                ("user_id", "u"): "active",
                ("anonymous_id", "a1"): "active",
                ("cookie_id", "k"): "active",
            },
        },
        p_v: {
            "status": "active",
            "merged_to": None,
            "known": True,
            "values": {("user_id", "v"): "active", ("cookie_id", "k"): "active"},
        },
        p_d: {
            "status": "active",
            "merged_to": None,
            "known": False,
            "values": {
                ("email", "test@test.com"): "blocked",
                ("device_id", "d"): "active",
                ("ip_address", "i"): "active",
            },
        },
    }
    assert quarantined(state) == {("cookie_id", "k")}
    assert redirects(state) == {}
    assert attribution(r) == {
        "e1": (p_u, "stitched", None),
        "e2": (p_u, "stitched", None),
        "e3": (p_u, "stitched", None),
        "e4": (p_v, "stitched", None),
        "e5": (None, "excluded", "conflicted_identifier_value"),
        "e6": (p_d, "stitched", None),
        "e7": (p_d, "stitched", None),
    }
    seq = dict(
        zip(state.profiles["dinmo_stitched_profile_id"], state.profiles["created_sequence"], strict=True)
    )
    assert seq == {p_u: 1, p_v: 2, p_d: 3}


def test_guarantees_a_finished_run_frees_its_in_memory_graph_without_the_cyclic_collector():
    # the daily schedule runs one StitchRun per window in a long-lived process: each run's graph must go
    # when the run ends, not whenever Python's cyclic collector gets to it
    import gc
    import weakref

    cfg = make_config()
    con = duckdb.connect()
    store.ensure_schema(con)
    events_df, long = frames([ev("e1", 1, user_id="u1", cookie_id="c1")])
    window = store.window_for_key(cfg, "2026-11-01")
    store.stage_frames(con, cfg, window, events_df, extract_observations(long, cfg))
    enabled = gc.isenabled()
    gc.disable()
    try:
        run = store.StitchRun(con, cfg, [window])
        graph = weakref.ref(run.cache)
        run.process(window)
        run.finish()
        del run
        assert graph() is None
    finally:
        if enabled:
            gc.enable()
