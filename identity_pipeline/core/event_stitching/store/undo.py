"""Rolling windows back: every state row carries the window that last wrote it (`written_window`), and each
window's undo log (`es_state.undo_<table>`) holds the rows it replaced or removed, as they were.

Rolling window W back deletes the rows W wrote and puts its undo rows back; done newest window first, the
state tables then hold exactly the state before the oldest rolled-back window. That is what re-running an
earlier window needs, at a cost that follows the rolled-back windows' changes, not the history.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from identity_pipeline.core.event_stitching.store.tables import OUT, STATE, STATE_TABLES


def rollback_window(con: duckdb.DuckDBPyConnection, start: datetime) -> None:
    """Undo one window's state changes (it must be the newest window whose state is in the tables)."""
    for name, cols in STATE_TABLES.items():
        col_list = ", ".join(cols)
        con.execute(f"delete from {STATE}.{name} where written_window = ?", [start]).fetchall()
        con.execute(
            f"insert into {STATE}.{name} select {col_list} from {STATE}.undo_{name} where undo_window = ?",
            [start],
        ).fetchall()
        con.execute(f"delete from {STATE}.undo_{name} where undo_window = ?", [start]).fetchall()


def rollback_from(
    con: duckdb.DuckDBPyConnection, start: datetime, keep_outputs_after: datetime | None
) -> list:
    """Roll back every processed window starting at or after `start`, newest first. The windows from `start`
    up to `keep_outputs_after` (exclusive) are about to be re-run: their rows in `es_state.windows` go (their
    outputs are replaced when they run); later ones keep their outputs and become `outdated`. Returns the keys
    of the windows rolled back."""
    rows = con.execute(
        f"select window_key, window_start from {STATE}.windows "
        "where window_start >= ? and status = 'processed' order by window_start desc",
        [start],
    ).fetchall()
    for _, ws in rows:
        rollback_window(con, ws)
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
    return [k for k, _ in rows]


def delete_outputs(con: duckdb.DuckDBPyConnection, window_key: str) -> None:
    for table in ("attribution", "audit_events", "run_metrics"):
        con.execute(f"delete from {OUT}.{table} where window_key = ?", [window_key]).fetchall()
