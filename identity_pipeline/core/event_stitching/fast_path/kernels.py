"""The fast path's sequential loops, compiled with numba: the merge walk, the window's components, the
per-slot minimum / maximum of scattered values (`scatter.py`); and the store's chain pushes and walks
(`columns.link`, `chain_rows`), its fused column reads (`Columns.take`) and its set of created ids
(`keyset.py`).

Kept apart so that importing the fast path does not import numba (about a second): the functions using it
import this module when they first run, and `StitchRun` loads it (`warm`) on its writer thread while it
prepares the run's graph. `cache=True` keeps the machine code beside this file (or, when the package is
read-only and NUMBA_CACHE_DIR is unset, in the temp dir: `cache_dir_fallback`), so only the first run on a
machine compiles (a few seconds).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path


def cache_dir_fallback(module_dir: Path, environ: MutableMapping[str, str]) -> str | None:
    """Where numba should cache when it cannot write beside this module (a read-only install: numba then
    needs a writable user cache directory and fails with "no locator available" without one, as in a
    container with a read-only home): a directory in the temp dir. None when the module's directory is
    writable or the user already chose (NUMBA_CACHE_DIR)."""
    if environ.get("NUMBA_CACHE_DIR") or os.access(module_dir, os.W_OK):
        return None
    return str(Path(tempfile.gettempdir()) / "identity_pipeline-numba-cache")


_fallback = cache_dir_fallback(Path(__file__).resolve().parent, os.environ)
if _fallback is not None:
    os.environ["NUMBA_CACHE_DIR"] = _fallback  # read by numba when it is imported, just below

import numba  # noqa: E402
import numpy as np  # noqa: E402


@numba.njit(cache=True, nogil=True)
def walk(
    starts: np.ndarray,
    ends: np.ndarray,
    run_event: np.ndarray,
    run_ts: np.ndarray,
    v: np.ndarray,
    known_before: np.ndarray,
    hold: np.ndarray,
    anchor: np.ndarray,
    p_seq: np.ndarray,
    n_loaded: int,
    base: int,
    n_values: int,
    count: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    known: np.ndarray,
    has_anchor: np.ndarray,
    in_walk: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walk every event (observations `starts[j]:ends[j]` of event `run_event[j]`): reach the group of each
    known value, merge the younger of two reached groups into the older, create a group when nothing is
    known. Updates the per-group stats in place (a merged group keeps its stats at the time it merged);
    returns (each event's group, each group's parent or -1, merges as rows (event, value, survivor, lost)).
    Groups are dense integers: loaded profile rows `0..n_loaded-1`, then `n_loaded + e` for the profile the
    event `e` creates."""
    n_groups = len(count)
    parent = np.full(n_groups, -1, dtype=np.int64)
    key_group = np.full(n_values, -1, dtype=np.int64)
    ev_group = np.empty(len(starts), dtype=np.int64)
    merges = np.empty((len(v), 4), dtype=np.int64)
    n_merges = 0
    for j in range(len(starts)):
        a, b = starts[j], ends[j]
        p = run_event[j]
        ts = run_ts[j]
        target = -1
        event_anchor = False
        for i in range(a, b):
            if anchor[i]:
                event_anchor = True
            if not known_before[i]:
                continue
            g = key_group[v[i]]
            if g < 0:
                g = hold[i]
            while parent[g] >= 0:
                g = parent[g]
            if target < 0:
                target = g
            elif g != target:
                o_t = p_seq[target] if target < n_loaded else base + target
                o_g = p_seq[g] if g < n_loaded else base + g
                if o_t < o_g:
                    sv, lo = target, g
                else:
                    sv, lo = g, target
                parent[lo] = sv
                count[sv] += count[lo]
                if first[lo] < first[sv]:
                    first[sv] = first[lo]
                if last[lo] > last[sv]:
                    last[sv] = last[lo]
                known[sv] = known[sv] or known[lo]
                has_anchor[sv] = has_anchor[sv] or has_anchor[lo]
                merges[n_merges, 0] = p
                merges[n_merges, 1] = v[i]
                merges[n_merges, 2] = sv
                merges[n_merges, 3] = lo
                n_merges += 1
                target = sv
        if target < 0:
            target = n_loaded + p
            in_walk[target] = True
            count[target] = 1
            first[target] = ts
            last[target] = ts
            known[target] = event_anchor
            has_anchor[target] = event_anchor
        else:
            count[target] += 1
            if ts < first[target]:
                first[target] = ts
            if ts > last[target]:
                last[target] = ts
            has_anchor[target] = has_anchor[target] or event_anchor
            known[target] = has_anchor[target]  # rule 9 on the event's profile
        for i in range(a, b):
            if not known_before[i] and key_group[v[i]] < 0:
                key_group[v[i]] = target
        ev_group[j] = target
    return ev_group, parent, merges[:n_merges]


@numba.njit(cache=True, nogil=True)
def roots(groups: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Final survivor of each group."""
    out = np.empty(len(groups), dtype=np.int64)
    for k in range(len(groups)):
        r = groups[k]
        while parent[r] >= 0:
            r = parent[r]
        out[k] = r
    return out


@numba.njit(cache=True, nogil=True)
def components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the undirected graph on nodes `0..n-1` with edges `a[i] - b[i]`: (count,
    label of each node), components numbered by their smallest node (as scipy's `connected_components`
    numbers them). Union-find, the smaller root surviving, with path halving."""
    parent = np.arange(n)
    for i in range(len(a)):
        x = a[i]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        y = b[i]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x < y:
            parent[y] = x
        elif y < x:
            parent[x] = y
    labels = np.empty(n, dtype=np.int32)
    count = 0
    for x in range(n):
        r = x
        while parent[r] != r:
            r = parent[r]
        if r == x:
            labels[x] = count
            count += 1
        else:
            labels[x] = labels[r]
    return count, labels


@numba.njit(cache=True, nogil=True)
def minimum_at(out: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> None:
    """`np.minimum.at(out, idx, vals)` for indices already checked to lie in `out` (`scatter.py`)."""
    for i in range(len(idx)):
        j = idx[i]
        if vals[i] < out[j]:
            out[j] = vals[i]


@numba.njit(cache=True, nogil=True)
def maximum_at(out: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> None:
    """`np.maximum.at(out, idx, vals)` for indices already checked to lie in `out` (`scatter.py`)."""
    for i in range(len(idx)):
        j = idx[i]
        if vals[i] > out[j]:
            out[j] = vals[i]


@numba.njit(cache=True, nogil=True)
def link(head: np.ndarray, nxt: np.ndarray, rows: np.ndarray, owners: np.ndarray) -> None:
    """`store/columns.py::link` for indices already checked: rows pushed from the last to the first, so each
    owner's chain starts with its new rows in the given order, then what it held before."""
    for i in range(len(rows) - 1, -1, -1):
        r = rows[i]
        o = owners[i]
        nxt[r] = head[o]
        head[o] = r


@numba.njit(cache=True, nogil=True)
def walk_chains(
    head: np.ndarray, nxt: np.ndarray, owners: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the chains of `owners`, level by level (every chain's first row, then every second one...)
    as `store/columns.py::chain_rows` orders them, for at most `limit` levels (no limit when negative).
    Returns (the rows walked, the next level's rows: not empty only when the walk stopped at the limit)."""
    cur = np.empty(len(owners), dtype=np.int64)
    m = 0
    for o in owners:
        r = head[o]
        if r >= 0:
            cur[m] = r
            m += 1
    out = np.empty(max(16, 2 * m), dtype=np.int64)
    n = 0
    steps = 0
    while m > 0 and (limit < 0 or steps < limit):
        if n + m > len(out):
            grown = np.empty(max(2 * len(out), n + m), dtype=np.int64)
            grown[:n] = out[:n]
            out = grown
        out[n : n + m] = cur[:m]
        n += m
        k = 0
        for i in range(m):
            r = nxt[cur[i]]
            if r >= 0:
                cur[k] = r
                k += 1
        m = k
        steps += 1
    return out[:n].copy(), cur[:m].copy()


@numba.njit(cache=True, nogil=True)
def take4(
    idx: np.ndarray,
    k: int,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    d: np.ndarray,
    oa: np.ndarray,
    ob: np.ndarray,
    oc: np.ndarray,
    od: np.ndarray,
) -> None:
    """`o?[i] = ?[idx[i]]` for the first `k` of the four columns (one dtype), in one pass over `idx`: the
    reads of one row's columns overlap in memory instead of one pass per column."""
    for i in range(len(idx)):
        j = idx[i]
        oa[i] = a[j]
        if k > 1:
            ob[i] = b[j]
        if k > 2:
            oc[i] = c[j]
        if k > 3:
            od[i] = d[j]


_KEY_EMPTY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


@numba.njit(cache=True, nogil=True)
def keyset_probe(
    slots: np.ndarray, keys: np.ndarray, mix: np.uint64, shift: np.uint64, insert: bool
) -> np.ndarray:
    """Which `keys` the open-addressing table `slots` holds (linear probing from `(key * mix) >> shift`);
    with `insert`, the missing ones are put in as they are met (a key repeated in `keys` is then found the
    second time). The table must have room for all of them (`KeySet.add`)."""
    low = np.uint64(len(slots) - 1)
    found = np.zeros(len(keys), dtype=np.bool_)
    for i in range(len(keys)):
        k = keys[i]
        s = (k * mix) >> shift
        while True:
            e = slots[s]
            if e == k:
                found[i] = True
                break
            if e == _KEY_EMPTY:
                if insert:
                    slots[s] = k
                break
            s = (s + np.uint64(1)) & low
    return found


def warm() -> None:
    """Load (or compile) every kernel once, on tiny inputs."""
    z = np.zeros(1, dtype=np.int64)
    e = z[:0]
    f = np.zeros(0, dtype=bool)
    walk(e, e, e, e, e, f, e, f, z, 0, 0, 1, z.copy(), z.copy(), z.copy(), f, f, f)
    roots(e, z)
    components(1, e, e)
    link(np.full(1, -1, dtype=np.int32), np.full(1, -1, dtype=np.int32), z, z)
    walk_chains(np.full(1, -1, dtype=np.int32), np.full(1, -1, dtype=np.int32), z, -1)
    for reduce_at in (minimum_at, maximum_at):
        reduce_at(z.copy(), e, e)
        reduce_at(np.zeros(1, dtype=np.int8), e, np.zeros(0, dtype=np.int8))
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        col = np.zeros(1, dtype=dt)
        take4(z, 1, col, col, col, col, col.copy(), col, col, col)
    table = np.full(16, _KEY_EMPTY, dtype=np.uint64)
    keyset_probe(table, np.zeros(1, dtype=np.uint64), np.uint64(3), np.uint64(60), True)
