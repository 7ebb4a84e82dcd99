"""Stitching windows against the stored graph: `StitchRun`.

A run processes one or more windows, oldest first, in **one DuckDB transaction**: it rolls back the windows it
re-runs (and any later ones, which become `outdated`; undo logs are per commit, so the earlier windows of the
first one's commit are rolled back too and stitched again first, their outputs kept: `undo.py`), then for
each window reads the staged inputs, takes the subgraph the window reads from the run's in-memory graph
(`graph_cache.py`, loading from the state tables what the run has not seen), runs the engine
(`fast_path.stitch_arrays`), applies the outcome to the in-memory graph and appends the window's outputs and
its part of the commit's undo log; at the end it writes the changed state rows once (`flush.py`) and
commits. A failure anywhere leaves the previous tables as they were.

    with StitchRun(con, config, windows) as run:
        for window in windows:
            metrics = run.process(window)
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from identity_pipeline.core.event_stitching.fast_path import (
    NAT,
    CreatedIdCollision,
    Policy,
    WindowEvents,
    WindowOutcome,
    stitch_arrays,
)
from identity_pipeline.core.event_stitching.fast_path.outcome import AUDIT_KINDS
from identity_pipeline.core.event_stitching.fast_path.split import present
from identity_pipeline.core.event_stitching.hashing import profile_keys
from identity_pipeline.core.event_stitching.metrics import coded_window_metrics
from identity_pipeline.core.event_stitching.store.allocator import allocator_tuned
from identity_pipeline.core.event_stitching.store.apply import apply_outcome, recount_conflicts
from identity_pipeline.core.event_stitching.store.dictionary import type_codes
from identity_pipeline.core.event_stitching.store.flush import (
    flush_ops,
    insert_tables,
    undo_tables,
    write_ops,
)
from identity_pipeline.core.event_stitching.store.graph_cache import GraphCache
from identity_pipeline.core.event_stitching.store.subgraph import Extracted, extract
from identity_pipeline.core.event_stitching.store.tables import (
    OUT,
    STAGE,
    STATE,
    WindowOrderError,
    ensure_schema,
    on_arrow,
    sql_text,
)
from identity_pipeline.core.event_stitching.store.undo import delete_outputs, rollback_from
from identity_pipeline.core.event_stitching.store.views import publish_views
from identity_pipeline.core.event_stitching.store.windows import (
    Window,
    check_predecessor,
    window_key_for,
    window_length,
)

_EPOCH = datetime(1970, 1, 1)


def micros(ts: datetime) -> int:
    return int((ts - _EPOCH).total_seconds() * 1_000_000)


class StagedWindow:
    """A window's staged events (processing order) and observations, read back from `es_stage`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, window_key: str) -> None:
        ev = con.sql(
            f"select model, event_id, event_ts from {STAGE}.events where window_key = ? order by seq",
            params=[window_key],
        ).to_arrow_table()
        self.model = ev.column("model").combine_chunks()
        self.model_codes = pc.dictionary_encode(self.model)  # for the metrics (off the stitching thread)
        self.event_id = ev.column("event_id").combine_chunks()
        ts = ev.column("event_ts").combine_chunks().cast(pa.timestamp("us")).cast(pa.int64())
        self.e_ts = np.asarray(ts.to_numpy(zero_copy_only=False), dtype=np.int64)
        ob = con.sql(
            f"select seq, vid, type_code, blocked, tie from {STAGE}.observations where window_key = ?",
            params=[window_key],
        ).to_arrow_table()
        self.o_seq = ob.column("seq").to_numpy().astype(np.int64)
        self.o_vid = ob.column("vid").to_numpy().astype(np.int64)
        self.o_code = ob.column("type_code").to_numpy().astype(np.int64)
        self.o_blocked = np.asarray(ob.column("blocked").to_numpy(), dtype=bool)
        self.o_tie = ob.column("tie").to_numpy().astype(np.int64)
        if len(self.o_seq) > 1 and (np.diff(self.o_seq) < 0).any():
            raise AssertionError(f"{STAGE}.observations of {window_key} are not in event order")
        self._models: np.ndarray | None = None
        self._eids: np.ndarray | None = None

    @property
    def nE(self) -> int:
        return len(self.e_ts)

    def created_keys(self, e: np.ndarray) -> np.ndarray:
        """The ids (`reference.profile_id_for`, 64 bits) of the profiles events `e` would create."""
        idx = pa.array(np.asarray(e, dtype=np.int64))
        return profile_keys(self.model.take(idx), self.event_id.take(idx))

    def strings(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = pa.array(np.asarray(e, dtype=np.int64))
        return (
            np.asarray(self.model.take(idx).to_pylist(), dtype=object),
            np.asarray(self.event_id.take(idx).to_pylist(), dtype=object),
        )


class _Names:
    """Strings for the engine's complex path. The value strings are a lookup in the dictionary (~20-40 ms a
    window on the benchmark); `prefetch` starts it on `pool` (DuckDB runs without the GIL) while the engine
    goes on with the merge walk. The cursor is used by one thread at a time: `values` waits for a prefetch."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        staged: StagedWindow,
        vids: np.ndarray,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.con, self.staged, self.vids, self.pool = con, staged, vids, pool
        self._pending: tuple[np.ndarray, Future] | None = None

    def prefetch(self, v: np.ndarray) -> None:
        if self.pool is None or self._pending is not None:
            return
        v = np.array(v, dtype=np.int64)
        self._pending = (v, self.pool.submit(self._read, v))

    def values(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.int64)
        pending, self._pending = self._pending, None
        if pending is not None:
            text = pending[1].result()
            if np.array_equal(pending[0], v):
                return text
        return self._read(v)

    def _read(self, v: np.ndarray) -> np.ndarray:
        vids = self.vids[v]
        t = on_arrow(
            self.con,
            "__es_vids",
            pa.table({"vid": pa.array(vids.astype(np.int32))}),
            f"select d.vid, d.value from {STATE}.value_dictionary d semi join __es_vids i on i.vid = d.vid",
        ).to_arrow_table()
        text = dict(zip(t.column("vid").to_pylist(), t.column("value").to_pylist(), strict=True))
        return np.array([text[int(x)] for x in vids.tolist()], dtype=object)

    def events(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.staged.strings(e)


def _take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx], -1 where idx is -1."""
    out = np.full(len(idx), -1, dtype=np.int64)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic collector off for a window or the end of a run. Both allocate many small Python
    objects (merge walk, reference path, redirect rows) and no reference cycles: each collection would only
    re-scan the run's objects (a third of the merge walk's time; 0.5 s of the end of a 30-window run)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _warm_kernels() -> None:
    """Import and load the fast path's compiled loops; a failure here shows again where they are used."""
    with contextlib.suppress(Exception):
        from identity_pipeline.core.event_stitching.fast_path import kernels

        kernels.warm()


class StitchRun:
    """Process windows in order against the stored graph, in one transaction (see the module docstring)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, config: Any, windows: list[Window], commit_every: int = 10
    ) -> None:
        self.con = con
        # a long backfill commits every `commit_every` windows (state tables written, transaction closed):
        # what DuckDB holds for an open transaction stays bounded; a failure keeps the windows committed
        # before it, which are consistent (see docs/event-stitching-storage.md)
        self.commit_every = max(1, int(commit_every))
        self.flush_seconds = 0.0
        self.config = config
        self.policy = Policy.from_config(config)
        self.windows = sorted(windows, key=lambda w: w.start)
        self.timings: list[dict[str, float]] = []
        self._done = 0
        self._replay: set[str] = set()
        self._undo_ts = 0  # the start of the first window of the current commit (µs)
        # the window's output rows are written by one background thread while the next window is stitched
        # (DuckDB runs without the GIL); the connection is used by one thread at a time (`_wait`)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="es-writer")
        self._pending: Future | None = None
        # the fast path's compiled loops load (numba, ~1.5 s) on that thread while the graph is prepared
        self._io.submit(_warm_kernels)
        ensure_schema(con)
        # committed rows that the run never writes (staged windows, the dictionary) are read through other
        # connections, so reading them does not wait for the writer: `reader` for the main thread, and one
        # for the thread that reads the next window's staged rows while this window is stitched
        self.reader = con.cursor()
        self._staged_reader = con.cursor()
        self._read_ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="es-read-ahead")
        self._prefetched: dict[str, Future] = {}
        self._allocator = contextlib.ExitStack()
        self._allocator.enter_context(allocator_tuned(getattr(config, "tune_allocator", True)))
        con.execute("BEGIN TRANSACTION")
        try:
            self._prepare()
        except BaseException:
            self.abort()  # replayed windows may have given the writer work: it finishes before the rollback
            raise

    def __enter__(self) -> StitchRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def _wait(self) -> None:
        """Let the writer finish what it was given (and raise what it raised)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _submit(self, job: Callable[[], None]) -> None:
        self._wait()
        self._pending = self._io.submit(job)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the run fails anyway; its first error is what is raised
            self._wait()
        self._io.shutdown(wait=True)
        self.con.execute("ROLLBACK")
        self._release()

    def _release(self) -> None:
        """Drop the in-memory graph now: it refers back to the run (`before_query`), and the cyclic collector
        may not look at that cycle for a long time, with gigabytes of arrays in it."""
        self.cache = None
        self._close_readers()
        self._allocator.close()

    def _close_readers(self) -> None:
        for pending in self._prefetched.values():
            pending.cancel()
        self._read_ahead.shutdown(wait=True)
        self._prefetched.clear()
        self.reader.close()
        self._staged_reader.close()

    def _read_staged(self, window_key: str) -> None:
        """Start reading a window's staged rows on the read-ahead thread (DuckDB and Arrow run without the
        GIL)."""
        if window_key not in self._prefetched:
            read = self._read_ahead.submit(StagedWindow, self._staged_reader, window_key)
            self._prefetched[window_key] = read

    def _prepare(self) -> None:
        con = self.con
        if not self.windows:
            self.cache = None
            return
        first, last = self.windows[0], self.windows[-1]
        check_predecessor(con, self.config, first)
        step = window_length(self.config)
        for a, b in zip(self.windows, self.windows[1:], strict=False):
            if b.start != a.start + step:
                raise WindowOrderError(
                    f"a run processes consecutive windows: {window_key_for(self.config, a.start + step)} is "
                    f"missing between {a.key} and {b.key}"
                )
        replay = rollback_from(con, first.start, keep_outputs_after=last.end)
        # the windows committed together with `first` are stitched again first, outputs kept (see undo.py)
        again = [Window(window_key_for(self.config, ws), ws, ws + step) for ws in replay]
        self._replay = {w.key for w in again}
        self.windows = again + self.windows
        self._undo_ts = micros(self.windows[0].start)
        codes = type_codes(con, list(self.config.identifiers))
        walk = self.policy.index()
        self.type_code = {t: codes[t] for t in self.policy.names}
        self.code_of_walk = np.array([codes[t] for t in self.policy.names], dtype=np.int64)
        self.cache = GraphCache(
            con, self.policy, {codes[t]: walk[t] for t in self.policy.names}, before_query=self._wait
        )
        prev = con.execute(
            f"select next_sequence, active_profiles, known_profiles from {STATE}.windows "
            "where window_start < ? and status = 'processed' order by window_start desc limit 1",
            [self.windows[0].start],
        ).fetchall()
        self.next_seq = int(prev[0][0]) if prev else 1
        self.active = int(prev[0][1] or 0) if prev else 0
        self.known = int(prev[0][2] or 0) if prev else 0
        keys = [w.key for w in self.windows]
        size = con.execute(
            f"select count(*), max(vid) from {STAGE}.observations where window_key in (select unnest(?))",
            [keys],
        ).fetchall()[0]
        events = con.execute(
            f"select count(*) from {STAGE}.events where window_key in (select unnest(?))", [keys]
        ).fetchall()[0][0]
        self.cache.reserve(
            values=max(int(size[1] or 0), self.cache.db_max_vid) + 1,
            profiles=self.next_seq + int(events or 0) + 1,
            memberships=int(size[0] or 0),
        )
        self.released = self._released_vids()
        for window in self.windows[: len(replay)]:
            self.process(window)

    def _released_vids(self) -> list[tuple[int, int | None]]:
        rel = self.policy.releases()
        if not rel:
            return []
        rows = self.con.execute(
            f"""select r.i, d.vid from (select unnest(?) as i, unnest(?) as t, unnest(?) as v) r
            join {STATE}.value_dictionary d
              on d.h1 = (md5_number(r.t || chr(31) || r.v) >> 64)::UBIGINT
             and d.h2 = (md5_number(r.t || chr(31) || r.v) & 18446744073709551615::UHUGEINT)::UBIGINT""",
            [list(range(len(rel))), [t for t, _, _ in rel], [v for _, v, _ in rel]],
        ).fetchall()
        vid_of = {int(i): int(v) for i, v in rows}
        return [(vid_of[i], rel[i][2]) for i in range(len(rel)) if i in vid_of]

    # ---- one window ---------------------------------------------------------------------------------------

    def process(self, window: Window) -> dict[str, float]:
        """Stitch the run's next window; its rows are written in the background (visible at the next commit
        point or when the run finishes)."""
        with _cyclic_gc_paused():
            return self._process(window)

    def _process(self, window: Window) -> dict[str, float]:
        t0 = time.perf_counter()
        cache = self.cache
        if self._done >= len(self.windows) or window.key != self.windows[self._done].key:
            raise WindowOrderError(f"window {window.key} is not the next window of this run")
        self._done += 1
        self._read_staged(window.key)
        staged = self._prefetched.pop(window.key).result()
        if self._done < len(self.windows):  # the next window's rows are read while this one is stitched
            self._read_staged(self.windows[self._done].key)
        t_read = time.perf_counter()
        ts0 = micros(window.start)
        cache.begin_window(ts0, self._undo_ts)
        V = cache.v
        if len(staged.o_vid):
            V.ensure(int(staged.o_vid.max()) + 1)
        window_vids = np.flatnonzero(present(staged.o_vid, V.n)) if len(staged.o_vid) else staged.o_vid
        V.code[staged.o_vid] = staged.o_code
        rel_vids = np.array([v for v, _ in self.released], dtype=np.int64)
        ex = extract(cache, window_vids, rel_vids, self.next_seq, observed=staged.o_vid)
        ex, o_local, outcome = self._stitch(window, staged, ex, window_vids, rel_vids)
        t_engine = time.perf_counter()
        changed, d_active, d_known = apply_outcome(
            cache, ex, outcome, window_key=window.key, evidence=staged.strings
        )
        refreshed = ex.vids[outcome.changes.reg_rows]
        active_conflicts = recount_conflicts(cache, changed, refreshed, micros(window.end))
        self.active += d_active
        self.known += d_known
        self.next_seq = outcome.changes.next_seq
        cache.fill_ahead(self._read_ahead)
        t_apply = time.perf_counter()
        journal = cache.journal  # the next window starts a new one
        duration = time.perf_counter() - t0
        undo_ts, undo_window = self._undo_ts, self._undo_window()
        if window.key in self._replay:  # stitched again for the state only: its outputs and row are kept
            self._submit(lambda: self._write_replayed(window, undo_tables(journal, undo_ts), undo_window))
            self._end_of_window()
            return {}
        metrics = self._metrics(staged, ex, o_local, outcome, active_conflicts, duration)
        metric_rows = self._metric_rows(window, metrics)
        row = [window.key, window.start, window.end, staged.nE, duration]
        row += [self.next_seq, self.active, self.known, undo_window]
        # the window's rows are built from what no later window changes (its inputs, subgraph copy, outcome
        # and journal), so the writer thread builds them too
        self._submit(
            lambda: self._write_window(
                window,
                self._output_tables(staged, ex, outcome),
                undo_tables(journal, undo_ts),
                metric_rows,
                row,
            )
        )
        self._end_of_window()
        self.timings.append(
            {
                "read_s": t_read - t0,
                "engine_s": t_engine - t_read,
                "apply_s": t_apply - t_engine,
                "write_s": time.perf_counter() - t_apply,
                "subgraph_values": ex.sub.nV,
                "subgraph_profiles": ex.sub.nP,
                "subgraph_memberships": ex.sub.nM,
            }
        )
        return metrics

    def _undo_window(self) -> datetime:
        """The first window of the current commit (its undo log's `undo_window`)."""
        return _EPOCH + timedelta(microseconds=self._undo_ts)

    def _end_of_window(self) -> None:
        """A commit point every `commit_every` windows; the next window then starts the next undo log."""
        if self._done % self.commit_every == 0 and self._done < len(self.windows):
            self._commit_point()
            self._undo_ts = micros(self.windows[self._done].start)

    def _write_replayed(self, window: Window, undo: dict, undo_window: datetime) -> None:
        """A replayed window's undo rows; its row is `processed` again, in the commit it is now part of (runs
        on the writer thread)."""
        insert_tables(self.con, undo)
        self.con.execute(
            f"update {STATE}.windows set status = 'processed', undo_window = ? where window_key = ?",
            [undo_window, window.key],
        ).fetchall()

    def _write_window(
        self, window: Window, tables: dict, undo: dict, metric_rows: pa.Table, row: list
    ) -> None:
        """The window's rows (runs on the writer thread)."""
        con = self.con
        key = sql_text(window.key)
        delete_outputs(con, window.key)
        for name, table in tables.items():
            if table.num_rows == 0:
                continue
            on_arrow(
                con,
                "__es_out",
                table,
                f"insert into {OUT}.{name} by name select {key} as window_key, * from __es_out",
            )
        insert_tables(con, undo)
        on_arrow(
            con,
            "__es_metrics",
            metric_rows,
            f"insert into {OUT}.run_metrics by name select * from __es_metrics",
        )
        con.execute(f"delete from {STATE}.windows where window_key = ?", [window.key]).fetchall()
        con.execute(
            f"insert into {STATE}.windows values (?, ?, ?, now()::TIMESTAMP, ?, 'processed', ?, ?, ?, ?, ?)",
            row,
        ).fetchall()

    def _stitch(
        self, window, staged, ex, window_vids, rel_vids
    ) -> tuple[Extracted, np.ndarray, WindowOutcome]:
        """The window's outcome, the subgraph it was decided on (taken again with the profiles whose ids a
        created profile would reuse, when there are any) and the local rows of the window's observations."""
        cache = self.cache
        extra = None
        for _ in range(2):
            local = ex.observed  # both extracts above were given the window's observations
            rel_local = ex.local_values(cache, rel_vids) if len(rel_vids) else rel_vids
            win = WindowEvents(
                e_ts=staged.e_ts,
                o_e=staged.o_seq,
                o_v=local,
                o_blocked=staged.o_blocked,
                o_tie=staged.o_tie,
                names=_Names(self.reader, staged, ex.vids, self._read_ahead),
                key_of=staged.created_keys,
                key_exists=None if extra is not None else self._key_exists,
                released=[(int(r), at) for r, (_, at) in zip(rel_local.tolist(), self.released, strict=True)],
            )
            try:
                return ex, local, stitch_arrays(ex.sub, win, self.policy, window.key)
            except CreatedIdCollision as c:
                extra = self._pids_of_keys(c.keys)
                ex = extract(
                    cache, window_vids, rel_vids, self.next_seq, extra_pids=extra, observed=staged.o_vid
                )
        raise AssertionError("unreachable")

    def _key_exists(self, keys: np.ndarray) -> np.ndarray:
        """Profiles with these ids outside the subgraph: created earlier in the run, or in the state
        tables."""
        found = self.cache.created_keys.contains(keys)
        if self.cache.db_max_pid >= 0 and len(keys):
            t = self._stored_profiles(keys, "pkey")
            if t.num_rows:
                found |= np.isin(keys, np.asarray(t.column("pkey").to_numpy(), dtype=np.uint64))
        return found

    def _pids_of_keys(self, keys: np.ndarray) -> np.ndarray:
        P = self.cache.p
        in_run = np.flatnonzero(np.isin(P.key[: P.n], keys) & (P.state[: P.n] > 0))
        db = np.asarray(self._stored_profiles(keys, "pid").column("pid").to_numpy(), dtype=np.int64)
        return np.unique(np.concatenate([in_run, db]))

    def _stored_profiles(self, keys: np.ndarray, column: str) -> pa.Table:
        """`column` of the state tables' profiles with these ids (after the writer's pending work)."""
        self._wait()
        return on_arrow(
            self.con,
            "__es_keys",
            pa.table({"pkey": pa.array(np.asarray(keys, dtype=np.uint64))}),
            f"select p.{column} from {STATE}.profiles p semi join __es_keys k on k.pkey = p.pkey",
        ).to_arrow_table()

    # ---- outputs ------------------------------------------------------------------------------------------

    def _output_tables(self, staged: StagedWindow, ex, out: WindowOutcome) -> dict[str, pa.Table]:
        """The window's attribution and audit rows (codes; the views join the strings)."""
        n = staged.nE
        types = _take(self.code_of_walk, out.a_type)
        vids = _take(ex.vids, out.a_value)
        attribution = pa.table(
            {
                "seq": pa.array(np.arange(n, dtype=np.int32)),
                "model": staged.model,
                "event_id": staged.event_id,
                "event_ts": pa.array(staged.e_ts.view("datetime64[us]")),
                "pid": pa.array(out.a_profile, mask=out.a_profile < 0),
                "status": pa.array(out.a_status.astype(np.uint8)),
                "reason": pa.array(out.a_reason.astype(np.uint8)),
                "type_code": pa.array(types.astype(np.int16), mask=types < 0),
                "vid": pa.array(vids.astype(np.int32), mask=vids < 0),
            }
        )
        e = out.au_e
        has_e = e >= 0
        ts = np.full(len(e), NAT, dtype=np.int64)
        ts[has_e] = staged.e_ts[e[has_e]]
        models = np.full(len(e), None, dtype=object)
        eids = np.full(len(e), None, dtype=object)
        if has_e.any():
            models[has_e], eids[has_e] = staged.strings(e[has_e])
        au_v = ex.vids[out.au_v]
        audit = pa.table(
            {
                "ord": pa.array(np.arange(len(e), dtype=np.int32)),
                "event_ts": pa.array(ts.view("datetime64[us]"), mask=ts == NAT),
                "audit_code": pa.array(out.au_kind.astype(np.uint8)),
                "type_code": pa.array(self.code_of_walk[ex.sub.v_type[out.au_v]].astype(np.int16)),
                "vid": pa.array(au_v.astype(np.int32)),
                "pid": pa.array(out.au_p, mask=out.au_p < 0),
                "other_pid": pa.array(out.au_other, mask=out.au_other < 0),
                "model": pa.array(models, pa.string()),
                "event_id": pa.array(eids, pa.string()),
                "detail": pa.array(out.au_detail, pa.string()),
            }
        )
        return {"attribution": attribution, "audit_events": audit}

    def _metrics(self, staged, ex, o_v, out, active_conflicts: int, duration: float) -> dict:
        model_names = [m.name for m in self.config.models]
        enc = staged.model_codes
        index = {m: i for i, m in enumerate(model_names)}
        code_of = np.array([index[m] for m in enc.dictionary.to_pylist()], dtype=np.int64)
        e_model = code_of[np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
        metrics, by_model, by_type = coded_window_metrics(
            a_status=out.a_status,
            a_reason=out.a_reason,
            a_type=out.a_type,
            e_model=e_model,
            model_names=model_names,
            au_kind=out.au_kind,
            au_type=ex.sub.v_type[out.au_v],
            au_value=out.au_v,
            audit_kinds=AUDIT_KINDS,
            o_type=ex.sub.v_type[o_v],
            o_value=o_v,
            o_blocked=staged.o_blocked,
            type_names=self.policy.names,
            profiles_created=out.profiles_created,
            profiles_merged=out.profiles_merged,
        )
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics.update(
            {
                "active_profiles": float(self.active),
                "known_profiles": float(self.known),
                "known_profile_share": float(self.known / self.active) if self.active else 0.0,
                "active_conflicts": float(active_conflicts),
                "events_fast_path": float(out.events_fast_path),
                "duration_seconds": float(duration),
            }
        )
        metrics["_breakdowns"] = (by_model, by_type)
        return metrics

    @staticmethod
    def _metric_rows(window: Window, metrics: dict) -> pa.Table:
        by_model, by_type = metrics.pop("_breakdowns")
        rows = [("window", None, k, float(v)) for k, v in metrics.items()]
        breakdowns = (("model", by_model, "model"), ("identifier_type", by_type, "identifier_type"))
        for breakdown, df, key in breakdowns:
            for rec in df.to_dict("records"):
                rows += [(breakdown, str(rec[key]), k, float(v)) for k, v in rec.items() if k != key]
        return pa.table(
            {
                "window_key": pa.array([window.key] * len(rows), pa.string()),
                "window_start": pa.array([window.start] * len(rows), pa.timestamp("us")),
                "breakdown": pa.array([r[0] for r in rows], pa.string()),
                "breakdown_value": pa.array([r[1] for r in rows], pa.string()),
                "metric": pa.array([r[2] for r in rows], pa.string()),
                "value": pa.array([r[3] for r in rows], pa.float64()),
            }
        )

    # ---- end of the run -----------------------------------------------------------------------------------

    def _commit_point(self) -> None:
        """Write the state rows changed so far and commit the windows processed so far; go on in a new
        transaction with the same in-memory graph. The rows are copied out of the graph here; the writer
        thread writes them and commits while the next window is stitched (the next job it is given, or any
        read of the connection, waits for that commit)."""
        t = time.perf_counter()
        ops = list(flush_ops(self.cache, {}))
        self.cache.mark_written()
        con = self.con

        def write_and_commit() -> None:
            write_ops(con, ops)
            con.execute("COMMIT")
            con.execute("BEGIN TRANSACTION")

        self._submit(write_and_commit)
        self.flush_seconds += time.perf_counter() - t

    def finish(self) -> None:
        """Write the state rows changed since the last commit point, re-create the views, commit."""
        with _cyclic_gc_paused():
            self._finish()

    def _finish(self) -> None:
        t = time.perf_counter()
        try:
            self._wait()
            if self._done != len(self.windows):
                raise WindowOrderError(f"the run stopped after {self._done} of {len(self.windows)} windows")
            if self.cache is not None:
                # one table's rows are copied out while the writer writes the previous one's
                self.flushed = {}
                for op in flush_ops(self.cache, self.flushed):
                    self._submit(lambda op=op: write_ops(self.con, [op]))
                self._wait()
            publish_views(self.con, self.config)
        except BaseException:
            self.abort()
            raise
        self._io.shutdown(wait=True)
        self.con.execute("COMMIT")
        self._release()
        self.flush_seconds += time.perf_counter() - t
