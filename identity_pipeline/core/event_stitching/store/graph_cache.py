"""The graph state one run works on, in memory: every row it read from the state tables or wrote.

A run (one window, or a backfill of many) keeps the rows it touched here, so window N+1 never re-reads what
window N wrote; the state tables are written at commit points and when the run finishes (`flush.py`). A
window's lookups in DuckDB are only for rows the run has not seen yet (`load_*`, semi-joins on integer ids),
so a window's cost follows the rows its values touch, not the size of the history.

What is loaded, and when (the rules' reads, see `state.profile_wide_types`):

* a window value: its registry row and every membership of it (`load_values`), and the profiles holding it;
* a profile holding a window value: its row and its profile-wide memberships (anchors, types with
  `max_unique_values_per_profile`; `load_wide`);
* a profile merged away: all its memberships (`load_all`), which move to the survivor, and the redirects that
  pointed to it (`load_redirects_into`), which are re-pointed (one hop).

Memberships are rows linked in three chains (by value, by profile, by profile for wide types). A row never
changes its (profile, value): moving it to a survivor ends it (`m_alive` False) and appends a copy. Every
change is journaled first (`journal`), the first time a commit makes one: the commit's undo log holds the
row as it was before the commit.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from identity_pipeline.core.event_stitching.fast_path import ACTIVE, NAT, PROFILE_ACTIVE, Policy
from identity_pipeline.core.event_stitching.store.columns import ChainMemo, Columns, chain_rows, link
from identity_pipeline.core.event_stitching.store.keyset import KeySet
from identity_pipeline.core.event_stitching.store.tables import STATE, on_arrow

_I64 = np.int64


def _ids_table(name: str, ids: np.ndarray) -> pa.Table:
    return pa.table({name: pa.array(np.asarray(ids, dtype=_I64))})


def _ts(col) -> np.ndarray:
    """A TIMESTAMP column from Arrow as int64 µs (NAT for null)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    arr = arr.cast(pa.timestamp("us")).cast(pa.int64())
    return np.asarray(arr.fill_null(NAT).to_numpy(zero_copy_only=False), dtype=_I64)


def _int(col, fill=-1) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return np.asarray(arr.fill_null(fill).to_numpy(zero_copy_only=False)).astype(_I64)


def _bool(col) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


@dataclass
class Journal:
    """Rows as they were before the window changed them (its undo log), table by table."""

    registry: list[np.ndarray] = field(default_factory=list)  # vids
    profiles: list[np.ndarray] = field(default_factory=list)  # pids
    memberships: list[dict[str, np.ndarray]] = field(default_factory=list)  # row images
    redirects: list[tuple] = field(default_factory=list)  # (from_pid, row) before
    conflicts: list[tuple] = field(default_factory=list)  # (vid, row) before


# the undo log's columns of a row image -> the cache's columns they are read from
_REGISTRY_IMAGE = dict(
    type_code="code", first_seen_at="first", last_seen_at="last", event_count="count", quarantined="quar",
    quarantined_at="quar_at", written_window="ww",
)  # fmt: skip
_PROFILE_IMAGE = dict(
    pkey="key", created_at="created", first_seen_at="first", last_seen_at="last", status="status",
    merged_to="merged_to", event_count="count", is_known="known", written_window="ww",
)  # fmt: skip
_MEMBERSHIP_IMAGE = dict(
    pid="pid", vid="vid", type_code="code", status="status", first_seen_at="first", last_seen_at="last",
    event_count="count", written_window="ww",
)  # fmt: skip


class GraphCache:
    """In-memory rows of the state tables for one run (see the module docstring)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        policy: Policy,
        walk_of_code: dict[int, int],
        before_query=None,
    ) -> None:
        self.con = con
        # called before every query (the run's writer thread may be using the connection)
        self.before_query = before_query or (lambda: None)
        self.policy = policy
        self.walk_of_code = walk_of_code
        n_codes = max(walk_of_code, default=-1) + 1
        self.code_walk = np.full(max(n_codes, 1), -1, dtype=_I64)
        for c, w in walk_of_code.items():
            self.code_walk[c] = w
        wide_walk = policy.wide
        self.code_wide = np.array(
            [w >= 0 and bool(wide_walk[w]) for w in self.code_walk.tolist()], dtype=bool
        )
        self.wide_codes = [c for c in range(len(self.code_wide)) if self.code_wide[c]]
        self.v = Columns(
            {
                "loaded": (bool, False),
                "code": (np.int16, -1),
                "reg": (bool, False),
                "first": (_I64, NAT),
                "last": (_I64, NAT),
                "count": (_I64, 0),
                "quar": (bool, False),
                "quar_at": (_I64, NAT),
                "ww": (_I64, NAT),
                "dirty": (bool, False),
                "in_db": (bool, False),
                "head": (np.int32, -1),
                "conflict": (bool, False),  # in `conflicts`
                "scratch": (_I64, -1),
            }
        )
        self.p = Columns(
            {
                "state": (np.int8, 0),  # 0 unknown, 1 row, 2 row + wide memberships, 3 row + all memberships
                "key": (np.uint64, 0),
                "created": (_I64, NAT),
                "first": (_I64, NAT),
                "last": (_I64, NAT),
                "status": (np.int8, PROFILE_ACTIVE),
                "merged_to": (_I64, -1),
                "count": (_I64, 0),
                "known": (bool, False),
                "ww": (_I64, NAT),
                "dirty": (bool, False),
                "in_db": (bool, False),
                "head_all": (np.int32, -1),
                "head_wide": (np.int32, -1),
                "into_loaded": (bool, False),  # the state tables' redirects to this profile are loaded
                "has_into": (bool, False),  # a redirect in `redirects` may point to this profile
                "scratch": (_I64, -1),
            }
        )
        # memberships: the most rows by far, so the narrowest types (ids fit 32 bits)
        self.m = Columns(
            {
                "pid": (np.int32, -1),
                "vid": (np.int32, -1),
                "code": (np.int16, -1),
                "status": (np.int8, ACTIVE),
                "first": (_I64, NAT),
                "last": (_I64, NAT),
                "count": (_I64, 0),
                "ww": (_I64, NAT),
                "alive": (bool, False),
                "dirty": (bool, False),
                "in_db": (bool, False),
                "next_v": (np.int32, -1),
                "next_all": (np.int32, -1),
                "next_wide": (np.int32, -1),
            }
        )
        # redirects (from_pid -> [to_pid, merged_at, model, event_id, window_key, ww, in_db, dirty]) and
        # conflicting values (vid -> [active_profiles, expires_at, ww, in_db, dirty]) are small: dicts
        self.redirects: dict[int, list] = {}
        self.redirect_into: dict[int, set[int]] = {}
        self.conflicts: dict[int, list] = {}
        self.conflicts_deleted: set[int] = set()
        # the long chains' rows (a value on thousands of profiles), read in full once per run
        self.chain_memo = {"v": ChainMemo(), "wide": ChainMemo(), "all": ChainMemo()}
        self.created_keys = KeySet(capacity=1 << 22)  # ids created by the run (32 MB, grows if needed)
        self.journal = Journal()
        self.window_ts = NAT
        self.undo_ts = NAT
        self._n_before: dict[str, int] = {}  # rows of v, p, m at the last `fill_ahead`
        # the state tables' extent when the run started: ids past them cannot be in DuckDB
        row = con.execute(
            f"select (select max(vid) from {STATE}.registry), (select max(vid) from {STATE}.memberships), "
            f"(select max(pid) from {STATE}.profiles)"
        ).fetchall()[0]
        self.db_max_vid = max(-1 if row[0] is None else int(row[0]), -1 if row[1] is None else int(row[1]))
        self.db_max_pid = -1 if row[2] is None else int(row[2])
        self._load_conflicts()

    # ---- loading from the state tables ------------------------------------------------------------------

    def _query(self, sql: str, name: str, ids: np.ndarray) -> pa.Table:
        self.before_query()
        return on_arrow(self.con, "__es_ids", _ids_table(name, ids), sql).to_arrow_table()

    def _grow_values(self, vids: np.ndarray) -> None:
        if len(vids):
            self.v.ensure(int(vids.max()) + 1)

    def _grow_profiles(self, pids: np.ndarray) -> None:
        if len(pids):
            self.p.ensure(int(pids.max()) + 1)

    def load_values(self, vids: np.ndarray) -> None:
        """Registry rows and every membership of these values (the ones the run has not loaded yet), and the
        rows of the profiles holding them."""
        self._grow_values(vids)
        todo = vids[~self.v.loaded[vids]]
        if len(todo) == 0:
            return
        self.v.loaded[todo] = True
        todo = todo[todo <= self.db_max_vid]
        if len(todo) == 0:
            return
        reg = self._query(
            f"select r.* from {STATE}.registry r semi join __es_ids i on i.vid = r.vid", "vid", todo
        )
        if reg.num_rows:
            vid = _int(reg.column("vid"))
            self.v.code[vid] = _int(reg.column("type_code"))
            self.v.reg[vid] = True
            self.v.first[vid] = _ts(reg.column("first_seen_at"))
            self.v.last[vid] = _ts(reg.column("last_seen_at"))
            self.v.count[vid] = _int(reg.column("event_count"), 0)
            self.v.quar[vid] = _bool(reg.column("quarantined"))
            self.v.quar_at[vid] = _ts(reg.column("quarantined_at"))
            self.v.ww[vid] = _ts(reg.column("written_window"))
            self.v.in_db[vid] = True
        mem = self._query(
            f"select m.* from {STATE}.memberships m semi join __es_ids i on i.vid = m.vid", "vid", todo
        )
        if mem.num_rows:
            pid = _int(mem.column("pid"))
            self._grow_profiles(pid)
            code = _int(mem.column("type_code"))
            st = self.p.state[pid]
            keep = (st < 3) & ~((st == 2) & self.code_wide[code])
            self._add_db_memberships(mem, keep)
            self.load_profiles(np.unique(pid))

    def load_profiles(self, pids: np.ndarray) -> None:
        self._grow_profiles(pids)
        todo = pids[self.p.state[pids] == 0]
        todo = todo[todo <= self.db_max_pid]
        if len(todo) == 0:
            return
        t = self._query(
            f"select p.* from {STATE}.profiles p semi join __es_ids i on i.pid = p.pid", "pid", todo
        )
        pid = _int(t.column("pid"))
        P = self.p
        P.state[pid] = 1
        P.key[pid] = np.asarray(t.column("pkey").combine_chunks().to_numpy(zero_copy_only=False), np.uint64)
        P.created[pid] = _ts(t.column("created_at"))
        P.first[pid] = _ts(t.column("first_seen_at"))
        P.last[pid] = _ts(t.column("last_seen_at"))
        P.status[pid] = _int(t.column("status"), 0)
        P.merged_to[pid] = _int(t.column("merged_to"), -1)
        P.count[pid] = _int(t.column("event_count"), 0)
        P.known[pid] = _bool(t.column("is_known"))
        P.ww[pid] = _ts(t.column("written_window"))
        P.in_db[pid] = True

    def load_wide(self, pids: np.ndarray) -> None:
        """Profile-wide memberships of these (loaded) profiles."""
        todo = pids[self.p.state[pids] < 2]
        if len(todo) == 0:
            return
        self.p.state[todo] = 2
        todo = todo[todo <= self.db_max_pid]
        if len(todo) == 0 or not self.wide_codes:
            return
        codes = ", ".join(str(c) for c in self.wide_codes)
        mem = self._query(
            f"select m.* from {STATE}.memberships m semi join __es_ids i on i.pid = m.pid "
            f"where m.type_code in ({codes})",
            "pid",
            todo,
        )
        if mem.num_rows:
            vid = _int(mem.column("vid"))
            self._grow_values(vid)
            self._add_db_memberships(mem, ~self.v.loaded[vid])

    def load_all(self, pids: np.ndarray) -> None:
        """Every membership of these (loaded) profiles."""
        todo = pids[self.p.state[pids] < 3]
        if len(todo) == 0:
            return
        before = self.p.state[todo].copy()
        self.p.state[todo] = 3
        in_db = todo <= self.db_max_pid
        todo, before = todo[in_db], before[in_db]
        if len(todo) == 0:
            return
        mem = self._query(
            f"select m.* from {STATE}.memberships m semi join __es_ids i on i.pid = m.pid", "pid", todo
        )
        if mem.num_rows:
            vid, pid = _int(mem.column("vid")), _int(mem.column("pid"))
            self._grow_values(vid)
            code = _int(mem.column("type_code"))
            had_wide = np.zeros(self.p.n, dtype=bool)
            had_wide[todo[before >= 2]] = True
            keep = ~self.v.loaded[vid] & ~(had_wide[pid] & self.code_wide[code])
            self._add_db_memberships(mem, keep)

    def _add_db_memberships(self, mem: pa.Table, keep: np.ndarray) -> None:
        if not keep.any():
            return
        idx = np.flatnonzero(keep)
        self._append_memberships(
            pid=_int(mem.column("pid"))[idx],
            vid=_int(mem.column("vid"))[idx],
            code=_int(mem.column("type_code"))[idx],
            status=_int(mem.column("status"), 0)[idx],
            first=_ts(mem.column("first_seen_at"))[idx],
            last=_ts(mem.column("last_seen_at"))[idx],
            count=_int(mem.column("event_count"), 0)[idx],
            ww=_ts(mem.column("written_window"))[idx],
            in_db=True,
        )

    def _append_memberships(self, *, pid, vid, code, status, first, last, count, ww, in_db) -> np.ndarray:
        M = self.m
        rows = M.append(len(pid))
        M.pid[rows], M.vid[rows], M.code[rows], M.status[rows] = pid, vid, code, status
        M.first[rows], M.last[rows], M.count[rows], M.ww[rows] = first, last, count, ww
        M.alive[rows] = True
        M.in_db[rows] = in_db
        M.dirty[rows] = not in_db
        self._grow_values(vid)
        self._grow_profiles(pid)
        self.v.code[vid] = code  # a value's type, known from any of its rows
        link(self.v.head, M.next_v, rows, vid)
        link(self.p.head_all, M.next_all, rows, pid)
        wide = self.code_wide[np.asarray(code, dtype=_I64)]
        link(self.p.head_wide, M.next_wide, rows[wide], np.asarray(pid)[wide])
        return rows

    def load_redirects_into(self, pids: np.ndarray) -> None:
        """Redirects pointing to these profiles (so a merge can re-point them), and their source profiles."""
        P = self.p
        pids = np.asarray(pids, dtype=_I64)
        todo = pids[~P.into_loaded[pids]]
        if len(todo) == 0:
            return
        P.into_loaded[todo] = True
        todo = todo[todo <= self.db_max_pid]
        if len(todo) == 0:
            return
        t = self._query(
            f"select r.* from {STATE}.redirects r semi join __es_ids i on i.pid = r.to_pid", "pid", todo
        )
        if not t.num_rows:
            return
        rows = t.to_pydict()
        ww = _ts(t.column("written_window")).tolist()
        merged_at = _ts(t.column("merged_at")).tolist()
        for i, f in enumerate(rows["from_pid"]):
            if f in self.redirects:
                continue
            self.redirect_into.setdefault(int(rows["to_pid"][i]), set()).add(int(f))
            P.has_into[int(rows["to_pid"][i])] = True
            self.redirects[int(f)] = [
                int(rows["to_pid"][i]),
                merged_at[i],
                rows["evidence_model"][i],
                rows["evidence_event_id"][i],
                rows["window_key"][i],
                ww[i],
                True,
                False,
            ]
        self.load_profiles(np.asarray(rows["from_pid"], dtype=_I64))

    def _load_conflicts(self) -> None:
        t = self.con.sql(f"select * from {STATE}.conflicts").to_arrow_table()
        if not t.num_rows:
            return
        vid = _int(t.column("vid")).tolist()
        n = _int(t.column("active_profiles"), 0).tolist()
        exp = _ts(t.column("expires_at")).tolist()
        ww = _ts(t.column("written_window")).tolist()
        for i, v in enumerate(vid):
            self.conflicts[v] = [n[i], exp[i], ww[i], True, False]
        self.v.ensure(max(vid) + 1)
        self.v.conflict[np.asarray(vid, dtype=_I64)] = True

    # ---- reading ----------------------------------------------------------------------------------------

    def mark_written(self) -> None:
        """After every changed row was handed to the writer (`flush.flush_ops`): the state tables hold the
        cache's rows once it has written them."""
        V, P, M = self.v, self.p, self.m
        V.in_db[: V.n] |= V.dirty[: V.n] & V.reg[: V.n]
        V.dirty[: V.n] = False
        P.in_db[: P.n] |= P.dirty[: P.n]
        P.dirty[: P.n] = False
        M.in_db[: M.n] = M.alive[: M.n] & (M.in_db[: M.n] | M.dirty[: M.n])
        M.dirty[: M.n] = False
        for row in self.redirects.values():
            if row[7]:
                row[6], row[7] = True, False
        for row in self.conflicts.values():
            if row[4]:
                row[3], row[4] = True, False
        self.conflicts_deleted.clear()

    def reserve(self, values: int, profiles: int, memberships: int) -> None:
        """Room for the ids and rows a run expects (no memory is used until rows are written)."""
        self.v.reserve(values)
        self.p.reserve(profiles)
        self.m.reserve(memberships)

    def value_rows(self, vids: np.ndarray) -> np.ndarray:
        """Alive membership rows of these (loaded, distinct) values."""
        M = self.m
        rows = chain_rows(self.v.head, M.next_v, vids, owner_of=M.vid[: M.n], memo=self.chain_memo["v"])
        return rows[M.alive[rows]]

    def wide_rows(self, pids: np.ndarray) -> np.ndarray:
        M = self.m
        rows = chain_rows(
            self.p.head_wide,
            M.next_wide,
            pids,
            owner_of=M.pid[: M.n],
            on_chain=lambda: self.code_wide[M.code[: M.n]],
            memo=self.chain_memo["wide"],
        )
        return rows[M.alive[rows]]

    def profile_rows(self, pids: np.ndarray) -> np.ndarray:
        M = self.m
        rows = chain_rows(
            self.p.head_all, M.next_all, pids, owner_of=M.pid[: M.n], memo=self.chain_memo["all"]
        )
        return rows[M.alive[rows]]

    # ---- journal (the current window's part of its commit's undo log) ----------------------------------

    def begin_window(self, window_ts: int, undo_ts: int) -> None:
        """Start journaling a window. `undo_ts`: the first window of its commit. A row is journaled the first
        time the commit changes it: the undo log keeps it as it was before the commit (`undo.py`)."""
        self.window_ts = int(window_ts)
        self.undo_ts = int(undo_ts)
        self.journal = Journal()

    def fill_ahead(self, pool: Executor) -> None:
        """After a window: have the defaults of the rows the next windows will likely add (twice what this
        window added) written on `pool`, so the first writes to those pages are not on a window's path
        (`Columns.fill_ahead`). Rows filled by the previous call cover most of the next window's rows, so it
        rarely waits for this one."""
        for name in ("v", "p", "m"):
            cols = getattr(self, name)
            grown = cols.n - self._n_before.get(name, 0)
            self._n_before[name] = cols.n
            cols.fill_ahead(pool, 2 * grown)

    def touch_values(self, vids: np.ndarray) -> None:
        """Journal the registry rows of `vids` (those existing before this commit) before they change."""
        first = vids[self.v.ww[vids] < self.undo_ts]
        old = first[self.v.reg[first]]
        if len(old):
            self.journal.registry.append(self.registry_image(old))
        self.v.ww[vids] = self.window_ts
        self.v.dirty[vids] = True

    def touch_profiles(self, pids: np.ndarray) -> None:
        first = pids[self.p.ww[pids] < self.undo_ts]
        old = first[self.p.state[first] > 0]
        if len(old):
            self.journal.profiles.append(self.profile_image(old))
        self.p.ww[pids] = self.window_ts
        self.p.dirty[pids] = True

    def touch_memberships(self, rows: np.ndarray) -> None:
        first = rows[self.m.ww[rows] < self.undo_ts]
        if len(first):
            self.journal.memberships.append(self.membership_image(first))
        self.m.ww[rows] = self.window_ts
        self.m.dirty[rows] = True

    # row images (copies: the next change does not reach them), in the cache's dtypes, read in fused passes
    def registry_image(self, vids: np.ndarray) -> dict[str, np.ndarray]:
        return {"vid": vids.copy(), **_image(self.v, vids, _REGISTRY_IMAGE)}

    def profile_image(self, pids: np.ndarray) -> dict[str, np.ndarray]:
        return {"pid": pids.copy(), **_image(self.p, pids, _PROFILE_IMAGE)}

    def membership_image(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return _image(self.m, rows, _MEMBERSHIP_IMAGE)

    def touch_redirect(self, from_pid: int) -> None:
        row = self.redirects.get(from_pid)
        if row is not None and row[5] < self.undo_ts:
            self.journal.redirects.append((from_pid, list(row)))
        if row is not None:
            row[5] = self.window_ts
            row[7] = True

    def touch_conflict(self, vid: int) -> None:
        row = self.conflicts.get(vid)
        if row is not None and row[2] < self.undo_ts:
            self.journal.conflicts.append((vid, list(row)))
        if row is not None:
            row[2] = self.window_ts
            row[4] = True


def _image(columns: Columns, rows: np.ndarray, names: dict[str, str]) -> dict[str, np.ndarray]:
    return dict(zip(names, columns.take(rows, *names.values()), strict=True))
