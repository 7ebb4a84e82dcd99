"""Fast path, fourth step: the profile each SIMPLE or MERGE component's events attach to, and the value that
decides each event (its first value in walk order that was already known, or the creator's first value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identity_pipeline.core.event_stitching.batched.arrays import BIG, argsort_rows
from identity_pipeline.core.event_stitching.batched.merge_walk import MergeWalk, merge_walk
from identity_pipeline.core.event_stitching.batched.split import Split
from identity_pipeline.core.event_stitching.batched.window_input import WindowInput
from identity_pipeline.core.event_stitching.reference import Context


@dataclass
class Targets:
    comp_target: np.ndarray  # per component: the profile id its events end on (simple and merge components)
    comp_new: np.ndarray  # per component: a simple component creating its profile
    comp_creator: np.ndarray  # per component: that creator's position (-1)
    hp: np.ndarray  # per component: a simple component on a loaded profile
    key_of_rank: np.ndarray  # walk order (priority, type, value) -> key
    ev_fast: np.ndarray  # per event: decided here (simple or merge component)
    fast_pos: np.ndarray  # their positions
    u_fast: np.ndarray  # per usable edge: of such an event
    dec: np.ndarray  # per event: walk rank of its deciding key
    mg: MergeWalk | None

    def decided_by(self, w: WindowInput, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(identifier_type, value) deciding the events at `pos`."""
        if not len(pos):
            return np.empty(0, object), np.empty(0, object)
        k = self.key_of_rank[self.dec[pos]]
        return w.k_t[k], w.k_v[k]


def decide_targets(
    w: WindowInput, s: Split, ctx: Context, ids: dict, cand: np.ndarray, cand_pid: np.ndarray
) -> Targets:
    comp_target = np.full(s.n_comp, None, dtype=object)
    comp_new = np.zeros(s.n_comp, dtype=bool)
    cr = np.flatnonzero(s.creator & s.ev_simple)
    comp_target[s.c_ev[cr]] = cand_pid[np.searchsorted(cand, cr)]  # cr is a subset of the sorted cand
    comp_new[s.c_ev[cr]] = True
    comp_creator = np.full(s.n_comp, -1, dtype=np.int64)
    comp_creator[s.c_ev[cr]] = cr
    hp = s.has_p & ~s.complex_c
    comp_target[hp] = w.P["dinmo_stitched_profile_id"][s.comp_P[hp]]

    # walk rank of keys: (priority, type, value)
    if w.nK:
        prio = np.array([ctx.priority[t] for t in w.k_t], dtype=np.int64)
        key_of_rank = argsort_rows(prio, w.k_t, w.k_v)
        rank = np.empty(w.nK, dtype=np.int64)
        rank[key_of_rank] = np.arange(w.nK)
    else:
        rank = np.empty(0, np.int64)
        key_of_rank = np.empty(0, np.int64)

    mg = merge_walk(w, s, rank, ids, cand, cand_pid)
    if mg is not None:  # merge components end on their final survivor
        root_of_ev = np.array([mg.root[g] for g in mg.ev_g], dtype=np.int64)
        comp_target[s.c_ev[mg.ev]] = mg.pid[root_of_ev]

    ev_fast = s.ev_simple | s.ev_merge  # aggregates treat merge components like simple ones
    u_fast = ev_fast[w.u_pos]
    eff = np.where(s.known_before | s.creator[w.u_pos], rank[w.u_k], BIG)
    dec = np.full(w.nE, BIG, dtype=np.int64)
    np.minimum.at(dec, w.u_pos[u_fast], eff[u_fast])
    return Targets(
        comp_target=comp_target,
        comp_new=comp_new,
        comp_creator=comp_creator,
        hp=hp,
        key_of_rank=key_of_rank,
        ev_fast=ev_fast,
        fast_pos=np.flatnonzero(ev_fast),
        u_fast=u_fast,
        dec=dec,
        mg=mg,
    )
