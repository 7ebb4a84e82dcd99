"""`stitch_window_batched`: one window through the fast path's steps (see the package docstring)."""

from __future__ import annotations

import pandas as pd

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.batched.arrays import isin
from identity_pipeline.core.event_stitching.batched.complex_path import run_complex_components
from identity_pipeline.core.event_stitching.batched.outputs import attribution_frame, audit_frame
from identity_pipeline.core.event_stitching.batched.split import created_profile_ids, split_components
from identity_pipeline.core.event_stitching.batched.state_update import updated_state
from identity_pipeline.core.event_stitching.batched.targets import decide_targets
from identity_pipeline.core.event_stitching.batched.window_input import read_window
from identity_pipeline.core.event_stitching.engine import WindowResult, build_result
from identity_pipeline.core.event_stitching.metrics import window_metrics
from identity_pipeline.core.event_stitching.reference import Context, run_reference
from identity_pipeline.core.event_stitching.state import GraphState


def _reference(
    state: GraphState,
    events: pd.DataFrame | None,
    observations: pd.DataFrame | None,
    config: EventStitchingConfig,
    window_key: str,
) -> WindowResult:
    g, ctx = run_reference(state, events, observations, config, window_key)
    res = build_result(g, ctx, observations)
    res.metrics["events_fast_path"] = 0
    return res


def stitch_window_batched(
    state: GraphState,
    events: pd.DataFrame | None,
    observations: pd.DataFrame | None,
    config: EventStitchingConfig,
    window_key: str,
) -> WindowResult:
    """The reference's WindowResult for this window, computed by components (falls back to the reference
    for the whole window when the split cannot reproduce it)."""
    ctx = Context.build(config, window_key)
    ids = config.identifiers
    w = read_window(state, events, observations, ctx, window_key)
    if w is None:
        return _reference(state, events, observations, config, window_key)
    s = split_components(w, ctx, ids)
    cand, cand_pid = created_profile_ids(w, s)
    if w.nP and len(cand) and isin(cand_pid, w.p_ids).any():
        # a created id would collide with a loaded profile (the reference would derive another id)
        return _reference(state, events, observations, config, window_key)
    cx = run_complex_components(w, s, events, observations, config, window_key)
    tg = decide_targets(w, s, ctx, ids, cand, cand_pid)
    attribution = attribution_frame(w, s, tg, cx, ctx, window_key)
    audit = audit_frame(w, tg, cx, window_key)
    anchor_types = [t for t in ids if ids[t].anchor]
    new_state, n_simple_created = updated_state(w, s, tg, cx, anchor_types, cand, cand_pid, window_key)
    mg = tg.mg
    created = n_simple_created + cx.created + (len(mg.new_g) if mg is not None else 0)
    merged = cx.merged + (len(mg.m_pos) if mg is not None else 0)
    metrics, by_model, by_type = window_metrics(attribution, audit, observations, created, merged)
    metrics["events_fast_path"] = int(tg.ev_fast.sum() + s.ev_excluded.sum())
    return WindowResult(
        state=new_state,
        attribution=attribution,
        audit_events=audit,
        metrics=metrics,
        metrics_by_model=by_model,
        metrics_by_identifier_type=by_type,
    )
