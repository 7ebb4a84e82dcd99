"""Growable numpy columns (`Columns`) and singly linked row chains (`link`, `chain_rows`), the two building
blocks of the run's in-memory graph (`graph_cache.py`)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future

import numpy as np


class Columns:
    """Named numpy arrays of one length `n` that grow by doubling; rows [n, size) get each column's default
    when `ensure(size)` makes room for them.

    Capacity beyond `n` is allocated with `np.empty` and never written before it is used, so reserving room
    for a whole run up front (`reserve`) costs address space, not memory. Writing a page for the first time
    is what costs (the kernel maps and zeroes it: on the VMs we measured, ~15x the cost of the write itself),
    so `fill_ahead` can write the defaults of the next rows on another thread (numpy fills without the GIL)
    before they are used; `ensure` then only waits for that fill if it reaches the rows being filled."""

    def __init__(self, spec: dict[str, tuple[type | str, object]]) -> None:
        self._spec = {k: (np.dtype(d), f) for k, (d, f) in spec.items()}
        self.n = 0
        self._cap = 0
        self._filled = 0  # rows [n, _filled) already hold the defaults (written ahead)
        self._filling: tuple[Future, int, int] | None = None  # (job, start, end) being filled ahead
        for k, (dt, _) in self._spec.items():
            setattr(self, k, np.empty(0, dtype=dt))

    def reserve(self, capacity: int) -> None:
        if capacity > self._cap:
            self._finish_fill()
            for k, (dt, _) in self._spec.items():
                old = getattr(self, k)
                new = np.empty(capacity, dtype=dt)
                new[: self.n] = old[: self.n]
                setattr(self, k, new)
            self._cap = capacity
            self._filled = self.n

    def ensure(self, size: int) -> None:
        """Room for rows [0, size); the rows past the current length get the defaults."""
        if size <= self.n:
            return
        if self._filling is not None and size > self._filling[1]:
            self._finish_fill()
        if size > self._cap:
            self.reserve(max(size, 2 * self._cap, 1024))
        start = max(self.n, min(self._filled, size))
        for k, (_, fill) in self._spec.items():
            getattr(self, k)[start:size] = fill
        self.n = size
        self._filled = max(self._filled, size)

    def append(self, count: int) -> np.ndarray:
        """Ids of `count` new rows at the end."""
        start = self.n
        self.ensure(start + count)
        return np.arange(start, start + count, dtype=np.int64)

    def take(self, idx: np.ndarray, *names: str) -> tuple[np.ndarray, ...]:
        """`(getattr(self, name)[idx] for name in names)`, in compiled passes that read up to four columns
        of one width at a time (`kernels.take4`): numpy reads one column per pass, and on the run's graph
        (10-20M rows, a window's rows spread over them) each of those passes waits on memory on its own;
        taking a subgraph's columns together is ~30 % faster. `idx` must be within [0, n)."""
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        out = {name: np.empty(len(idx), dtype=getattr(self, name).dtype) for name in names}
        if len(idx) == 0:
            return tuple(out[name] for name in names)
        _check_within("take: row", idx, self.n)
        from identity_pipeline.core.event_stitching.fast_path import kernels  # numba: imported when needed

        by_width: dict[int, list[str]] = {}
        for name in names:
            by_width.setdefault(out[name].dtype.itemsize, []).append(name)
        for width, group in by_width.items():
            as_uint = np.dtype(f"u{width}")
            for start in range(0, len(group), 4):
                part = group[start : start + 4]
                src = [getattr(self, name).view(as_uint) for name in part]
                dst = [out[name].view(as_uint) for name in part]
                pad = 4 - len(part)
                kernels.take4(idx, len(part), *src, *[src[0]] * pad, *dst, *[dst[0]] * pad)
        return tuple(out[name] for name in names)

    def fill_ahead(self, pool: Executor, rows: int) -> None:
        """Have the defaults written in rows [n, n + rows) (within the capacity), the part not written yet on
        `pool`."""
        self._finish_fill()
        start = max(self.n, self._filled)
        end = min(self._cap, self.n + max(0, int(rows)))
        if end <= start:
            return
        arrays = [(getattr(self, k), fill) for k, (_, fill) in self._spec.items()]

        def fill() -> None:
            for a, f in arrays:
                a[start:end] = f

        self._filling = (pool.submit(fill), start, end)

    def _finish_fill(self) -> None:
        """Wait for the fill ahead (the rows it writes are past `n`: no reader or writer of the arrays sees
        them before this). It started at max(n, filled) then, and both only grew since: the filled rows run on
        to its end."""
        if self._filling is None:
            return
        job, _, end = self._filling
        self._filling = None
        job.result()
        self._filled = max(self._filled, end)


def link(head: np.ndarray, nxt: np.ndarray, rows: np.ndarray, owners: np.ndarray) -> None:
    """Push `rows` (distinct) onto the chains of their `owners` (in place): each owner's chain then starts
    with its new rows, in the given order, followed by what it held before. A compiled loop (`kernels.link`;
    the sort that grouped the rows by owner took ~1 s of a 30-window benchmark run); the indices are
    checked here, as the loop does not check bounds."""
    if len(rows) == 0:
        return
    owners = np.ascontiguousarray(owners, dtype=np.int64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if len(owners) != len(rows):
        raise ValueError(f"link: {len(rows)} rows but {len(owners)} owners")
    _check_within("link: row", rows, len(nxt))
    _check_within("link: owner", owners, len(head))
    from identity_pipeline.core.event_stitching.fast_path import kernels  # numba: imported when needed

    kernels.link(head, nxt, rows, owners)


def _check_within(what: str, idx: np.ndarray, size: int) -> None:
    """Indices handed to a compiled loop, which does not check bounds: all in [0, size)."""
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= size:
        raise IndexError(f"{what} {lo if lo < 0 else hi} is out of bounds for size {size}")


# chains longer than this are finished from their memo (`ChainMemo`) or by one scan of the rows instead of one
# numpy step per row (a value shared by thousands of profiles, e.g. a kiosk cookie, would otherwise cost
# thousands of steps)
MAX_CHAIN_STEPS = 256
# rows a long chain may have gained since its memo was taken, walked one by one before a scan is cheaper
MEMO_WALK_STEPS = 1 << 16


class ChainMemo:
    """The rows of the long chains of one kind of chain, as of their last full read: owner -> (the chain's
    head then, its rows then).

    Chains only grow at the head (`link`), so a chain's rows are the rows pushed since its memo (walked from
    the head down to the memo's head) plus the memo's rows: a long chain is read in full once per run, then
    only its new rows are walked, instead of a scan of all rows every window (which grows with history)."""

    def __init__(self) -> None:
        self.top: dict[int, int] = {}
        self.rows: dict[int, np.ndarray] = {}

    def extend(self, head: np.ndarray, nxt: np.ndarray, owner: int) -> np.ndarray | None:
        """The owner's rows from its memo and its new rows, or None (no memo, or too many new rows)."""
        top = self.top.get(owner)
        if top is None:
            return None
        new: list[int] = []
        row = int(head[owner])
        while row != top:
            if row < 0 or len(new) >= MEMO_WALK_STEPS:
                return None
            new.append(row)
            row = int(nxt[row])
        rows = self.rows[owner]
        if new:
            rows = np.concatenate([np.asarray(new, dtype=np.int64), rows])
            self.remember(owner, int(head[owner]), rows)
        return rows

    def remember(self, owner: int, top: int, rows: np.ndarray) -> None:
        self.top[owner] = top
        self.rows[owner] = rows


def chain_rows(
    head: np.ndarray,
    nxt: np.ndarray,
    owners: np.ndarray,
    owner_of: np.ndarray | None = None,
    on_chain: Callable[[], np.ndarray] | None = None,
    max_steps: int | None = None,
    memo: ChainMemo | None = None,
) -> np.ndarray:
    """Every row on the chains of `owners` (distinct owners), walking all chains one step at a time.

    With `owner_of` (each row's owner, the rows' length) the chains still unfinished after `max_steps` steps
    are finished from `memo` when it holds them, else by a scan of `owner_of` (and of `on_chain()`: the rows
    linked on these chains, default all), whose result is remembered in `memo`; the cost is then at most
    `max_steps` steps plus the long chains' new rows, or one pass over the rows."""
    limit = MAX_CHAIN_STEPS if max_steps is None else max_steps
    owners = np.ascontiguousarray(owners, dtype=np.int64)
    if len(owners) == 0:
        return np.zeros(0, dtype=np.int64)
    _check_within("chain_rows: owner", owners, len(head))
    from identity_pipeline.core.event_stitching.fast_path import kernels  # numba: imported when needed

    # the walk is a compiled loop (with one numpy step per level, chain_rows took 1.4 s of a 30-window
    # benchmark run, 1.1 s now: the rest is the long chains' memo and scans)
    walked, frontier = kernels.walk_chains(head, nxt, owners, -1 if owner_of is None else max(0, int(limit)))
    if len(frontier) == 0:
        return walked
    parts = _finish_long(head, nxt, frontier, [walked], owner_of, on_chain, memo)
    return np.concatenate(parts).astype(np.int64)


def _finish_long(
    head: np.ndarray,
    nxt: np.ndarray,
    frontier: np.ndarray,
    walked: list[np.ndarray],
    owner_of: np.ndarray,
    on_chain: Callable[[], np.ndarray] | None,
    memo: ChainMemo | None,
) -> list[np.ndarray]:
    """The rows of `chain_rows` once the walk stopped with `frontier` unfinished: the walked rows of the
    finished chains, and every row of the long ones (`frontier`'s owners)."""
    long_owners = np.unique(owner_of[frontier])
    done = np.concatenate(walked) if walked else frontier[:0]
    parts = [done[~np.isin(owner_of[done], long_owners)]]
    scan = []
    for owner in long_owners.tolist():
        known = memo.extend(head, nxt, owner) if memo is not None else None
        if known is None:
            scan.append(owner)
        else:
            parts.append(known)
    if scan:
        long = np.zeros(len(head), dtype=bool)
        long[scan] = True
        hit = long[owner_of]
        if on_chain is not None:
            hit &= on_chain()
        found = np.flatnonzero(hit)
        parts.append(found)
        if memo is not None:
            by_owner = owner_of[found]
            order = np.argsort(by_owner, kind="stable")
            found, by_owner = found[order], by_owner[order]
            cuts = np.flatnonzero(np.diff(by_owner)) + 1
            for rows in np.split(found, cuts):
                owner = int(owner_of[rows[0]])
                memo.remember(owner, int(head[owner]), rows.astype(np.int64))
    return parts
