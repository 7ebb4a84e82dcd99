"""Fast path, part of the fourth step (`targets.py`): MERGE components, a union-find pass over their events
in order.

No limit, expiry, quarantine or shared value applies there (else they would be complex), so the reference
would: reach the profile of each known value (one holder each), target the first one in walk order, merge
every other reached profile into the older of the two (audited, redirected), create a profile when nothing
is known, and attach the event. Aggregates (memberships, registry, the survivor's stats) are then the simple
ones on the component's final survivor; the walk gives what depends on the order: each event's profile, the
merges and the merged profiles' stats at merge time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from identity_pipeline.core.event_stitching.batched.arrays import (
    INT_COLUMNS,
    TS_COLUMNS,
    Columns,
    concat,
    isin,
    object_frame,
    take,
)
from identity_pipeline.core.event_stitching.batched.split import Split
from identity_pipeline.core.event_stitching.batched.window_input import WindowInput
from identity_pipeline.core.event_stitching.state import PROFILE_VALUE_COLUMNS, combine_memberships


@dataclass
class MergeWalk:
    """Groups are loaded profiles (their row in P) or profiles created by an event (nP + its position)."""

    parent: dict[int, int]  # merged group -> the group it merged into
    stats: dict[int, list]  # group -> [event_count, first_seen_at, last_seen_at, is_known]
    root: dict[int, int]  # group -> its final survivor
    pid: np.ndarray  # group -> profile id
    new_g: np.ndarray  # groups created by the walk, sorted
    ev: np.ndarray  # positions of the merge events
    ev_g: np.ndarray  # the group each was attached to when it was walked
    m_pos: np.ndarray  # per merge: event position,
    m_key: np.ndarray  # the key that reached the other profile,
    m_survivor: np.ndarray  # the surviving group,
    m_lost: np.ndarray  # and the merged one

    def moved(self) -> dict[str, str]:
        """Profile id of each merged group -> its final survivor's."""
        return {self.pid[g]: self.pid[self.root[g]] for g in self.parent}


def _walk(w: WindowInput, s: Split, rank: np.ndarray, ids: dict):
    nP, nK = w.nP, w.nK
    P, e_ts = w.P, w.e_ts
    in_w = w.m_k >= 0
    sel = s.ev_merge[w.u_pos]
    pos, key, kb = w.u_pos[sel], w.u_k[sel], s.known_before[sel]
    o = np.lexsort((rank[key], pos))
    pos, key, kb = pos[o], key[o], kb[o]
    anchor_k = np.array([ids[t].anchor for t in w.k_t], dtype=bool) if nK else np.zeros(0, bool)
    holder = np.full(nK, -1, dtype=np.int64)
    holder[w.m_k[in_w]] = w.m_p[in_w]
    seq = P["created_sequence"]
    parent: dict[int, int] = {}
    stats: dict[int, list] = {}
    key_group: dict[int, int] = {}
    ev_group: dict[int, int] = {}
    merges: list[tuple[int, int, int, int]] = []

    def find(g: int) -> int:
        r = g
        while r in parent:
            r = parent[r]
        while g != r:
            parent[g], g = r, parent[g]
        return r

    def order(g: int) -> int:
        return int(seq[g]) if g < nP else w.next_seq + g - nP

    def stat(g: int) -> list:
        st = stats.get(g)
        if st is None:
            st = stats[g] = [
                int(P["event_count"][g]),
                int(P["first_seen_at"][g]),
                int(P["last_seen_at"][g]),
                bool(P["is_known"][g]),
            ]
        return st

    cuts = np.flatnonzero(np.diff(pos)) + 1
    for a, b in zip(
        np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(pos)]]).tolist(), strict=True
    ):
        p = int(pos[a])
        ts = int(e_ts[p])
        keys = key[a:b].tolist()
        known = kb[a:b].tolist()
        target = -1
        for k, kn in zip(keys, known, strict=True):
            if not kn:
                continue
            g = find(key_group.get(k, int(holder[k])))
            if target < 0:
                target = g
            elif g != target:
                sv, lo = (target, g) if order(target) < order(g) else (g, target)
                parent[lo] = sv
                s_, l_ = stat(sv), stat(lo)
                s_[0] += l_[0]
                s_[1] = min(s_[1], l_[1])
                s_[2] = max(s_[2], l_[2])
                s_[3] = s_[3] or l_[3]
                merges.append((p, k, sv, lo))
                target = sv
        if target < 0:
            target = nP + p
            stats[target] = [0, ts, ts, False]
        for k, kn in zip(keys, known, strict=True):
            if not kn:
                key_group.setdefault(k, target)
        st = stat(target)
        st[0] += 1
        st[1] = min(st[1], ts)
        st[2] = max(st[2], ts)
        st[3] = st[3] or bool(anchor_k[keys].any())
        ev_group[p] = target
    return find, parent, stats, ev_group, merges


def merge_walk(
    w: WindowInput, s: Split, rank: np.ndarray, ids: dict, cand: np.ndarray, cand_pid: np.ndarray
) -> MergeWalk | None:
    """The walk over the merge components' events, or None when there is none. `cand` / `cand_pid`: the
    positions of events that may create a profile and the ids they would create (sorted positions)."""
    if not s.ev_merge.any():
        return None
    find, parent, stats, ev_group, merges = _walk(w, s, rank, ids)
    nP = w.nP
    pid = np.empty(nP + w.nE, dtype=object)
    pid[:nP] = w.p_ids
    new_g = np.array(sorted(g for g in stats if g >= nP), dtype=np.int64)
    pid[new_g] = cand_pid[np.searchsorted(cand, new_g - nP)]
    m = np.array(merges, dtype=np.int64).reshape(-1, 4)
    return MergeWalk(
        parent=parent,
        stats=stats,
        root={g: find(g) for g in stats},
        pid=pid,
        new_g=new_g,
        ev=np.array(list(ev_group), dtype=np.int64),
        ev_g=np.array(list(ev_group.values()), dtype=np.int64),
        m_pos=m[:, 0],
        m_key=m[:, 1],
        m_survivor=m[:, 2],
        m_lost=m[:, 3],
    )


def rekey_merged(mem: Columns, moved: dict[str, str]) -> Columns:
    """Memberships of profiles merged by the merge path move to their survivor; rows meeting on one value
    combine as `merge_profiles` does (highest-ranked status, earliest first seen, latest last seen, counts
    summed). Profile ids are hashed once (codes), and only the survivor rows that meet go through
    `combine_memberships`."""
    codes, uniques = pd.factorize(mem["dinmo_stitched_profile_id"])
    uniques = np.asarray(uniques, dtype=object)
    hit = isin(uniques, np.array(list(moved), dtype=object))
    if not hit.any():
        return mem
    new_ids = uniques.copy()
    new_ids[hit] = np.array([moved[x] for x in uniques[hit]], dtype=object)
    mem = {**mem, "dinmo_stitched_profile_id": new_ids[codes]}
    on_survivor = np.flatnonzero(isin(new_ids, np.array(sorted(set(moved.values())), dtype=object))[codes])
    keys = object_frame(
        {c: mem[c][on_survivor] for c in ("dinmo_stitched_profile_id", "identifier_type", "value")}
    )
    meet = on_survivor[keys.duplicated(keep=False).to_numpy()]
    if len(meet) == 0:
        return mem
    agg = combine_memberships(object_frame({c: v[meet] for c, v in mem.items()}))
    comb = {
        c: agg[c].to_numpy(dtype=np.int64 if c in TS_COLUMNS or c in INT_COLUMNS else object)
        for c in PROFILE_VALUE_COLUMNS
    }
    rest = np.ones(len(codes), dtype=bool)
    rest[meet] = False
    return concat([take(mem, rest), comb], PROFILE_VALUE_COLUMNS)
