"""The fast path's compiled loops (`fast_path/kernels.py`) on their own.

`walk` is checked through the fast path against the reference (test_fast_path_equivalence.py); here the
components, whose numbering the split relies on, against scipy's on random graphs, and the warm-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from identity_pipeline.core.event_stitching.fast_path import kernels


def _scipy(n: int, a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray]:
    g = sp.csr_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(g, directed=True, connection="weak")


@pytest.mark.parametrize("seed", range(40))
def test_components_match_scipy_numbering(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    m = int(rng.integers(0, 2 * n))
    a = rng.integers(0, n, m).astype(np.int64)
    b = rng.integers(0, n, m).astype(np.int64)
    count, labels = kernels.components(n, a, b)
    want_count, want = _scipy(n, a, b)
    assert count == want_count
    np.testing.assert_array_equal(labels, want)


def test_components_chain_and_isolated_nodes() -> None:
    # 4-3, 3-1 join {1, 3, 4}; 0, 2 and 5 stay alone; numbered by smallest node: 0, {1,3,4}, 2, 5
    count, labels = kernels.components(6, np.array([4, 3], dtype=np.int64), np.array([3, 1], dtype=np.int64))
    assert count == 4
    assert labels.tolist() == [0, 1, 2, 1, 1, 3]


def test_roots_follow_parents_to_the_survivor() -> None:
    parent = np.array([-1, 0, 1, -1, 3], dtype=np.int64)
    assert kernels.roots(np.array([0, 1, 2, 3, 4], dtype=np.int64), parent).tolist() == [0, 0, 0, 3, 3]


def test_warm_loads_every_kernel() -> None:
    kernels.warm()
    compiled = [f for f in vars(kernels).values() if hasattr(f, "signatures") and hasattr(f, "py_func")]
    assert {f.__name__ for f in compiled} >= {
        "walk",
        "roots",
        "components",
        "link",
        "walk_chains",
        "take4",
        "keyset_probe",
    }
    for fn in compiled:
        assert fn.signatures, f"{fn.__name__} has no compiled signature after warm()"


def test_cache_goes_to_the_temp_dir_only_when_the_package_is_read_only(tmp_path: Path) -> None:
    assert kernels.cache_dir_fallback(tmp_path, {}) is None  # writable: numba caches beside the module
    chosen = {"NUMBA_CACHE_DIR": "/x"}  # the user chose
    assert kernels.cache_dir_fallback(tmp_path / "missing", chosen) is None
    fallback = kernels.cache_dir_fallback(tmp_path / "missing", {})  # not writable (does not exist)
    assert fallback is not None and fallback.endswith("identity_pipeline-numba-cache")


@pytest.mark.parametrize("seed", range(20))
def test_link_pushes_each_calls_rows_in_order_before_the_older_ones(seed: int) -> None:
    from identity_pipeline.core.event_stitching.store.columns import chain_rows, link

    rng = np.random.default_rng(seed)
    n_owners, n_rows = int(rng.integers(1, 30)), int(rng.integers(1, 300))
    head = np.full(n_owners, -1, dtype=np.int32)
    nxt = np.full(n_rows, -1, dtype=np.int32)
    chains: dict[int, list[int]] = {o: [] for o in range(n_owners)}
    order = rng.permutation(n_rows)
    start = 0
    while start < n_rows:  # calls of random sizes, repeated owners within a call
        stop = min(n_rows, start + int(rng.integers(1, 40)))
        rows = order[start:stop]
        owners = rng.integers(0, n_owners, len(rows))
        link(head, nxt, rows, owners)
        for o in range(n_owners):
            chains[o] = [int(r) for r, w in zip(rows, owners, strict=True) if w == o] + chains[o]
        start = stop
    for o in range(n_owners):
        walked, r = [], int(head[o])
        while r >= 0:
            walked.append(r)
            r = int(nxt[r])
        assert walked == chains[o]
    every = chain_rows(head, nxt, np.arange(n_owners))
    assert sorted(every.tolist()) == list(range(n_rows))


def test_link_refuses_indices_out_of_bounds() -> None:
    from identity_pipeline.core.event_stitching.store.columns import link

    head, nxt = np.full(2, -1, dtype=np.int32), np.full(3, -1, dtype=np.int32)
    with pytest.raises(IndexError, match="owner 2 is out of bounds for size 2"):
        link(head, nxt, np.array([0]), np.array([2]))
    with pytest.raises(IndexError, match="row -1"):
        link(head, nxt, np.array([-1]), np.array([0]))
    assert head.tolist() == [-1, -1] and nxt.tolist() == [-1, -1, -1]


@pytest.mark.parametrize("seed", range(10))
def test_columns_take_reads_what_numpy_indexing_reads(seed: int) -> None:
    from identity_pipeline.core.event_stitching.store.columns import Columns

    rng = np.random.default_rng(seed)
    # six 8-byte columns (two passes of the 4-wide loop), 1-, 2- and 4-byte ones, a uint64 and bools
    spec = {f"i{k}": (np.int64, -1) for k in range(5)}
    spec.update({"key": (np.uint64, 0), "flag": (bool, False), "st": (np.int8, 0), "code": (np.int16, -1)})
    spec["vid"] = (np.int32, -1)
    cols = Columns(spec)
    n = int(rng.integers(1, 500))
    cols.ensure(n)
    for name, (dt, _) in spec.items():
        col = getattr(cols, name)
        col[:n] = rng.integers(0, 2 if dt is bool else 100, n).astype(dt)
    idx = rng.integers(0, n, int(rng.integers(0, 2 * n)))
    names = list(rng.permutation(list(spec)))
    got = cols.take(idx, *names)
    for name, col in zip(names, got, strict=True):
        want = getattr(cols, name)[idx]
        assert col.dtype == want.dtype and col.tolist() == want.tolist(), name


def test_columns_take_refuses_rows_past_its_length() -> None:
    from identity_pipeline.core.event_stitching.store.columns import Columns

    cols = Columns({"a": (np.int64, 7)})
    cols.reserve(10)  # room beyond the length is not a row
    cols.ensure(3)
    assert [c.tolist() for c in cols.take(np.array([2, 0]), "a")] == [[7, 7]]
    assert [c.tolist() for c in cols.take(np.zeros(0, np.int64), "a")] == [[]]
    with pytest.raises(IndexError, match="row 3 is out of bounds for size 3"):
        cols.take(np.array([3]), "a")
    with pytest.raises(IndexError, match="row -1"):
        cols.take(np.array([-1]), "a")
