"""`store/dictionary_index.py`: the value dictionary's keys in memory give the ids the dictionary join gives.

The index on its own against a plain dict (colliding slots and tags, growth, a dictionary loaded with gaps in
its ids), then staging a generated stream window after window with and without it: the same dictionary and
the same staged rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from identity_pipeline.config import load_config
from identity_pipeline.core.event_stitching import store
from identity_pipeline.core.event_stitching.store import staging
from identity_pipeline.core.event_stitching.store.dictionary_index import DictionaryIndex
from identity_pipeline.generators.events import write


def _model(ids: dict, next_vid: int, k1: np.ndarray, k2: np.ndarray) -> tuple[list[int], int]:
    out = []
    for a, b in zip(k1.tolist(), k2.tolist(), strict=True):
        if (a, b) not in ids:
            ids[(a, b)] = next_vid
            next_vid += 1
        out.append(ids[(a, b)])
    return out, next_vid


@pytest.mark.parametrize("seed", range(6))
def test_index_numbers_keys_as_a_dict_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # few distinct low bits and tags: many keys share a slot, many share a tag, some share both halves' h1
    low = rng.integers(0, 1 << 4, 4000).astype(np.uint64)
    tag = rng.integers(0, 3, 4000).astype(np.uint64) << np.uint64(32)
    k1 = tag | low
    k2 = rng.integers(0, 5, 4000).astype(np.uint64)
    pre = 300  # an existing dictionary, its ids with gaps
    pre_ids = np.sort(rng.choice(10 * pre, pre, replace=False))
    keys = sorted({(a, b) for a, b in zip(k1[:pre].tolist(), k2[:pre].tolist(), strict=True)})
    pre_ids = pre_ids[: len(keys)]
    index = DictionaryIndex(
        np.array([a for a, _ in keys], dtype=np.uint64),
        np.array([b for _, b in keys], dtype=np.uint64),
        pre_ids,
    )
    ids = {key: int(v) for key, v in zip(keys, pre_ids.tolist(), strict=True)}
    next_vid = int(pre_ids.max()) + 1
    start = pre
    while start < len(k1):  # batches of distinct keys, as staging asks per window
        stop = min(len(k1), start + int(rng.integers(1, 900)))
        batch = dict.fromkeys(zip(k1[start:stop].tolist(), k2[start:stop].tolist(), strict=True))
        b1 = np.array([a for a, _ in batch], dtype=np.uint64)
        b2 = np.array([b for _, b in batch], dtype=np.uint64)
        seen = {key for key in batch if key in ids}
        want, next_vid = _model(ids, next_vid, b1, b2)
        got, new = index.find_or_add(b1, b2)
        assert got.tolist() == want
        assert new.tolist() == [key not in seen for key in batch]
        start = stop
    assert len(index) == len(ids)
    assert index.next_vid == next_vid


def test_index_grows_past_its_first_table() -> None:
    rng = np.random.default_rng(3)
    n = 200_000  # several times the smallest table
    k1 = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    k2 = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    index = DictionaryIndex(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64))
    first, new = index.find_or_add(k1[: n // 2], k2[: n // 2])
    assert first.tolist() == list(range(n // 2)) and new.all()
    ids, new = index.find_or_add(
        k1[::-1], k2[::-1]
    )  # the new half first (numbered in this order), then the rest
    want = np.concatenate([n // 2 + np.arange(n // 2), np.arange(n // 2)[::-1]])
    np.testing.assert_array_equal(ids, want)
    assert new.tolist() == [True] * (n // 2) + [False] * (n // 2)
    assert len(index.slots) * 3 >= 4 * len(index)  # at most 3/4 full


def _staged(db: Path) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            "dictionary": con.sql(f"select * from {store.STATE}.value_dictionary order by vid").fetchall(),
            "events": con.sql(f"select * from {store.STAGE}.events order by window_key, seq").fetchall(),
            "observations": con.sql(
                f"select * from {store.STAGE}.observations order by window_key, seq, vid"
            ).fetchall(),
        }
    finally:
        con.close()


def _stage(base: Path, db: Path, windows: slice) -> None:
    config = load_config(base / "config.yaml")
    es = config.event_stitching
    con = duckdb.connect(str(db))
    try:
        store.ensure_schema(con)
        for _ in store.stage_windows(con, es, store.config_windows(es)[windows], base):
            pass
    finally:
        con.close()


def test_staging_with_the_index_gives_the_joins_ids(tmp_path: Path, monkeypatch) -> None:
    base = tmp_path / "events"
    write(base, 6000, 6, seed=5)
    results = {}
    loads = []
    real_load = DictionaryIndex.load.__func__
    monkeypatch.setattr(
        DictionaryIndex, "load", classmethod(lambda cls, con: loads.append(1) or real_load(cls, con))
    )
    for name, threshold in (("join", 10**9), ("index", 1)):
        monkeypatch.setattr(staging, "INDEX_MIN_WINDOWS", threshold)
        db = tmp_path / f"{name}.duckdb"
        _stage(base, db, slice(0, 3))  # a first run, then one that loads the dictionary it left
        _stage(base, db, slice(2, 6))  # (and re-stages window 3: same ids for the values it had)
        results[name] = _staged(db)
    assert len(loads) == 2  # the index was used by both runs of the second pass only
    assert len(results["join"]["dictionary"]) > 1000
    assert results["index"] == results["join"]
