"""Fast path, last step: the subgraph after the window.

SIMPLE and MERGE events attach all their usable values to their component's final profile: per value the
window's count, first and last sighting go to the registry and to the value's membership (created when no
profile held it); per component the same go to its profile. Blocked values stay on the event's profile as
blocked evidence. Profiles merged by the walk keep their stats as they were when they merged and their
memberships move to the survivor (rows meeting on one value combine as `reference.merge_profiles` combines
them). The rows the HARD components' reference run took over are replaced by its results. Created profiles get
`created_sequence` in the order of their creating events, across all paths.

Profiles are addressed by reference until the end: a loaded row `p`, or `nP + e` for the one event `e`
created.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identity_pipeline.core.event_stitching.fast_path.complex_path import ReferencePart
from identity_pipeline.core.event_stitching.fast_path.inputs import (
    ACTIVE,
    BIG,
    BLOCKED,
    NAT,
    PROFILE_ACTIVE,
    PROFILE_MERGED,
    Policy,
    Subgraph,
    WindowEvents,
)
from identity_pipeline.core.event_stitching.fast_path.merge_walk import MergeWalk
from identity_pipeline.core.event_stitching.fast_path.split import Split


@dataclass
class Targets:
    """Where the fast events go (profile references)."""

    comp_ref: np.ndarray  # per component: its final profile (simple and merge components)
    ev_ref: np.ndarray  # per event: the profile as decided then (fast events), -1
    ev_dec: np.ndarray  # per event: the deciding value row (fast events), -1
    creators: np.ndarray  # events the simple path creates a profile for


def fast_targets(sub: Subgraph, s: Split, mg: MergeWalk | None) -> Targets:
    nP, nE = sub.nP, len(s.ev_usable)
    comp_ref = np.full(s.n_comp, -1, dtype=np.int64)
    simple_c = ~s.complex_c
    has_p = s.comp_P >= 0
    comp_ref[simple_c & has_p] = s.comp_P[simple_c & has_p]
    creators = np.flatnonzero(s.creator & s.ev_simple)
    comp_ref[s.c_ev[creators]] = nP + creators
    ev_ref = np.full(nE, -1, dtype=np.int64)
    simple_e = np.flatnonzero(s.ev_simple)
    ev_ref[simple_e] = comp_ref[s.c_ev[simple_e]]
    if mg is not None:
        comp_ref[s.c_ev[mg.ev]] = mg.final(mg.ev_group)
        ev_ref[mg.ev] = mg.ev_group
    # deciding value: the first value in walk order that was known before the event (the creator's first)
    fast_edge = s.ev_fast[s.u_e]
    eligible = fast_edge & (s.known_before | s.creator[s.u_e])
    idx = np.flatnonzero(eligible)
    o = np.lexsort((s.u_key[idx], s.u_e[idx]))
    idx = idx[o]
    first = np.ones(len(idx), dtype=bool)
    first[1:] = s.u_e[idx][1:] != s.u_e[idx][:-1]
    ev_dec = np.full(nE, -1, dtype=np.int64)
    ev_dec[s.u_e[idx[first]]] = s.u_v[idx[first]]
    return Targets(comp_ref=comp_ref, ev_ref=ev_ref, ev_dec=ev_dec, creators=creators)


@dataclass
class Assembled:
    state: Subgraph
    m_alive: np.ndarray
    seq_of_ref: np.ndarray  # profile reference -> seq (refs < nP + nE)
    row_of_ref: np.ndarray  # profile reference -> row of `state`'s profiles (-1)
    created_events: np.ndarray  # sorted
    r_from: np.ndarray  # redirects (refs)
    r_to: np.ndarray
    r_at: np.ndarray
    r_e: np.ndarray


def _group_min_max(keys: np.ndarray, ts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cnt = np.bincount(keys, minlength=n)
    lo = np.full(n, BIG, dtype=np.int64)
    hi = np.full(n, NAT, dtype=np.int64)
    np.minimum.at(lo, keys, ts)
    np.maximum.at(hi, keys, ts)
    return cnt, lo, hi


def _combine_meeting(refs, nV, m_ref, m_v, m_status, m_first, m_last, m_count, alive) -> None:
    """Alive rows of these profiles meeting on one value become one (in place): the first row keeps the
    highest-ranked status, the earliest first and latest last sighting and the summed counts."""
    on = np.flatnonzero(alive & np.isin(m_ref, refs))
    pair = m_ref[on] * nV + m_v[on]
    o = np.argsort(pair, kind="stable")
    rows, pr = on[o], pair[o]
    start = np.ones(len(pr), dtype=bool)
    start[1:] = pr[1:] != pr[:-1]
    gid = np.cumsum(start) - 1
    sizes = np.bincount(gid) if len(gid) else np.zeros(0, np.int64)
    if not (sizes > 1).any():
        return
    dup = sizes[gid] > 1
    d_rows, d_gid = rows[dup], gid[dup]
    groups = np.flatnonzero(sizes > 1)
    keep = rows[start][groups]
    n = len(sizes)
    st = np.full(n, BLOCKED, dtype=np.int64)
    np.minimum.at(st, d_gid, m_status[d_rows].astype(np.int64))
    fs = np.full(n, BIG, dtype=np.int64)
    np.minimum.at(fs, d_gid, m_first[d_rows])
    ls = np.full(n, NAT, dtype=np.int64)
    np.maximum.at(ls, d_gid, m_last[d_rows])
    cn = np.bincount(d_gid, weights=m_count[d_rows], minlength=n).astype(np.int64)
    m_status[keep], m_first[keep], m_last[keep], m_count[keep] = (
        st[groups],
        fs[groups],
        ls[groups],
        cn[groups],
    )
    alive[d_rows] = False
    alive[keep] = True


def assemble(
    sub: Subgraph,
    win: WindowEvents,
    pol: Policy,
    s: Split,
    tg: Targets,
    mg: MergeWalk | None,
    cx: ReferencePart | None,
    v_quar: np.ndarray,
    v_quar_at: np.ndarray,
) -> Assembled:
    nP, nE, nV = sub.nP, win.nE, sub.nV
    e_ts = win.e_ts
    fast_edge = s.ev_fast[s.u_e]
    fe, fv = s.u_e[fast_edge], s.u_v[fast_edge]
    n_v, lo_v, hi_v = _group_min_max(fv, e_ts[fe], nV)
    touched = np.flatnonzero(n_v > 0)

    # ---- registry ---------------------------------------------------------------------------------------
    v_reg, v_first, v_last, v_count = (
        sub.v_reg.copy(),
        sub.v_first.copy(),
        sub.v_last.copy(),
        sub.v_count.copy(),
    )
    v_quar, v_quar_at = v_quar.copy(), v_quar_at.copy()
    old = touched[v_reg[touched]]
    new = touched[~v_reg[touched]]
    v_first[old] = np.minimum(v_first[old], lo_v[old])
    v_last[old] = np.maximum(v_last[old], hi_v[old])
    v_count[old] += n_v[old]
    v_reg[new] = True
    v_first[new], v_last[new], v_count[new] = lo_v[new], hi_v[new], n_v[new]
    v_quar[new], v_quar_at[new] = False, NAT
    if cx is not None and len(cx.values):
        r = cx.values
        v_reg[r], v_first[r], v_last[r], v_count[r] = cx.v_reg, cx.v_first, cx.v_last, cx.v_count
        v_quar[r], v_quar_at[r] = cx.v_quar, cx.v_quar_at

    # ---- profiles: per component aggregates of the fast events ----------------------------------------
    fast_e = np.flatnonzero(s.ev_fast)
    c_n, c_lo, c_hi = _group_min_max(s.c_ev[fast_e], e_ts[fast_e], s.n_comp)
    c_anchor = np.zeros(s.n_comp, dtype=bool)
    c_anchor[s.c_v[touched[pol.anchor[sub.v_type[touched]]]]] = True
    act_anchor = (sub.m_status == ACTIVE) & pol.anchor[sub.v_type[sub.m_v]]
    p_anchor = np.zeros(nP, dtype=bool)
    p_anchor[sub.m_p[act_anchor]] = True

    p_first, p_last, p_count = sub.p_first.copy(), sub.p_last.copy(), sub.p_count.copy()
    p_status, p_known = sub.p_status.copy(), sub.p_known.copy()
    p_merged_ref = np.full(nP, -1, dtype=np.int64)  # merged_to as a reference (loaded: its seq below)
    hp_c = np.flatnonzero(~s.complex_c & (s.comp_P >= 0) & (c_n > 0))
    up = s.comp_P[hp_c]
    p_first[up] = np.minimum(p_first[up], c_lo[hp_c])
    p_last[up] = np.maximum(p_last[up], c_hi[hp_c])
    p_count[up] += c_n[hp_c]
    p_known[up] = p_anchor[up] | c_anchor[hp_c]

    # created profiles, by reference
    new_refs: list[np.ndarray] = []
    new_cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("key", "created", "first", "last", "status", "merged", "count", "known")
    }

    def add_created(refs, key, created, first, last, status, merged, count, known) -> None:
        new_refs.append(np.asarray(refs, dtype=np.int64))
        for k, v in zip(new_cols, (key, created, first, last, status, merged, count, known), strict=True):
            new_cols[k].append(np.asarray(v))

    cr = tg.creators
    cr_c = s.c_ev[cr]
    add_created(
        nP + cr,
        win.e_key[cr],
        e_ts[cr],
        c_lo[cr_c],
        c_hi[cr_c],
        np.full(len(cr), PROFILE_ACTIVE, np.int8),
        np.full(len(cr), -1, np.int64),
        c_n[cr_c],
        c_anchor[cr_c],
    )
    r_parts: list[tuple[np.ndarray, ...]] = []
    if mg is not None:
        for g, (cnt, fst, lst, kn) in mg.stats.items():
            if g < nP:
                p_count[g], p_first[g], p_last[g], p_known[g] = cnt, fst, lst, kn
                if g in mg.parent:
                    p_status[g] = PROFILE_MERGED
                    p_merged_ref[g] = mg.root[g]
        ng = mg.new_groups
        if len(ng):
            st = np.array([mg.stats[g] for g in ng.tolist()], dtype=np.int64).reshape(-1, 4)
            merged = np.array([g in mg.parent for g in ng.tolist()], dtype=bool)
            add_created(
                ng,
                win.e_key[ng - nP],
                e_ts[ng - nP],
                st[:, 1],
                st[:, 2],
                np.where(merged, PROFILE_MERGED, PROFILE_ACTIVE).astype(np.int8),
                np.where(merged, mg.final(ng), -1),
                st[:, 0],
                st[:, 3].astype(bool),
            )
        if len(mg.m_e):
            r_parts.append((mg.m_lost, mg.final(mg.m_lost), e_ts[mg.m_e], mg.m_e))
    if cx is not None:
        loaded = cx.p_ref < nP
        lr = cx.p_ref[loaded]
        p_first[lr], p_last[lr], p_count[lr] = cx.p_first[loaded], cx.p_last[loaded], cx.p_count[loaded]
        p_status[lr], p_known[lr], p_merged_ref[lr] = (
            cx.p_status[loaded],
            cx.p_known[loaded],
            cx.p_merged_to[loaded],
        )
        c = ~loaded
        add_created(
            cx.p_ref[c],
            cx.p_key[c],
            cx.p_created[c],
            cx.p_first[c],
            cx.p_last[c],
            cx.p_status[c],
            cx.p_merged_to[c],
            cx.p_count[c],
            cx.p_known[c],
        )
        if len(cx.r_from):
            r_parts.append((cx.r_from, cx.r_to, cx.r_at, cx.r_e))

    refs = np.concatenate(new_refs)
    created_events = np.sort(refs - nP)
    order = np.argsort(refs - nP, kind="stable")
    n_new = len(refs)
    seq_of_ref = np.full(nP + nE, -1, dtype=np.int64)
    seq_of_ref[:nP] = sub.p_seq
    row_of_ref = np.full(nP + nE, -1, dtype=np.int64)
    row_of_ref[:nP] = np.arange(nP)
    sorted_refs = refs[order]
    seq_of_ref[sorted_refs] = sub.next_seq + np.arange(n_new)
    row_of_ref[sorted_refs] = nP + np.arange(n_new)

    def cat(k, dtype):
        return np.concatenate(new_cols[k]).astype(dtype)[order]

    merged_new = cat("merged", np.int64)
    state_p_merged = np.concatenate(
        [
            np.where(p_merged_ref >= 0, seq_of_ref[np.maximum(p_merged_ref, 0)], sub.p_merged_to),
            np.where(merged_new >= 0, seq_of_ref[np.maximum(merged_new, 0)], -1),
        ]
    )

    # ---- memberships ------------------------------------------------------------------------------------
    m_ref = sub.m_p.copy()
    m_v = sub.m_v.copy()
    m_status, m_first, m_last, m_count = (
        sub.m_status.copy(),
        sub.m_first.copy(),
        sub.m_last.copy(),
        sub.m_count.copy(),
    )
    alive = np.ones(sub.nM, dtype=bool)
    # the value's one active membership (simple and merge components) gets the window's sightings
    held = np.flatnonzero(s.m_link & (n_v[sub.m_v] > 0))
    hv = sub.m_v[held]
    m_first[held] = np.minimum(m_first[held], lo_v[hv])
    m_last[held] = np.maximum(m_last[held], hi_v[hv])
    m_count[held] += n_v[hv]
    add_m: list[tuple[np.ndarray, ...]] = []
    nv = touched[~s.v_held[touched]]
    add_m.append(
        (
            tg.comp_ref[s.c_v[nv]],
            nv,
            np.full(len(nv), ACTIVE, np.int8),
            lo_v[nv],
            hi_v[nv],
            n_v[nv],
        )
    )
    # blocked evidence of fast events, on their component's final profile
    blocked_evidence = False
    if len(s.b_rows):
        b_e = win.o_e[s.b_rows]
        keep = s.ev_fast[b_e]
        b_e, b_v = b_e[keep], win.o_v[s.b_rows][keep]
        if len(b_e):
            b_ref = tg.comp_ref[s.c_ev[b_e]]
            pair = b_ref * nV + b_v
            uq, inv = np.unique(pair, return_inverse=True)
            cnt, lo, hi = _group_min_max(inv, e_ts[b_e], len(uq))
            add_m.append((uq // nV, uq % nV, np.full(len(uq), BLOCKED, np.int8), lo, hi, cnt))
            blocked_evidence = True
    if cx is not None:
        alive[cx.memberships] = False
        add_m.append((cx.m_ref, cx.m_v, cx.m_status, cx.m_first, cx.m_last, cx.m_count))
    m_ref = np.concatenate([m_ref, *[a[0] for a in add_m]])
    m_v = np.concatenate([m_v, *[a[1] for a in add_m]])
    m_status = np.concatenate([m_status, *[a[2] for a in add_m]]).astype(np.int8)
    m_first = np.concatenate([m_first, *[a[3] for a in add_m]])
    m_last = np.concatenate([m_last, *[a[4] for a in add_m]])
    m_count = np.concatenate([m_count, *[a[5] for a in add_m]])
    alive = np.concatenate([alive, np.ones(len(m_ref) - sub.nM, dtype=bool)])

    # merges of the walk: memberships move to the survivor; rows meeting on one value (there, or a blocked
    # value already held as evidence) combine
    meet_refs = [np.unique(tg.comp_ref[s.c_ev[b_e]])] if blocked_evidence else []
    if mg is not None and mg.parent:
        lost = np.array(list(mg.parent), dtype=np.int64)
        final = np.full(nP + nE, -1, dtype=np.int64)
        final[lost] = mg.final(lost)
        moving = alive & (final[m_ref] >= 0)
        m_ref[moving] = final[m_ref[moving]]
        meet_refs.append(np.unique(final[lost]))
    if meet_refs:
        _combine_meeting(
            np.unique(np.concatenate(meet_refs)), nV, m_ref, m_v, m_status, m_first, m_last, m_count, alive
        )

    r_from = np.concatenate([p[0] for p in r_parts]) if r_parts else np.zeros(0, np.int64)
    r_to = np.concatenate([p[1] for p in r_parts]) if r_parts else np.zeros(0, np.int64)
    r_at = np.concatenate([p[2] for p in r_parts]) if r_parts else np.zeros(0, np.int64)
    r_e = np.concatenate([p[3] for p in r_parts]) if r_parts else np.zeros(0, np.int64)

    state = Subgraph(
        v_type=sub.v_type,
        v_reg=v_reg,
        v_first=v_first,
        v_last=v_last,
        v_count=v_count,
        v_quar=v_quar,
        v_quar_at=v_quar_at,
        p_seq=np.concatenate([sub.p_seq, sub.next_seq + np.arange(n_new)]),
        p_key=np.concatenate([sub.p_key, cat("key", np.uint64)]),
        p_created=np.concatenate([sub.p_created, cat("created", np.int64)]),
        p_first=np.concatenate([p_first, cat("first", np.int64)]),
        p_last=np.concatenate([p_last, cat("last", np.int64)]),
        p_status=np.concatenate([p_status, cat("status", np.int8)]),
        p_merged_to=state_p_merged,
        p_count=np.concatenate([p_count, cat("count", np.int64)]),
        p_known=np.concatenate([p_known, cat("known", bool)]),
        m_p=row_of_ref[m_ref],
        m_v=m_v,
        m_status=m_status,
        m_first=m_first,
        m_last=m_last,
        m_count=m_count,
        next_seq=sub.next_seq + n_new,
    )
    return Assembled(
        state=state,
        m_alive=alive,
        seq_of_ref=seq_of_ref,
        row_of_ref=row_of_ref,
        created_events=created_events,
        r_from=r_from,
        r_to=r_to,
        r_at=r_at,
        r_e=r_e,
    )
