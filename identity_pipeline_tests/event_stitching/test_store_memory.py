"""The run's memory helpers: columns filled ahead of use on another thread (`Columns.fill_ahead`) hold exactly
what plain growth gives, and the allocator settings of a run (`allocator.allocator_tuned`) are restored when
it ends, also when it fails."""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_pipeline.core.event_stitching import store
from identity_pipeline.core.event_stitching.store import allocator
from identity_pipeline.core.event_stitching.store.columns import Columns
from identity_pipeline_tests.event_stitching.helpers import ev, make_config
from identity_pipeline_tests.event_stitching.strategies import window_inputs

DAY = 24 * 60  # `ev` times are minutes from the config's start

SPEC = {"a": (np.int64, -7), "b": (bool, True), "c": (np.int16, 3)}

ops = st.lists(
    st.one_of(
        st.tuples(st.just("ensure"), st.integers(0, 300)),
        st.tuples(st.just("append"), st.integers(0, 120)),
        st.tuples(st.just("fill_ahead"), st.integers(0, 400)),
        st.tuples(st.just("reserve"), st.integers(0, 600)),
        st.tuples(st.just("write"), st.integers(0, 10**6)),
    ),
    max_size=40,
)


class _LatePool(Executor):
    """Runs a job only when its result is asked for, or at `run_all`: the slowest a fill thread can be."""

    def __init__(self) -> None:
        self.jobs: list[_LateFuture] = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        job = _LateFuture(lambda: fn(*args, **kwargs))
        self.jobs.append(job)
        return job

    def run_all(self) -> None:
        for job in self.jobs:
            job.result()


class _LateFuture(Future):
    def __init__(self, fn) -> None:
        super().__init__()
        self._fn = fn

    def result(self, timeout=None):
        if self._fn is not None:
            fn, self._fn = self._fn, None
            self.set_result(fn())
        return super().result(timeout)


@settings(max_examples=150, deadline=None)
@given(ops, st.sampled_from(["thread", "late"]))
def test_columns_filled_ahead_hold_what_plain_growth_gives(sequence, pool_kind):
    cols = Columns(SPEC)
    model = {k: [] for k in SPEC}  # the rows [0, n) a plain list would hold
    rng = np.random.default_rng(0)
    late = _LatePool()
    with ThreadPoolExecutor(max_workers=1) as threads:
        pool = threads if pool_kind == "thread" else late
        for op, arg in sequence:
            if op == "ensure":
                cols.ensure(arg)
            elif op == "append":
                start = cols.n
                assert cols.append(arg).tolist() == list(range(start, start + arg))
            elif op == "fill_ahead":
                cols.fill_ahead(pool, arg)
            elif op == "reserve":
                cap = len(cols.a)
                cols.reserve(arg)
                if len(cols.a) != cap:  # new arrays: past n they hold whatever np.empty gave
                    for k in SPEC:
                        getattr(cols, k)[cols.n :] = 1
            elif op == "write" and cols.n:  # the run writes its rows, never past n
                rows = rng.integers(0, cols.n, size=min(cols.n, 5))
                for k in SPEC:
                    values = rng.integers(0, 100, size=len(rows)).astype(SPEC[k][0])
                    getattr(cols, k)[rows] = values
                    for r, v in zip(rows.tolist(), values.tolist(), strict=True):
                        model[k][r] = v
            for k, (_, fill) in SPEC.items():
                model[k] += [fill] * (cols.n - len(model[k]))
                assert getattr(cols, k)[: cols.n].tolist() == model[k], (op, arg, k)
        late.run_all()  # a fill that ends after everything else changes no row of [0, n)
        for k in SPEC:
            assert getattr(cols, k)[: cols.n].tolist() == model[k], k


def test_fill_ahead_writes_the_defaults_before_the_rows_are_used():
    cols = Columns(SPEC)
    cols.reserve(1000)
    cols.ensure(10)
    cols.a[10:] = 0  # what the memory may hold before it is written (np.empty)
    with ThreadPoolExecutor(max_workers=1) as pool:
        cols.fill_ahead(pool, 50)
    assert (cols.a[10:60] == -7).all()  # written on the pool, rows still past n
    assert (cols.a[60:] == 0).all()  # nothing past n + rows, nothing past the capacity
    assert cols.n == 10
    cols.ensure(40)  # inside the filled rows
    assert (cols.a[:40] == -7).all() and cols.n == 40
    with ThreadPoolExecutor(max_workers=1) as pool:
        cols.fill_ahead(pool, 5000)  # capped at the capacity
    assert (cols.a[:1000] == -7).all()


def _hugepage() -> bool | None:
    getter = getattr(np._core.multiarray, "_get_madvise_hugepage", None)  # noqa: SLF001
    return None if getter is None else bool(getter())


def test_allocator_settings_last_as_long_as_the_outermost_run():
    before = _hugepage()
    assert not allocator.tuned_now()
    with allocator.allocator_tuned():
        assert allocator.tuned_now()
        if before is not None:
            assert _hugepage() is False
        with allocator.allocator_tuned():  # a nested run shares them
            assert allocator.tuned_now()
        assert allocator.tuned_now()
    assert not allocator.tuned_now()
    assert _hugepage() == before
    with allocator.allocator_tuned(enabled=False):
        assert not allocator.tuned_now()
        assert _hugepage() == before


def test_allocator_settings_are_restored_when_the_block_fails():
    before = _hugepage()
    with pytest.raises(RuntimeError), allocator.allocator_tuned():
        raise RuntimeError("boom")
    assert not allocator.tuned_now()
    assert _hugepage() == before


def test_a_stitch_run_holds_the_allocator_settings_until_it_ends():
    config = make_config()
    con = duckdb.connect()
    store.ensure_schema(con)
    first, second = (store.window_for_key(config, k) for k in ("2026-11-01", "2026-11-02"))
    for window, evs in (
        (first, [ev("e1", 1, anonymous_id="a1")]),
        (second, [ev("e2", DAY + 1, anonymous_id="a1")]),
    ):
        store.stage_frames(con, config, window, *window_inputs(evs, config))
    run = store.StitchRun(con, config, [first, second])
    assert allocator.tuned_now()
    run.process(first)
    run.process(second)
    run.finish()
    assert not allocator.tuned_now()
    # a run that fails (asked for a window that is not its next one) restores them too
    with pytest.raises(store.WindowOrderError), store.StitchRun(con, config, [first, second]) as failing:
        failing.process(second)
    assert not allocator.tuned_now()
    # and one that cannot start (its window is before the config's start)
    with pytest.raises(store.WindowOrderError):
        store.StitchRun(con, config, [store.window_for_key(config, "2026-10-31")])
    assert not allocator.tuned_now()
    off = store.StitchRun(con, config.model_copy(update={"tune_allocator": False}), [first])
    assert not allocator.tuned_now()
    off.abort()
