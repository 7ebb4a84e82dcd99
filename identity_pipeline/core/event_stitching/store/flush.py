"""Writing a run's in-memory graph back to the state tables (at each commit point and at the end of the run),
and the undo rows of each window (`undo_tables`: the rows its commit changes for the first time).

For each table: the keys of the changed rows that were in DuckDB are deleted, then the current rows are
inserted, all from Arrow (no row goes through Python objects).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import duckdb
import numpy as np
import pyarrow as pa

from identity_pipeline.core.event_stitching.fast_path import NAT
from identity_pipeline.core.event_stitching.store.graph_cache import GraphCache, Journal
from identity_pipeline.core.event_stitching.store.tables import STATE, on_arrow


def _ts(values: np.ndarray) -> pa.Array:
    v = np.asarray(values, dtype=np.int64)
    null = v == NAT
    if not null.any():  # the usual case: no validity bitmap to build
        return pa.array(v).view(pa.timestamp("us"))
    return pa.array(v.view("datetime64[us]"), mask=null, type=pa.timestamp("us"))


def _nullable(values: np.ndarray, null: int = -1) -> pa.Array:
    v = np.asarray(values, dtype=np.int64)
    return pa.array(v, mask=v == null)


def _as(values: np.ndarray, dtype: type) -> pa.Array:
    return pa.array(np.asarray(values).astype(dtype, copy=False))


def registry_table(rows: dict[str, np.ndarray]) -> pa.Table:
    return pa.table(
        {
            "vid": _as(rows["vid"], np.int32),
            "type_code": _as(rows["type_code"], np.int16),
            "first_seen_at": _ts(rows["first_seen_at"]),
            "last_seen_at": _ts(rows["last_seen_at"]),
            "event_count": _as(rows["event_count"], np.int64),
            "quarantined": _as(rows["quarantined"], bool),
            "quarantined_at": _ts(rows["quarantined_at"]),
            "written_window": _ts(rows["written_window"]),
        }
    )


def membership_table(rows: dict[str, np.ndarray]) -> pa.Table:
    return pa.table(
        {
            "pid": _as(rows["pid"], np.int64),
            "vid": _as(rows["vid"], np.int32),
            "type_code": _as(rows["type_code"], np.int16),
            "status": _as(rows["status"], np.uint8),
            "first_seen_at": _ts(rows["first_seen_at"]),
            "last_seen_at": _ts(rows["last_seen_at"]),
            "event_count": _as(rows["event_count"], np.int64),
            "written_window": _ts(rows["written_window"]),
        }
    )


def profile_table(rows: dict[str, np.ndarray]) -> pa.Table:
    return pa.table(
        {
            "pid": _as(rows["pid"], np.int64),
            "pkey": _as(rows["pkey"], np.uint64),
            "created_at": _ts(rows["created_at"]),
            "first_seen_at": _ts(rows["first_seen_at"]),
            "last_seen_at": _ts(rows["last_seen_at"]),
            "status": _as(rows["status"], np.uint8),
            "merged_to": _nullable(rows["merged_to"]),
            "event_count": _as(rows["event_count"], np.int64),
            "is_known": _as(rows["is_known"], bool),
            "written_window": _ts(rows["written_window"]),
        }
    )


def redirect_table(items: list[tuple[int, list]]) -> pa.Table:
    return pa.table(
        {
            "from_pid": pa.array([f for f, _ in items], pa.int64()),
            "to_pid": pa.array([r[0] for _, r in items], pa.int64()),
            "merged_at": _ts(np.array([r[1] for _, r in items], dtype=np.int64)),
            "evidence_model": pa.array([r[2] for _, r in items], pa.string()),
            "evidence_event_id": pa.array([r[3] for _, r in items], pa.string()),
            "window_key": pa.array([r[4] for _, r in items], pa.string()),
            "written_window": _ts(np.array([r[5] for _, r in items], dtype=np.int64)),
        }
    )


def conflict_table(items: list[tuple[int, list]]) -> pa.Table:
    return pa.table(
        {
            "vid": pa.array([v for v, _ in items], pa.int32()),
            "active_profiles": pa.array([r[0] for _, r in items], pa.int64()),
            "expires_at": _ts(np.array([r[1] for _, r in items], dtype=np.int64)),
            "written_window": _ts(np.array([r[2] for _, r in items], dtype=np.int64)),
        }
    )


def _insert(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    if data.num_rows == 0:
        return
    on_arrow(con, "__es_rows", data, f"insert into {STATE}.{table} by name select * from __es_rows")


def _delete(con: duckdb.DuckDBPyConnection, table: str, keys: pa.Table) -> None:
    if keys.num_rows == 0:
        return
    cond = " and ".join(f"t.{k} = d.{k}" for k in keys.column_names)
    on_arrow(con, "__es_keys", keys, f"delete from {STATE}.{table} t using __es_keys d where {cond}")


def undo_tables(journal: Journal, undo_start_us: int) -> dict[str, pa.Table]:
    """A window's rows of its commit's undo log (the rows it changed first in the commit, as they were), as
    Arrow tables by undo table, stamped with the commit's first window."""
    undo_ts = _ts(np.array([undo_start_us], dtype=np.int64))

    def with_window(t: pa.Table) -> pa.Table:
        return t.append_column("undo_window", pa.repeat(undo_ts[0], t.num_rows))

    def cat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    out: dict[str, pa.Table] = {}
    if journal.registry:
        out["undo_registry"] = with_window(registry_table(cat(journal.registry)))
    if journal.profiles:
        out["undo_profiles"] = with_window(profile_table(cat(journal.profiles)))
    if journal.memberships:
        out["undo_memberships"] = with_window(membership_table(cat(journal.memberships)))
    if journal.redirects:
        out["undo_redirects"] = with_window(redirect_table(journal.redirects))
    if journal.conflicts:
        out["undo_conflicts"] = with_window(conflict_table(journal.conflicts))
    return out


def insert_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        _insert(con, name, table)


FlushOp = tuple[str, str, pa.Table]  # ("delete" | "insert", state table, keys or rows)


def flush_ops(cache: GraphCache, written: dict[str, int]) -> Iterator[FlushOp]:
    """Every row the run changed since the last write, as Arrow tables (copies: later changes to the cache do
    not reach them), one table at a time; `written` receives the number of rows written per table.
    `write_ops` writes them."""
    V, P, M = cache.v, cache.p, cache.m
    vids = np.flatnonzero(V.dirty[: V.n])
    yield ("delete", "registry", pa.table({"vid": pa.array(vids[V.in_db[vids]].astype(np.int32))}))
    reg = vids[V.reg[vids]]
    yield ("insert", "registry", registry_table(cache.registry_image(reg)))
    written["registry"] = len(reg)

    pids = np.flatnonzero(P.dirty[: P.n])
    yield ("delete", "profiles", pa.table({"pid": pa.array(pids[P.in_db[pids]].astype(np.int64))}))
    yield ("insert", "profiles", profile_table(cache.profile_image(pids)))
    written["profiles"] = len(pids)

    rows = np.flatnonzero(M.dirty[: M.n])
    old = rows[M.in_db[rows]]
    if len(old):
        # a (pid, vid) can occur on several of these rows: the delete's join takes repeated keys as they are
        pairs = {"pid": pa.array(M.pid[old].astype(np.int64)), "vid": pa.array(M.vid[old].astype(np.int32))}
        yield ("delete", "memberships", pa.table(pairs))
    live = rows[M.alive[rows]]
    yield ("insert", "memberships", membership_table(cache.membership_image(live)))
    written["memberships"] = len(live)

    red = [(f, r) for f, r in cache.redirects.items() if r[7]]
    yield ("delete", "redirects", pa.table({"from_pid": pa.array([f for f, r in red if r[6]], pa.int64())}))
    yield ("insert", "redirects", redirect_table(red))
    written["redirects"] = len(red)

    con_rows = [(v, r) for v, r in cache.conflicts.items() if r[4]]
    gone = sorted(cache.conflicts_deleted | {v for v, r in con_rows if r[3]})
    yield ("delete", "conflicts", pa.table({"vid": pa.array(gone, pa.int32())}))
    yield ("insert", "conflicts", conflict_table(con_rows))
    written["conflicts"] = len(con_rows)


def write_ops(con: duckdb.DuckDBPyConnection, ops: Iterable[FlushOp]) -> None:
    """Apply `flush_ops` to the state tables, in order (a table's deletes before its inserts)."""
    for op, table, data in ops:
        (_delete if op == "delete" else _insert)(con, table, data)
