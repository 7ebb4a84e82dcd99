"""The live tables carry 64-bit hash keys (`pkey`, `vkey`) that a window joins on instead of strings.

They must always equal the hash of their row's strings, be rebuilt when they cannot be trusted (an older
database, another DuckDB hash), and a collision (two strings, one key) must stop the window before anything
is written."""

from __future__ import annotations

import duckdb
import pytest

from identity_pipeline.core.event_stitching import store
from identity_pipeline.core.event_stitching.store.save import _event_keys_usable
from identity_pipeline.core.event_stitching.store.tables import _key_exprs
from identity_pipeline_tests.event_stitching.helpers import ev, make_config, pid
from identity_pipeline_tests.event_stitching.strategies import window_inputs

S = store.STATE
DAY = 24 * 60
WINDOWS = [
    ("2026-11-01", [ev("e1", 1, user_id="u1", cookie_id="c1"), ev("e2", 2, cookie_id="c2")]),
    ("2026-11-02", [ev("e3", DAY + 1, cookie_id="c1", anonymous_id="a1"), ev("e4", DAY + 2, cookie_id="c2")]),
]


def _run(con: duckdb.DuckDBPyConnection, cfg, windows) -> None:
    for key, evs in windows:
        events_df, obs = window_inputs(evs, cfg)
        store.process_window(con, cfg, store.window_for_key(cfg, key), events_df, obs)


def _wrong_keys(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """Per live table: rows whose key columns differ from the hash of their strings, and the row count."""
    out = {}
    for name, keys in store.LIVE_HASH_KEYS.items():
        exprs = _key_exprs(name)
        wrong = " or ".join(f"{k} is distinct from {exprs[k]}" for k in keys)
        out[name] = con.execute(
            f"select count(*) filter (where {wrong}), count(*) from {S}.live_{name}"
        ).fetchall()[0]
    return out


def _published(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    return {
        name: con.execute(f"select * from main.{name} order by all").fetchall()
        for name in (store.ATTRIBUTION_VIEW, store.PROFILES_VIEW, store.VALUES_VIEW, store.REDIRECTS_VIEW)
    }


def test_live_keys_are_the_hashes_of_their_rows_after_each_window():
    cfg = make_config()
    con = duckdb.connect()
    for i in range(len(WINDOWS)):
        _run(con, cfg, WINDOWS[i : i + 1])
        counts = _wrong_keys(con)
        assert all(wrong == 0 for wrong, _ in counts.values()), counts
        assert all(n > 0 for _, n in counts.values()), counts


@pytest.mark.parametrize("staleness", ["another_duckdb_hash", "database_before_keys"])
def test_live_tables_whose_keys_cannot_be_trusted_are_rebuilt_before_the_next_window(staleness):
    cfg = make_config()
    third = ("2026-11-03", [ev("e5", 2 * DAY + 1, anonymous_id="a1", cookie_id="c2")])  # merges e1 and e2
    expected_con = duckdb.connect()
    _run(expected_con, cfg, [*WINDOWS, third])

    con = duckdb.connect()
    _run(con, cfg, WINDOWS)
    if staleness == "another_duckdb_hash":  # as if written by a DuckDB whose hash() gives other numbers
        con.execute(f"update {S}.live_hash_probe set probe = probe + 1").fetchall()
        con.execute(f"update {S}.live_profile_values set vkey = vkey + 1, pkey = pkey + 1").fetchall()
    else:  # live tables of a version without key columns
        for name in store.LIVE_HASH_KEYS:
            for key in store.LIVE_HASH_KEYS[name]:
                con.execute(f"alter table {S}.live_{name} drop column {key}").fetchall()
        con.execute(f"drop table {S}.live_hash_probe").fetchall()
    _run(con, cfg, [third])

    assert all(wrong == 0 for wrong, _ in _wrong_keys(con).values())
    assert _published(con) == _published(expected_con)
    merged = con.execute(
        f"select resolved_dinmo_stitched_profile_id from main.{store.ATTRIBUTION_VIEW} where event_id = 'e4'"
    ).fetchall()
    assert merged == [(pid("e1"),)]


def _assert_second_window_stops(con: duckdb.DuckDBPyConnection, cfg, event: dict, match: str) -> None:
    """Processing `event` as window 2026-11-02 raises `KeyCollisionError` and writes nothing."""
    before = _published(con)
    events_df, obs = window_inputs([event], cfg)
    with pytest.raises(store.KeyCollisionError, match=match):
        store.process_window(con, cfg, store.window_for_key(cfg, "2026-11-02"), events_df, obs)
    assert _published(con) == before
    assert con.execute(f"select count(*), max(window_key) from {S}.windows").fetchall() == [(1, "2026-11-01")]


def test_a_window_value_sharing_its_key_with_another_live_value_stops_the_window_before_any_write():
    cfg = make_config()
    con = duckdb.connect()
    _run(con, cfg, WINDOWS[:1])
    # forge a collision: the live registry row and memberships of c2 get the key of c9, new in the next window
    c9 = con.execute("select hash('cookie_id', 'c9')").fetchall()[0][0]
    for table in ("live_value_registry", "live_profile_values"):
        con.execute(f"update {S}.{table} set vkey = ? where value = 'c2'", [c9]).fetchall()
    _assert_second_window_stops(
        con, cfg, ev("e3", DAY + 1, cookie_id="c9"), "cookie_id='c2' and cookie_id='c9'"
    )


def test_a_new_profile_sharing_its_key_with_a_live_profile_stops_the_window_before_any_write():
    cfg = make_config()
    con = duckdb.connect()
    _run(con, cfg, WINDOWS[:1])
    new_pid = pid("e9")  # the profile e9 will create
    con.execute(
        f"update {S}.live_profiles set pkey = hash(?) where dinmo_stitched_profile_id = ?",
        [new_pid, pid("e2")],
    ).fetchall()
    _assert_second_window_stops(con, cfg, ev("e9", DAY + 1, cookie_id="c9"), "profile ids")


def _with_store_keys(con: duckdb.DuckDBPyConnection, events_df, obs):
    """The frames with `ekey` / `vkey` as `staged_events` / `staged_observations` compute them."""
    con.register("__t_ev", events_df)
    con.register("__t_obs", obs)
    try:
        events_df = con.execute(f"select *, {store.EVENT_KEY_SQL} as ekey from __t_ev").df()
        vkey = _key_exprs("value_registry")["vkey"]
        obs = con.execute(f"select *, {store.EVENT_KEY_SQL} as ekey, {vkey} as vkey from __t_obs").df()
    finally:
        con.unregister("__t_ev")
        con.unregister("__t_obs")
    return events_df, obs


@pytest.mark.parametrize("event_keys", ["hashed", "colliding", "observation_of_an_unknown_event"])
def test_event_keys_are_used_only_when_they_name_one_event(event_keys):
    cfg = make_config()
    expected_con = duckdb.connect()
    _run(expected_con, cfg, WINDOWS)

    con = duckdb.connect()
    for key, evs in WINDOWS:
        events_df, obs = _with_store_keys(con, *window_inputs(evs, cfg))
        if event_keys == "colliding":  # every event of the window gets one key
            events_df["ekey"] = obs["ekey"] = events_df["ekey"].iloc[0]
        elif event_keys == "observation_of_an_unknown_event":
            obs.loc[0, "ekey"] = events_df["ekey"].max() + 1
        usable = _event_keys_usable(events_df, obs)
        assert usable == (event_keys == "hashed")
        store.process_window(con, cfg, store.window_for_key(cfg, key), events_df, obs)
    assert _published(con) == _published(expected_con)


def test_staged_frames_carry_the_keys_of_their_strings():
    cfg = make_config()
    con = duckdb.connect()
    events_df, obs = window_inputs(WINDOWS[0][1], cfg)
    con.register("__t_ev", events_df)
    con.execute(f"create schema if not exists {store.STAGE}").fetchall()
    store.ensure_schema(con)
    con.execute(f"insert into {store.STAGE}.window_events select '2026-11-01', * from __t_ev").fetchall()
    con.register("__t_obs", obs)
    con.execute(
        f"insert into {store.STAGE}.identifier_observations select '2026-11-01', model, event_id, event_ts, "
        "identifier_type, value, blocked from __t_obs"
    ).fetchall()
    staged_ev = store.staged_events(con, "2026-11-01")
    staged_obs = store.staged_observations(con, "2026-11-01")
    assert len(staged_ev) == 2 and len(staged_obs) == len(obs)
    for frame, cols, key in (
        (staged_ev, ("model", "event_id"), "ekey"),
        (staged_obs, ("model", "event_id"), "ekey"),
        (staged_obs, ("identifier_type", "value"), "vkey"),
    ):
        for row in frame.itertuples():
            strings = [getattr(row, c) for c in cols]
            assert getattr(row, key) == con.execute("select hash(?, ?)", strings).fetchall()[0][0]
    assert _event_keys_usable(staged_ev, staged_obs)
