"""Fast path, third step: COMPLEX components go through the reference, together, on just their events
and the subgraph their values reach (their profiles, the redirects into them, their values' registry rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.batched.arrays import isin, state_frame, take
from identity_pipeline.core.event_stitching.batched.split import Split
from identity_pipeline.core.event_stitching.batched.window_input import WindowInput
from identity_pipeline.core.event_stitching.reference import run_reference
from identity_pipeline.core.event_stitching.state import (
    PROFILE_COLUMNS,
    PROFILE_VALUE_COLUMNS,
    REDIRECT_COLUMNS,
    REGISTRY_COLUMNS,
    GraphState,
)


@dataclass
class ComplexPart:
    """What the reference decided for the complex components, and which loaded rows it took over (the
    `*_sel` masks: those rows are replaced by `state`'s)."""

    p_sel: np.ndarray
    mem_sel: np.ndarray
    reg_sel: np.ndarray
    red_sel: np.ndarray
    pos_of: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, event_id) -> position
    state: GraphState | None = None
    created: int = 0
    merged: int = 0
    attribution: list[tuple] = field(default_factory=list)
    audits: list[tuple] = field(default_factory=list)


def run_complex_components(
    w: WindowInput,
    s: Split,
    events: pd.DataFrame | None,
    observations: pd.DataFrame | None,
    config: EventStitchingConfig,
    window_key: str,
) -> ComplexPart:
    cx_pos = np.flatnonzero(s.ev_complex)
    if not len(cx_pos):
        return ComplexPart(
            p_sel=np.zeros(w.nP, dtype=bool),
            mem_sel=np.zeros(len(w.m_p), dtype=bool),
            reg_sel=np.zeros(len(w.r_key), dtype=bool),
            red_sel=np.zeros(len(w.D["from_id"]), dtype=bool),
        )
    pos_of = dict(
        zip(zip(w.e_m[cx_pos].tolist(), w.e_e[cx_pos].tolist(), strict=True), cx_pos.tolist(), strict=True)
    )
    cx_comp = np.zeros(s.n_comp, dtype=bool)
    cx_comp[s.c_ev[cx_pos]] = True
    cx_prof = s.linked_p[cx_comp[s.c_prof[s.linked_p]]]
    cx_prof_ids = w.p_ids[cx_prof]
    red_sel = isin(w.D["to_id"], cx_prof_ids)
    p_sel = isin(w.p_ids, np.concatenate([cx_prof_ids, w.D["from_id"][red_sel]]))
    mem_sel = np.isin(w.m_p, cx_prof)
    cx_ev_keys = w.ev_key[cx_pos]
    cx_keys = w.ob["key"].to_numpy()[s.ev_complex[w.ob["pos"].to_numpy()]]
    reg_sel = isin(w.r_key, cx_keys)
    sub = GraphState(
        profiles=state_frame(PROFILE_COLUMNS, take(w.P, p_sel)),
        profile_values=state_frame(PROFILE_VALUE_COLUMNS, take(w.M, mem_sel)),
        value_registry=state_frame(REGISTRY_COLUMNS, take(w.R, reg_sel)),
        redirects=state_frame(REDIRECT_COLUMNS, take(w.D, red_sel)),
        next_sequence=w.next_seq,
    )
    has_events = events is not None and len(events) > 0
    has_obs = observations is not None and len(observations) > 0
    cx_events = events[isin(w.ev_key_in, cx_ev_keys)] if has_events else None
    cx_obs = observations[isin(w.obs_event_key, cx_ev_keys)] if has_obs else observations
    g, cctx = run_reference(sub, cx_events, cx_obs, config, window_key)
    return ComplexPart(
        p_sel=p_sel,
        mem_sel=mem_sel,
        reg_sel=reg_sel,
        red_sel=red_sel,
        pos_of=pos_of,
        state=g.to_state(),
        created=cctx.profiles_created,
        merged=cctx.profiles_merged,
        attribution=cctx.attribution,
        # blocked values are audited by the fast path for every event (once per value and window)
        audits=[a for a in cctx.audits if a[2] != "blocked_value"],
    )
