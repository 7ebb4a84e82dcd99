"""`stitch_arrays`: one window through the fast path's steps (see the package docstring)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from identity_pipeline.core.event_stitching.fast_path.complex_path import part_rows, run_part
from identity_pipeline.core.event_stitching.fast_path.inputs import (
    NAT,
    CreatedIdCollision,
    Policy,
    Subgraph,
    WindowEvents,
)
from identity_pipeline.core.event_stitching.fast_path.merge_walk import merge_walk
from identity_pipeline.core.event_stitching.fast_path.outcome import WindowOutcome
from identity_pipeline.core.event_stitching.fast_path.outputs import attribution, audits
from identity_pipeline.core.event_stitching.fast_path.split import present, split_window
from identity_pipeline.core.event_stitching.fast_path.updates import assemble, fast_targets
from identity_pipeline.core.event_stitching.rules.quarantine import release_applies


def apply_releases(sub: Subgraph, win: WindowEvents) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Quarantine flags after `released_values` (`reference.apply_releases`), and the released rows."""
    quar, quar_at = sub.v_quar, sub.v_quar_at
    released: list[int] = []
    for v, at in win.released:
        if sub.v_reg[v] and quar[v] and release_applies(None if quar_at[v] == NAT else int(quar_at[v]), at):
            if not released:
                quar, quar_at = quar.copy(), quar_at.copy()
            quar[v], quar_at[v] = False, NAT
            released.append(v)
    return quar, quar_at, released


def _loaded(sub: Subgraph, keys: np.ndarray) -> np.ndarray:
    """Which of these created ids a profile of the subgraph has already."""
    if sub.nP == 0 or len(keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    return pd.Index(sub.p_key).get_indexer(keys) >= 0


def _collides(keys: np.ndarray, loaded: np.ndarray) -> bool:
    """A profile an event would create has the id of a loaded profile or of another event's (the reference
    then derives another id from its sequence number): only the reference reproduces that."""
    return bool(len(keys) and (loaded.any() or pd.Index(keys).has_duplicates))


def _keys_of(win: WindowEvents, candidates: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """All events' created ids with the candidates' filled in (the others are never read)."""
    out = np.zeros(win.nE, dtype=np.uint64)
    out[candidates] = keys
    return out


def stitch_arrays(sub: Subgraph, win: WindowEvents, pol: Policy, window_key: str) -> WindowOutcome:
    """The reference's decisions for this window, computed by components.

    Falls back to the reference for the whole window when a created id would collide (see `_collides`)."""
    v_quar, v_quar_at, released = apply_releases(sub, win)
    s = split_window(sub, win, pol, v_quar)
    candidates = np.flatnonzero((s.creator & s.ev_fast) | s.ev_hard)
    keys = win.keys(candidates)
    loaded = _loaded(sub, keys)
    if win.key_exists is not None and len(keys):
        # ids of profiles outside the subgraph: even the reference cannot see those, so they are loaded first
        outside = keys[~loaded]
        exists = np.asarray(win.key_exists(outside), dtype=bool)
        if exists.any():
            raise CreatedIdCollision(outside[exists])
    fallback = _collides(keys, loaded)
    win = replace(win, e_key=_keys_of(win, candidates, keys)) if win.e_key is None else win
    if fallback:
        s.ev_simple[:] = False
        s.ev_merge[:] = False
        s.ev_hard[:] = True
        s.complex_c[:] = True
        s.hard_c[:] = True
    part = None
    if s.ev_hard.any():
        if fallback:
            events, profiles = np.arange(win.nE), np.arange(sub.nP)
        else:
            events = np.flatnonzero(s.ev_hard)
            linked = present(sub.m_p[s.m_link], sub.nP)
            profiles = np.flatnonzero(linked & s.hard_c[s.c_p])
        part = part_rows(sub, win, events, profiles)
        prefetch = getattr(win.names, "prefetch", None)
        if prefetch is not None:  # the strings may come while the merge walk runs
            prefetch(part.values)
    mg = None if fallback else merge_walk(sub, win, pol, s)
    cx = None if part is None else run_part(sub, win, pol, v_quar, v_quar_at, part, window_key)
    tg = fast_targets(sub, s, mg)
    asm = assemble(sub, win, pol, s, tg, mg, cx, v_quar, v_quar_at, released)
    a = attribution(sub, win, s, tg, cx, asm)
    au = audits(win, s, mg, cx, asm, released)
    n_merged = (int(mg.merged.sum()) if mg is not None else 0) + (cx.merged if cx is not None else 0)
    return WindowOutcome(
        changes=asm.changes,
        a_status=a[0],
        a_reason=a[1],
        a_profile=a[2],
        a_type=a[3],
        a_value=a[4],
        au_e=au[0],
        au_kind=au[1],
        au_v=au[2],
        au_p=au[3],
        au_other=au[4],
        au_detail=au[5],
        r_from=asm.seq_of_ref[asm.r_from],
        r_to=asm.seq_of_ref[asm.r_to],
        r_at=asm.r_at,
        r_e=asm.r_e,
        profiles_created=len(asm.created_events),
        profiles_merged=n_merged,
        events_fast_path=0 if fallback else int(s.ev_fast.sum() + (~s.ev_usable).sum()),
    )
