"""Rolling windows back: every state row carries the window that last wrote it (`written_window`), and the
undo log (`es_state.undo_<table>`) holds, per commit of a run, the rows its windows replaced or removed, as
they were before the commit's first window. Each processed window records the first window of its commit
(`es_state.windows.undo_window`; null in files written when each window had its own undo log, which is the
same thing for a commit of one window).

Rolling a commit back deletes the rows its windows wrote and puts its undo rows back; done newest commit
first, the state tables then hold exactly the state before the oldest rolled-back commit. Re-running a window
in the middle of a commit rolls back the whole commit: the windows of that commit before it are then
stitched again from their staged rows (`StitchRun` replays them, keeping their outputs), which gives the same
state because the engine is deterministic. The cost follows the rolled-back windows, not the history.

Why per commit and not per window: a row that several windows of one commit change is journaled once, and a
row created inside the commit not at all. On the 30-window benchmark (commits of 10 windows) that is 7.1M
undo rows instead of 24.6M (docs/benchmarks.md).
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from identity_pipeline.core.event_stitching.store.tables import (
    OUT,
    STAGE,
    STATE,
    STATE_TABLES,
    WindowOrderError,
)

_COMMIT = "coalesce(undo_window, window_start)"


def rollback_commit(con: duckdb.DuckDBPyConnection, undo_start: datetime) -> None:
    """Undo the state changes of the commit whose first window starts at `undo_start` (it must be the newest
    commit whose state is in the tables)."""
    for name, cols in STATE_TABLES.items():
        col_list = ", ".join(cols)
        con.execute(f"delete from {STATE}.{name} where written_window >= ?", [undo_start]).fetchall()
        con.execute(
            f"insert into {STATE}.{name} select {col_list} from {STATE}.undo_{name} where undo_window = ?",
            [undo_start],
        ).fetchall()
        con.execute(f"delete from {STATE}.undo_{name} where undo_window = ?", [undo_start]).fetchall()


def rollback_from(
    con: duckdb.DuckDBPyConnection, start: datetime, keep_outputs_after: datetime | None
) -> list[datetime]:
    """Roll back every processed window starting at or after `start`, newest commit first, with the windows
    that share a commit with them. The windows from `start` up to `keep_outputs_after` (exclusive) are about
    to be re-run: their rows in `es_state.windows` go (their outputs are replaced when they run); later ones
    keep their outputs and become `outdated`. Returns the starts of the processed windows before `start` that
    were rolled back with it (its commit's earlier windows), oldest first, now `outdated`: the caller stitches
    them again before `start`, from their staged rows, keeping their outputs, and marks them `processed`."""
    row = con.execute(
        f"select {_COMMIT} from {STATE}.windows where window_start = ? and status = 'processed'", [start]
    ).fetchall()
    first = row[0][0] if row else start
    replay = [
        r[0]
        for r in con.execute(
            f"select window_start from {STATE}.windows "
            "where window_start >= ? and window_start < ? and status = 'processed' order by window_start",
            [first, start],
        ).fetchall()
    ]
    _check_replayable(con, replay, start)
    commits = con.execute(
        f"select distinct {_COMMIT} as c from {STATE}.windows "
        "where window_start >= ? and status = 'processed' order by c desc",
        [first],
    ).fetchall()
    for (c,) in commits:
        rollback_commit(con, c)
    # `outdated` until replayed: a commit point during the replay, then a failure, must not leave them
    # looking processed over a state that does not hold them yet
    con.execute(
        f"update {STATE}.windows set status = 'outdated' where window_start >= ? and window_start < ?",
        [first, start],
    ).fetchall()
    if keep_outputs_after is None:
        con.execute(f"delete from {STATE}.windows where window_start >= ?", [start]).fetchall()
    else:
        con.execute(
            f"delete from {STATE}.windows where window_start >= ? and window_start < ?",
            [start, keep_outputs_after],
        ).fetchall()
        con.execute(
            f"update {STATE}.windows set status = 'outdated' where window_start >= ?", [keep_outputs_after]
        ).fetchall()
    return replay


def _check_replayable(con: duckdb.DuckDBPyConnection, replay: list[datetime], start: datetime) -> None:
    """A window stitched again must have the staged rows it was stitched from: one re-staged since would give
    another state than its published outputs say."""
    if not replay:
        return
    row = con.execute(
        f"""select w.window_key from {STATE}.windows w join {STAGE}.stage_log s using (window_key)
            where w.window_start >= ? and w.window_start < ? and s.staged_at > w.processed_at
            order by w.window_start limit 1""",
        [replay[0], start],
    ).fetchall()
    if row:
        raise WindowOrderError(
            f"window {row[0][0]} was staged again after it was stitched, and it was committed together with "
            f"the window being re-run (one undo log), so it would be stitched again from other rows than its "
            f"outputs; re-run the windows from {row[0][0]} on instead"
        )


def delete_outputs(con: duckdb.DuckDBPyConnection, window_key: str) -> None:
    for table in ("attribution", "audit_events", "run_metrics"):
        con.execute(f"delete from {OUT}.{table} where window_key = ?", [window_key]).fetchall()
