"""The store publishes exactly what the reference decides, however the windows are split into runs.

Random streams (strategies.py) are staged and stitched through the store (`stage_frames`, `stitch_windows`)
in runs of random lengths (each run one transaction over the in-memory graph, loading from the state tables
what earlier runs wrote), sometimes followed by a re-run from a random window (rolling the later ones back).
The published views must equal the reference run on the whole state: attribution (with the resolved id),
profiles, identifier values (with their status), redirects, audit events and the window metrics.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from identity_pipeline.core.event_stitching import store
from identity_pipeline.core.event_stitching.state import GraphState
from identity_pipeline.core.event_stitching.store import columns
from identity_pipeline_tests.event_stitching.helpers import ev, make_config
from identity_pipeline_tests.event_stitching.strategies import reference_stitch, streams, window_inputs

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DAY = 24 * 60


def _key(i: int) -> str:
    return f"2026-11-{i + 1:02d}"


def _reference(config, windows):
    state = GraphState.empty()
    results = []
    for i, evs in enumerate(windows):
        events_df, obs = window_inputs(evs, config)
        # the store reads an event's values in (identifier_type, value) order
        obs = obs.sort_values(["identifier_type", "value"], kind="mergesort").reset_index(drop=True)
        r = reference_stitch(state, events_df, obs, config, _key(i))
        results.append(r)
        state = r.state
    return state, results


def _none(v: Any) -> Any:
    if v is None or (not isinstance(v, str | bool) and pd.isna(v)):
        return None
    return v


def _records(df: pd.DataFrame, cols: list[str]) -> list[tuple]:
    return [tuple(_none(v) for v in row) for row in df[cols].itertuples(index=False, name=None)]


def _view(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    return con.execute(f"select * from main.{name}").df()


def _expected_value_status(state: GraphState, config, as_of: pd.Timestamp) -> list[str]:
    reg = state.value_registry.set_index(["identifier_type", "value"])
    out = []
    for r in state.profile_values.to_dict("records"):
        g = (
            reg.loc[(r["identifier_type"], r["value"])]
            if (r["identifier_type"], r["value"]) in reg.index
            else None
        )
        pol = config.identifiers[r["identifier_type"]]
        life = pol.lifetime_delta()
        ref = None
        if g is not None and life is not None:
            ref = g["last_seen_at"] if pol.lifetime_from == "last_seen" else g["first_seen_at"]
        if r["status"] == "blocked":
            out.append("blocked")
        elif g is not None and bool(g["quarantined"]):
            out.append("quarantined")
        elif r["status"] == "demoted":
            out.append("demoted")
        elif ref is not None and as_of > ref + life:
            out.append("expired")
        else:
            out.append("active")
    return out


def _expected_active_conflicts(state: GraphState, config, end: pd.Timestamp) -> int:
    pv, prof = state.profile_values, state.profiles
    active = set(prof.loc[prof["status"] == "active", "dinmo_stitched_profile_id"])
    act = pv[(pv["status"] == "active") & pv["dinmo_stitched_profile_id"].isin(active)]
    counts = act.groupby(["identifier_type", "value"])["dinmo_stitched_profile_id"].nunique()
    reg = state.value_registry.set_index(["identifier_type", "value"])
    n = 0
    for (t, v), c in counts.items():
        if c < 2:
            continue
        g = reg.loc[(t, v)]
        if bool(g["quarantined"]):
            continue
        pol = config.identifiers[t]
        life = pol.lifetime_delta()
        if life is not None:
            ref = g["last_seen_at"] if pol.lifetime_from == "last_seen" else g["first_seen_at"]
            if ref + life < end:
                continue
        n += 1
    return n


def assert_store_matches(con: duckdb.DuckDBPyConnection, config, state: GraphState, results) -> None:
    redirect = dict(zip(state.redirects["from_id"], state.redirects["to_id"], strict=True))
    # attribution, with the resolved id through the final redirects
    ref = pd.concat([r.attribution for r in results], ignore_index=True)
    ref["resolved_dinmo_stitched_profile_id"] = [
        None if p is None else redirect.get(p, p) for p in ref["dinmo_stitched_profile_id"]
    ]
    cols = [
        "model",
        "event_id",
        "event_ts",
        "window_key",
        "dinmo_stitched_profile_id",
        "resolved_dinmo_stitched_profile_id",
        "status",
        "reason",
        "decided_by_identifier_type",
        "decided_by_value",
    ]
    assert _records(_view(con, store.ATTRIBUTION_VIEW), cols) == _records(ref, cols)
    # profiles
    p = state.profiles.sort_values("created_sequence").copy()
    p["resolved_dinmo_stitched_profile_id"] = [
        m if m is not None else i
        for i, m in zip(p["dinmo_stitched_profile_id"], p["merged_to_dinmo_stitched_profile_id"], strict=True)
    ]
    p["profile_type"] = np.where(p["is_known"], "known", "anonymous")
    cols = [
        "dinmo_stitched_profile_id",
        "created_sequence",
        "created_at",
        "first_seen_at",
        "last_seen_at",
        "status",
        "merged_to_dinmo_stitched_profile_id",
        "resolved_dinmo_stitched_profile_id",
        "is_known",
        "profile_type",
        "event_count",
    ]
    assert _records(_view(con, store.PROFILES_VIEW), cols) == _records(p, cols)
    # identifier values, status as of the end of the last window
    if results:
        as_of = pd.Timestamp(_key(len(results))) if len(results) < 31 else None
        v = state.profile_values.copy()
        v["status"] = _expected_value_status(state, config, as_of)
        v = v.sort_values(["dinmo_stitched_profile_id", "identifier_type", "value"])
        cols = [
            "dinmo_stitched_profile_id",
            "identifier_type",
            "value",
            "status",
            "first_seen_at",
            "last_seen_at",
            "event_count",
        ]
        assert _records(_view(con, store.VALUES_VIEW), cols) == _records(v, cols)
    # redirects
    r = state.redirects.sort_values("from_id")
    cols = ["from_id", "to_id", "merged_at", "evidence_model", "evidence_event_id", "window_key"]
    assert _records(_view(con, store.REDIRECTS_VIEW), cols) == _records(r, cols)
    # audit events, in the reference's order
    a = pd.concat([x.audit_events for x in results], ignore_index=True)
    cols = list(a.columns)
    assert _records(_view(con, store.AUDIT_VIEW), cols) == _records(a, cols)
    # window metrics
    m = con.execute(
        f"select window_key, metric, value from {store.OUT}.run_metrics where breakdown = 'window'"
    ).df()
    got = {(k, n): val for k, n, val in m.itertuples(index=False, name=None)}
    for i, res in enumerate(results):
        for name, val in res.metrics.items():
            assert got[(_key(i), name)] == float(val), (i, name)
    last = len(results) - 1
    expected = _expected_active_conflicts(state, config, pd.Timestamp(_key(last)) + pd.Timedelta(days=1))
    stored = con.execute(
        f"select d.value, c.active_profiles, c.expires_at from {store.STATE}.conflicts c "
        f"join {store.STATE}.value_dictionary d using (vid) order by all"
    ).fetchall()
    assert got[(_key(last), "active_conflicts")] == expected, (stored, state.profile_values.to_string())


def run_store(config, windows, runs: list[list[int]], commit_every: int = 10) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    store.ensure_schema(con)
    for i, evs in enumerate(windows):
        events_df, obs = window_inputs(evs, config)
        store.stage_frames(con, config, store.window_for_key(config, _key(i)), events_df, obs)
    for run in runs:
        keys = [store.window_for_key(config, _key(i)) for i in run]
        store.stitch_windows(con, config, keys, commit_every=commit_every)
    return con


@st.composite
def run_splits(draw: st.DrawFn, n: int) -> list[list[int]]:
    """Consecutive runs covering windows 0..n-1, then maybe a re-run from a random window to the end."""
    cuts = draw(st.lists(st.booleans(), min_size=max(n - 1, 0), max_size=max(n - 1, 0)))
    runs, cur = [], [0]
    for i, cut in enumerate(cuts, start=1):
        if cut:
            runs.append(cur)
            cur = [i]
        else:
            cur.append(i)
    runs.append(cur)
    if n and draw(st.booleans()):
        k = draw(st.integers(0, n - 1))
        runs.append(list(range(k, n)))
    return runs


# A merge of a profile that already has a redirect from an earlier run (its source never seen again), and a
# merged profile's old session carried to the survivor (run 2 loads neither).
_CARRY = (
    make_config(),
    [
        [
            ev("e1", 1, anonymous_id="a1", session_id="s1"),
            ev("e2", 2, anonymous_id="a2", session_id="s2"),
            ev("e3", 3, anonymous_id="a3", session_id="s3"),
            ev("e4", 4, anonymous_id=["a2", "a3"]),
        ],
        [ev("e5", DAY + 1, anonymous_id=["a1", "a2"])],
    ],
)


@SETTINGS
@given(streams(max_windows=4, max_events=14), st.data())
@example(_CARRY, None)
def test_store_publishes_the_reference_outputs(stream, data):
    config, windows = stream
    runs = data.draw(run_splits(len(windows))) if data is not None else [[0], [1]]
    commit_every = data.draw(st.sampled_from([1, 2, 10])) if data is not None else 10
    # chains of rows cut short after 1 step take the scan (`columns.chain_rows`) on every value or profile
    steps = data.draw(st.sampled_from([1, columns.MAX_CHAIN_STEPS])) if data is not None else 1
    state, results = _reference(config, windows)
    before, columns.MAX_CHAIN_STEPS = columns.MAX_CHAIN_STEPS, steps
    try:
        con = run_store(config, windows, runs, commit_every)
    finally:
        columns.MAX_CHAIN_STEPS = before
    assert_store_matches(con, config, state, results)


def test_store_matches_the_reference_on_the_carry_example_in_one_run():
    config, windows = _CARRY
    state, results = _reference(config, windows)
    assert_store_matches(run_store(config, windows, [[0, 1]]), config, state, results)
    con = run_store(config, windows, [[0], [1], [1]])  # and with the newest window re-run
    assert_store_matches(con, config, state, results)
    red = _view(con, store.REDIRECTS_VIEW)
    assert dict(zip(red["from_id"], red["to_id"], strict=True)) == dict(
        zip(state.redirects["from_id"], state.redirects["to_id"], strict=True)
    )
    assert len(red) == 2


@pytest.mark.parametrize("max_steps", [0, 1, 2, 100])
def test_chain_rows_finishes_long_chains_with_a_scan(max_steps):
    # rows 0..9 owned by 3 owners, linked newest first; owner 2 has a long chain, owner 1 none
    owner_of = np.array([0, 2, 2, 0, 2, 2, 2, 0, 2, 3], dtype=np.int64)
    head = np.full(4, -1, dtype=np.int64)
    nxt = np.full(len(owner_of), -1, dtype=np.int64)
    for row, owner in enumerate(owner_of.tolist()):
        columns.link(head, nxt, np.array([row]), np.array([owner]))
    owners = np.array([0, 1, 2])
    expected = sorted(np.flatnonzero(np.isin(owner_of, owners)).tolist())
    walked = columns.chain_rows(head, nxt, owners)
    got = columns.chain_rows(head, nxt, owners, owner_of=owner_of, max_steps=max_steps)
    assert sorted(walked.tolist()) == sorted(got.tolist()) == expected
    assert len(got) == len(expected)
    on_chain = owner_of != 2  # a chain that links only some of an owner's rows (like the profile-wide one)
    head2 = np.full(4, -1, dtype=np.int64)
    nxt2 = np.full(len(owner_of), -1, dtype=np.int64)
    rows = np.flatnonzero(on_chain)
    columns.link(head2, nxt2, rows, owner_of[rows])
    got2 = columns.chain_rows(
        head2, nxt2, owners, owner_of=owner_of, on_chain=lambda: on_chain, max_steps=max_steps
    )
    assert sorted(got2.tolist()) == [0, 3, 7]


@SETTINGS
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.integers(0, 3), st.data())
def test_chain_memo_gives_the_walked_rows_as_chains_grow(owner_of_rows, max_steps, data):
    # rows are pushed in batches (as `_append_memberships` does); after each batch the chains are read with a
    # memo that remembers the long ones, and must give what a full walk gives
    memo = columns.ChainMemo()
    owner_of = np.array(owner_of_rows, dtype=np.int64)
    head = np.full(5, -1, dtype=np.int64)
    nxt = np.full(len(owner_of), -1, dtype=np.int64)
    start = 0
    while start < len(owner_of):
        end = data.draw(st.integers(start + 1, len(owner_of)))
        rows = np.arange(start, end)
        columns.link(head, nxt, rows, owner_of[rows])
        start = end
        owners = np.array(sorted(data.draw(st.sets(st.integers(0, 4), min_size=1))))
        walked = columns.chain_rows(head, nxt, owners)
        got = columns.chain_rows(head, nxt, owners, owner_of=owner_of[:end], max_steps=max_steps, memo=memo)
        assert sorted(got.tolist()) == sorted(walked.tolist())
    # a memo holds its chain as of the head it remembers
    for owner, top in memo.top.items():
        chain, row = [], top
        while row >= 0:
            chain.append(row)
            row = nxt[row]
        assert sorted(memo.rows[owner].tolist()) == sorted(chain)


def test_chain_memo_falls_back_to_the_scan_when_a_chain_grew_past_the_walk(monkeypatch):
    owner_of = np.zeros(10, dtype=np.int64)
    head = np.full(1, -1, dtype=np.int64)
    nxt = np.full(10, -1, dtype=np.int64)
    memo = columns.ChainMemo()
    columns.link(head, nxt, np.arange(3), owner_of[:3])
    assert sorted(columns.chain_rows(head, nxt, np.array([0]), owner_of[:3], max_steps=1, memo=memo)) == [
        0,
        1,
        2,
    ]
    assert memo.top == {0: int(head[0])}
    monkeypatch.setattr(columns, "MEMO_WALK_STEPS", 2)
    columns.link(head, nxt, np.arange(3, 10), owner_of[3:])  # 7 new rows: more than the memo may walk
    assert memo.extend(head, nxt, 0) is None
    got = columns.chain_rows(head, nxt, np.array([0]), owner_of, max_steps=1, memo=memo)
    assert sorted(got.tolist()) == list(range(10))
    assert memo.top == {0: int(head[0])} and sorted(memo.rows[0].tolist()) == list(range(10))


def test_an_event_id_reused_in_a_later_window_gets_a_new_profile_id(monkeypatch):
    # e1 and e2 come back the next day on new cookies: the profiles they would create have the ids of day 1's
    # profiles, e2's inside the day-2 subgraph (a3 links it), e1's outside it (a1 is not seen again), so the
    # store loads e1's profile and lets the reference derive both new ids
    config = make_config()
    windows = [
        [
            ev("e1", 1, anonymous_id="a1"),
            ev("e2", 2, anonymous_id="a2"),
            ev("e3", 3, anonymous_id=["a2", "a3"]),
        ],
        [
            ev("e9", DAY + 1, anonymous_id="a3"),
            ev("e1", DAY + 2, anonymous_id="b1"),
            ev("e2", DAY + 3, anonymous_id="c1"),
        ],
    ]
    state, results = _reference(config, windows)
    day1, day2 = (
        dict(zip(r.attribution["event_id"], r.attribution["dinmo_stitched_profile_id"], strict=True))
        for r in results
    )
    assert len({day1["e1"], day1["e2"], day2["e1"], day2["e2"]}) == 4
    extra = []
    real_extract = store.run.extract
    monkeypatch.setattr(
        store.run, "extract", lambda *a, **k: extra.append(k.get("extra_pids")) or real_extract(*a, **k)
    )
    for runs in ([[0, 1]], [[0], [1]], [[0, 1], [1]]):
        extra.clear()
        assert_store_matches(run_store(config, windows, runs), config, state, results)
        # e1's day-1 profile, loaded for a retry by each run that stitches day 2
        assert [len(x) for x in extra if x is not None] == [1] * sum(1 in run for run in runs)
