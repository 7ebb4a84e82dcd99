"""Fast path, MERGE components: a union-find pass over their events in order.

No limit, expiry, quarantine or shared value applies there (else they would be hard), so the reference
would: reach the profile of each known value (one holder each), target the first one in walk order, merge
every other reached profile into the older of the two (audited, redirected), create a profile when nothing
is known, and attach the event. Aggregates (memberships, registry, the survivor's counts) are then those of a
simple component on the final survivor; the walk gives what depends on the order: each event's profile as
decided then, the merges, and each merged profile's stats at the time it merged.

Groups are loaded profiles (their row `p`) or profiles created by an event (`nP + e`), the fast path's
profile references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identity_pipeline.core.event_stitching.fast_path.inputs import ACTIVE, Policy, Subgraph, WindowEvents
from identity_pipeline.core.event_stitching.fast_path.split import Split


@dataclass
class MergeWalk:
    ev: np.ndarray  # merge events, in order
    ev_group: np.ndarray  # the group each was attached to (after its own merges)
    root: dict[int, int]  # every group of the walk -> its final survivor
    parent: dict[int, int]  # merged group -> the group it merged into
    stats: dict[int, list]  # group -> [event_count, first_seen, last_seen, is_known]
    new_groups: np.ndarray  # groups created by the walk (nP + creating event), sorted
    m_e: np.ndarray  # per merge: the event,
    m_v: np.ndarray  # the value that reached the other profile,
    m_survivor: np.ndarray  # the surviving group,
    m_lost: np.ndarray  # and the merged one

    def final(self, group: np.ndarray) -> np.ndarray:
        return np.array([self.root[g] for g in group.tolist()], dtype=np.int64)


def merge_walk(sub: Subgraph, win: WindowEvents, pol: Policy, s: Split) -> MergeWalk | None:
    sel = s.ev_merge[s.u_e]
    if not sel.any():
        return None
    nP = sub.nP
    e, v, key, kb = s.u_e[sel], s.u_v[sel], s.u_key[sel], s.known_before[sel]
    o = np.lexsort((key, e))
    e, v, kb = e[o], v[o], kb[o]
    holder = np.full(sub.nV, -1, dtype=np.int64)
    holder[sub.m_v[s.m_link]] = sub.m_p[s.m_link]
    anchor_v = pol.anchor[sub.v_type]
    act_anchor = (sub.m_status == ACTIVE) & pol.anchor[sub.v_type[sub.m_v]]
    p_anchor = np.zeros(nP, dtype=bool)
    p_anchor[sub.m_p[act_anchor]] = True
    seq = sub.p_seq

    parent: dict[int, int] = {}
    stats: dict[int, list] = {}  # count, first, last, known, has_anchor
    key_group: dict[int, int] = {}
    ev_group: list[int] = []
    ev_list: list[int] = []
    merges: list[tuple[int, int, int, int]] = []

    def find(g: int) -> int:
        r = g
        while r in parent:
            r = parent[r]
        while g != r:
            parent[g], g = r, parent[g]
        return r

    def order(g: int) -> int:  # created_sequence order: loaded ones first, created ones by event
        return int(seq[g]) if g < nP else sub.next_seq + g

    def stat(g: int) -> list:
        st = stats.get(g)
        if st is None:
            st = stats[g] = [
                int(sub.p_count[g]),
                int(sub.p_first[g]),
                int(sub.p_last[g]),
                bool(sub.p_known[g]),
                bool(p_anchor[g]),
            ]
        return st

    cuts = np.flatnonzero(np.diff(e)) + 1
    starts = np.concatenate([[0], cuts]).tolist()
    ends = np.concatenate([cuts, [len(e)]]).tolist()
    e_l, v_l, kb_l = e.tolist(), v.tolist(), kb.tolist()
    ts_of = win.e_ts
    holder_l = holder
    anchor_l = anchor_v
    for a, b in zip(starts, ends, strict=True):
        p = e_l[a]
        ts = int(ts_of[p])
        target = -1
        has_anchor = False
        for i in range(a, b):
            k = v_l[i]
            if anchor_l[k]:
                has_anchor = True
            if not kb_l[i]:
                continue
            g = key_group.get(k)
            g = find(int(holder_l[k]) if g is None else g)
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
                s_[4] = s_[4] or l_[4]
                merges.append((p, k, sv, lo))
                target = sv
        if target < 0:
            target = nP + p
            stats[target] = [0, ts, ts, False, False]
        for i in range(a, b):
            if not kb_l[i]:
                key_group.setdefault(v_l[i], target)
        st = stat(target)
        st[0] += 1
        st[1] = min(st[1], ts)
        st[2] = max(st[2], ts)
        st[4] = st[4] or has_anchor
        st[3] = st[4]  # rule 9 on the event's profile
        ev_group.append(target)
        ev_list.append(p)
    m = np.array(merges, dtype=np.int64).reshape(-1, 4)
    return MergeWalk(
        ev=np.array(ev_list, dtype=np.int64),
        ev_group=np.array(ev_group, dtype=np.int64),
        root={g: find(g) for g in stats},
        parent=dict(parent),
        stats={g: st[:4] for g, st in stats.items()},
        new_groups=np.array(sorted(g for g in stats if g >= nP), dtype=np.int64),
        m_e=m[:, 0],
        m_v=m[:, 1],
        m_survivor=m[:, 2],
        m_lost=m[:, 3],
    )
