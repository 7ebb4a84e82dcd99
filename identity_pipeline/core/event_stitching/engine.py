"""`stitch_window()`: one window of events against the graph state -> WindowResult.

The engine is pure (no I/O, no Dagster), on frames: a `GraphState` (the whole graph or the subgraph a window
touches) and the window's events and observations. By default it runs the fast path (`fast_path/`, through
the frame adapter `frames.py`), which must give the reference's (`reference.py`) outputs exactly. The
pipeline's store (`store/`) calls the fast path directly on integer-coded arrays (`fast_path.stitch_arrays`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.metrics import window_metrics
from identity_pipeline.core.event_stitching.reference import Context, run_reference
from identity_pipeline.core.event_stitching.state import NAT, GraphState

ATTRIBUTION_COLUMNS = [
    "model",
    "event_id",
    "event_ts",
    "window_key",
    "dinmo_stitched_profile_id",
    "status",
    "reason",
    "decided_by_identifier_type",
    "decided_by_value",
]
AUDIT_COLUMNS = [
    "window_key",
    "event_ts",
    "audit_type",
    "identifier_type",
    "value",
    "dinmo_stitched_profile_id",
    "other_dinmo_stitched_profile_id",
    "model",
    "event_id",
    "detail",
]
AUDIT_TYPES = (
    "blocked_value",
    "expired_value",
    "quarantined_value",
    "released_value",
    "demoted_value",
    "reactivated_value",
    "merge",
    "limit_conflict",
)


@dataclass
class WindowResult:
    state: GraphState
    attribution: pd.DataFrame
    audit_events: pd.DataFrame
    metrics: dict[str, float]
    metrics_by_model: pd.DataFrame
    metrics_by_identifier_type: pd.DataFrame


def _rows_to_frame(rows: list[tuple], columns: list[str], ts_col: str) -> pd.DataFrame:
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    out = {}
    for c in columns:
        if c == ts_col:
            arr = np.array([NAT if v is None else v for v in data[c]], dtype=np.int64).view("datetime64[us]")
            out[c] = pd.Series(arr, dtype="datetime64[us]")
        else:
            out[c] = pd.Series(data[c], dtype="object")
    return pd.DataFrame(out, columns=columns)


def build_result(g, ctx: Context, observations: pd.DataFrame) -> WindowResult:
    """Frames + metrics from a path's raw rows (shared by every path so outputs are identical)."""
    attribution = _rows_to_frame(ctx.attribution, ATTRIBUTION_COLUMNS, "event_ts")
    audit = _rows_to_frame(ctx.audits, AUDIT_COLUMNS, "event_ts")
    metrics, by_model, by_type = window_metrics(
        attribution, audit, observations, ctx.profiles_created, ctx.profiles_merged
    )
    return WindowResult(
        state=g.to_state(),
        attribution=attribution,
        audit_events=audit,
        metrics=metrics,
        metrics_by_model=by_model,
        metrics_by_identifier_type=by_type,
    )


def stitch_window(
    state: GraphState,
    events: pd.DataFrame,
    observations: pd.DataFrame,
    config: EventStitchingConfig,
    window_key: str,
    use_fast_path: bool = True,
) -> WindowResult:
    """Stitch one window's events (processed in (event_ts, model, event_id) order) onto `state`.

    `state` may be the whole graph or the subgraph the window touches (see `GraphState.subgraph`); the
    decisions are the same. The returned state holds the same tables, updated. `use_fast_path` (default) takes
    the fast path (`fast_path/`, tested equal to the reference); False runs only the reference.
    """
    if use_fast_path:
        from identity_pipeline.core.event_stitching.frames import stitch_frames

        return stitch_frames(state, events, observations, config, window_key)
    g, ctx = run_reference(state, events, observations, config, window_key)
    return build_result(g, ctx, observations)
