"""Saving a window in one transaction: state diffs as versions, live tables, outputs and metrics; and
`process_window`, which loads, stitches and saves one window."""

from __future__ import annotations

import time
from typing import Any

import duckdb
import pandas as pd

from identity_pipeline.core.event_stitching.store.conflicts import _active_conflicts_at, _update_conflicts
from identity_pipeline.core.event_stitching.store.diffs import _state_fingerprint, _write_state_diff
from identity_pipeline.core.event_stitching.store.live_state import (
    _set_live_as_of,
    carry_unloaded_rows,
    ensure_live,
    load_subgraph,
)
from identity_pipeline.core.event_stitching.store.tables import (
    ATTRIBUTION_COLUMNS,
    OUT,
    STATE,
    STATE_COLUMNS,
    ensure_schema,
)
from identity_pipeline.core.event_stitching.store.views import publish_views
from identity_pipeline.core.event_stitching.store.windows import Window, check_predecessor
from identity_pipeline.core.source_io import quote_ident
from identity_pipeline.core.storage import first_row, transaction


def _profile_totals_delta(
    con: duckdb.DuckDBPyConnection, new: pd.DataFrame, old: pd.DataFrame
) -> tuple[int, int]:
    def totals(df: pd.DataFrame) -> tuple[int, int]:
        if df is None or len(df) == 0:
            return 0, 0
        active = df["status"].astype(str) == "active"
        known = active & df["is_known"].fillna(False).astype(bool)
        return int(active.sum()), int(known.sum())

    a_new, k_new = totals(new)
    a_old, k_old = totals(old)
    return a_new - a_old, k_new - k_old


def _metrics_rows(
    window: Window, metrics: dict[str, Any], by_model: pd.DataFrame | None, by_type: pd.DataFrame | None
) -> pd.DataFrame:
    rows: list[tuple[str, str | None, str, float]] = []
    for k, v in metrics.items():
        num = _as_number(v)
        if num is not None:
            rows.append(("window", None, str(k), num))
    for breakdown, df, col in (("model", by_model, "model"), ("identifier_type", by_type, "identifier_type")):
        if df is None or len(df) == 0:
            continue
        key_col = col if col in df.columns else df.columns[0]
        for rec in df.to_dict("records"):
            for k, v in rec.items():
                if k == key_col:
                    continue
                num = _as_number(v)
                if num is not None:
                    rows.append((breakdown, str(rec[key_col]), str(k), num))
    out = pd.DataFrame(rows, columns=["breakdown", "breakdown_value", "metric", "value"])
    out.insert(0, "window_start", window.start)
    out.insert(0, "window_key", window.key)
    return out


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _insert_by_name(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, window_key: str) -> None:
    """Insert the frame's columns that the table has, by name; `window_key` forced to this window."""
    if df is None or len(df) == 0:
        return
    cols = [r[0] for r in con.execute(f"describe {table}").fetchall()]
    df = df.copy()
    df["window_key"] = window_key
    keep = [c for c in df.columns if c in cols]
    extra = [c for c in df.columns if c not in cols]
    if extra and "detail" in cols and "detail" not in df.columns:
        df["detail"] = (
            df[extra].astype(str).agg(lambda r: "; ".join(f"{c}={v}" for c, v in r.items()), axis=1)
        )
        keep.append("detail")
    con.register("__es_ins", df[keep])
    try:
        sel = ", ".join(quote_ident(c) for c in keep)
        con.execute(f"insert into {table} by name select {sel} from __es_ins").fetchall()
    finally:
        con.unregister("__es_ins")


def save_window(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window: Window,
    result: Any,
    loaded_state: Any,
    *,
    events: int,
    started: float | None = None,
) -> dict[str, float]:
    """Persist one window in one transaction: replace the window's state versions and outputs.

    Returns the window-level metrics written to `identity_event_profile_run_metrics`.
    """
    ensure_live(con, window.start)
    old_fp_row = first_row(
        con.execute(f"select state_fingerprint from {STATE}.windows where window_key = ?", [window.key])
    )
    prev_totals = first_row(
        con.execute(
            f"select active_profiles, known_profiles from {STATE}.windows where window_start < ? "
            "order by window_start desc limit 1",
            [window.start],
        )
    )
    d_active, d_known = _profile_totals_delta(con, result.state.profiles, loaded_state.profiles)
    active = int(prev_totals[0] or 0) + d_active if prev_totals else d_active
    known = int(prev_totals[1] or 0) + d_known if prev_totals else d_known

    with transaction(con):
        if old_fp_row is not None:  # a re-run: replace the window's rows (all written with its windows row)
            for name in (*STATE_COLUMNS, "value_conflicts"):
                con.execute(
                    f"delete from {STATE}.{name} where version_window_key = ?", [window.key]
                ).fetchall()
            for table in ("attribution", "audit_events", "run_metrics"):
                con.execute(f"delete from {OUT}.{table} where window_key = ?", [window.key]).fetchall()
        for name in STATE_COLUMNS:
            _write_state_diff(con, name, getattr(result.state, name), getattr(loaded_state, name), window)
        _update_conflicts(con, config, window)
        active_conflicts = _active_conflicts_at(con, window)

        attribution = result.attribution.copy()
        attribution["window_key"] = window.key
        con.register("__es_attr", attribution)
        try:
            cols = ", ".join(
                f"cast({quote_ident(c)} as {t}) as {quote_ident(c)}" for c, t in ATTRIBUTION_COLUMNS.items()
            )
            con.execute(
                f"insert into {OUT}.attribution select {cols} from __es_attr "
                "order by event_ts, model, event_id"
            ).fetchall()
        finally:
            con.unregister("__es_attr")
        _insert_by_name(con, f"{OUT}.audit_events", result.audit_events, window.key)

        metrics = {k: v for k, v in dict(result.metrics).items() if _as_number(v) is not None}
        metrics.setdefault("events_processed", float(events))
        metrics.update(
            {
                "active_profiles": float(active),
                "known_profiles": float(known),
                "known_profile_share": float(known / active) if active else 0.0,
                "active_conflicts": float(active_conflicts),
            }
        )
        duration = time.perf_counter() - started if started is not None else 0.0
        metrics["duration_seconds"] = float(duration)
        rows = _metrics_rows(window, metrics, result.metrics_by_model, result.metrics_by_identifier_type)
        con.register("__es_metrics", rows)
        try:
            con.execute(f"insert into {OUT}.run_metrics by name select * from __es_metrics").fetchall()
        finally:
            con.unregister("__es_metrics")

        fingerprint = _state_fingerprint(con)
        _set_live_as_of(con, window.end)
        next_seq = int(result.state.next_sequence)
        changed = old_fp_row is not None and int(old_fp_row[0] or 0) != fingerprint
        con.execute(f"delete from {STATE}.windows where window_key = ?", [window.key]).fetchall()
        con.execute(
            f"insert into {STATE}.windows values (?, ?, ?, now()::TIMESTAMP, ?, 'processed', ?, ?, ?, ?, ?)",
            [window.key, window.start, window.end, events, duration, next_seq, active, known, fingerprint],
        ).fetchall()
        if changed:
            con.execute(
                f"update {STATE}.windows set status = 'outdated' "
                "where window_start > ? and status = 'processed'",
                [window.start],
            ).fetchall()
        publish_views(con, config)
    return metrics


def _event_keys_usable(events: pd.DataFrame, observations: pd.DataFrame) -> bool:
    """`ekey` names one event of the window: distinct over the events (whose (model, event_id) the staging
    checked unique), and every observation's key is an event's. Otherwise (a 64-bit collision among the
    window's events, or frames without keys) the engine hashes the strings instead."""
    if "ekey" not in events.columns or "ekey" not in observations.columns:
        return False
    ev = events["ekey"].to_numpy()
    if pd.Series(ev).duplicated().any():
        return False
    return bool(pd.Series(observations["ekey"].to_numpy()).isin(ev).all())


def process_window(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window: Window,
    events: pd.DataFrame,
    observations: pd.DataFrame,
) -> dict[str, float]:
    """Check order, load the touched subgraph, stitch, save. Returns the window's metrics."""
    from identity_pipeline.core.event_stitching.engine import stitch_window

    started = time.perf_counter()
    ensure_schema(con)
    check_predecessor(con, config, window)
    if not _event_keys_usable(events, observations):
        events = events.drop(columns="ekey", errors="ignore")
        observations = observations.drop(columns="ekey", errors="ignore")
    loaded = load_subgraph(con, observations, window, config)
    t_load = time.perf_counter()
    result = stitch_window(loaded, events, observations, config, window.key)
    t_stitch = time.perf_counter()
    loaded, state = carry_unloaded_rows(con, config, window, loaded, result.state)
    result.state = state
    t_carry = time.perf_counter()
    metrics = save_window(con, config, window, result, loaded, events=len(events), started=started)
    LAST_TIMINGS.clear()
    LAST_TIMINGS.update(
        load_s=t_load - started,
        stitch_s=t_stitch - t_load,
        carry_s=t_carry - t_stitch,
        save_s=time.perf_counter() - t_carry,
        loaded_profiles=len(loaded.profiles),
        loaded_memberships=len(loaded.profile_values),
    )
    return metrics


# seconds spent in each step of the last `process_window` and the size of its subgraph (for benchmarks)
LAST_TIMINGS: dict[str, float] = {}
