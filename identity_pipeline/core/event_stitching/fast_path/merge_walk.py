"""Fast path, MERGE components: a union-find pass over their events in order.

No limit, expiry, quarantine or shared value applies there (else they would be hard), so the reference
would: reach the profile of each known value (one holder each), target the first one in walk order, merge
every other reached profile into the older of the two (audited, redirected), create a profile when nothing
is known, and attach the event. Aggregates (memberships, registry, the survivor's counts) are then those of a
simple component on the final survivor; the walk gives what depends on the order: each event's profile as
decided then, the merges, and each merged profile's stats at the time it merged.

Groups are loaded profiles (their row `p`) or profiles created by an event (`nP + e`), the fast path's
profile references. The loop touches only the merge components' events (a few percent of a window) and plain
Python ints, dicts and lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identity_pipeline.core.event_stitching.fast_path.inputs import ACTIVE, Policy, Subgraph, WindowEvents
from identity_pipeline.core.event_stitching.fast_path.split import Split, present


@dataclass
class MergeWalk:
    ev: np.ndarray  # merge events, in order
    ev_group: np.ndarray  # the group each was attached to (after its own merges)
    groups: np.ndarray  # every group of the walk
    root: np.ndarray  # its final survivor
    merged: np.ndarray  # bool: it merged into another group
    count: np.ndarray  # its stats at the end (for a merged group: when it merged)
    first: np.ndarray
    last: np.ndarray
    known: np.ndarray
    m_e: np.ndarray  # per merge: the event,
    m_v: np.ndarray  # the value that reached the other profile,
    m_survivor: np.ndarray  # the surviving group,
    m_lost: np.ndarray  # and the merged one

    def final(self, group: np.ndarray) -> np.ndarray:
        """Final survivor of each group (every group of the walk)."""
        return self.root[np.searchsorted(self.groups, group)]


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
    hold = holder[v]
    # the loaded profiles reached, with their stats (Known: an active anchor membership)
    reached = np.unique(hold[hold >= 0])
    act_anchor = (sub.m_status == ACTIVE) & pol.anchor[sub.v_type[sub.m_v]]
    p_anchor = present(sub.m_p[act_anchor], nP)[reached]
    stats: dict[int, list] = {
        p: [c, f, la, bool(k), bool(a)]
        for p, c, f, la, k, a in zip(
            reached.tolist(),
            sub.p_count[reached].tolist(),
            sub.p_first[reached].tolist(),
            sub.p_last[reached].tolist(),
            sub.p_known[reached].tolist(),
            p_anchor.tolist(),
            strict=True,
        )
    }
    seq = dict(zip(reached.tolist(), sub.p_seq[reached].tolist(), strict=True))
    base = sub.next_seq - nP  # a created group's order: after every loaded one, by its event

    cuts = np.flatnonzero(np.diff(e)) + 1
    starts = np.concatenate([[0], cuts]).tolist()
    ends = np.concatenate([cuts, [len(e)]]).tolist()
    ev_list = e[np.concatenate([[0], cuts])] if len(e) else e
    ts_list = win.e_ts[ev_list].tolist()
    ev_l = ev_list.tolist()
    v_l, kb_l, hold_l = v.tolist(), kb.tolist(), hold.tolist()
    anch_l = pol.anchor[sub.v_type[v]].tolist()

    parent: dict[int, int] = {}
    key_group: dict[int, int] = {}
    ev_group: list[int] = []
    merges: list[tuple[int, int, int, int]] = []
    for j, (a, b) in enumerate(zip(starts, ends, strict=True)):
        p = ev_l[j]
        ts = ts_list[j]
        target = -1
        has_anchor = False
        for i in range(a, b):
            if anch_l[i]:
                has_anchor = True
            if not kb_l[i]:
                continue
            g = key_group.get(v_l[i], hold_l[i])
            while g in parent:
                g = parent[g]
            if target < 0:
                target = g
            elif g != target:
                o_t = seq[target] if target < nP else base + target
                o_g = seq[g] if g < nP else base + g
                sv, lo = (target, g) if o_t < o_g else (g, target)
                parent[lo] = sv
                s_, l_ = stats[sv], stats[lo]
                s_[0] += l_[0]
                if l_[1] < s_[1]:
                    s_[1] = l_[1]
                if l_[2] > s_[2]:
                    s_[2] = l_[2]
                s_[3] = s_[3] or l_[3]
                s_[4] = s_[4] or l_[4]
                merges.append((p, v_l[i], sv, lo))
                target = sv
        if target < 0:
            target = nP + p
            stats[target] = [1, ts, ts, has_anchor, has_anchor]
        else:
            st = stats[target]
            st[0] += 1
            if ts < st[1]:
                st[1] = ts
            if ts > st[2]:
                st[2] = ts
            st[4] = st[4] or has_anchor
            st[3] = st[4]  # rule 9 on the event's profile
        for i in range(a, b):
            if not kb_l[i]:
                key_group.setdefault(v_l[i], target)
        ev_group.append(target)

    groups = np.array(sorted(stats), dtype=np.int64)
    g_l = groups.tolist()
    roots = []
    for g in g_l:
        r = g
        while r in parent:
            r = parent[r]
        roots.append(r)
    st = np.array([stats[g][:4] for g in g_l], dtype=np.int64).reshape(-1, 4)
    m = np.array(merges, dtype=np.int64).reshape(-1, 4)
    return MergeWalk(
        ev=ev_list.astype(np.int64),
        ev_group=np.array(ev_group, dtype=np.int64),
        groups=groups,
        root=np.array(roots, dtype=np.int64),
        merged=np.array([g in parent for g in g_l], dtype=bool),
        count=st[:, 0],
        first=st[:, 1],
        last=st[:, 2],
        known=st[:, 3].astype(bool),
        m_e=m[:, 0],
        m_v=m[:, 1],
        m_survivor=m[:, 2],
        m_lost=m[:, 3],
    )
