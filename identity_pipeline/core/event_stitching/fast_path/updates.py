"""Fast path, last step: what the window changes in the subgraph, as row-level changes.

SIMPLE and MERGE events attach all their usable values to their component's final profile: per value the
window's count, first and last sighting go to the registry and to the value's membership (created when no
profile held it); per component the same go to its profile. Blocked values stay on the event's profile as
blocked evidence. Profiles merged by the walk keep their stats as they were when they merged and their
memberships move to the survivor (rows meeting on one value combine as `reference.merge_profiles` combines
them). The rows the HARD components' reference run took over are replaced by its results. Created profiles get
`created_sequence` in the order of their creating events, across all paths.

Only the rows that change are computed and returned (`StateChanges`): a window touches a small part of the
subgraph's arrays, and copying whole arrays costs more than the work itself. Profiles are addressed by
reference until the end: a loaded row `p`, or `nP + e` for the one event `e` created.
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
from identity_pipeline.core.event_stitching.fast_path.outcome import StateChanges
from identity_pipeline.core.event_stitching.fast_path.scatter import maximum_at, minimum_at
from identity_pipeline.core.event_stitching.fast_path.split import Split, present


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
    simple_p = ~s.complex_c & (s.comp_P >= 0)
    comp_ref[simple_p] = s.comp_P[simple_p]
    creators = np.flatnonzero(s.creator & s.ev_simple)
    comp_ref[s.c_ev[creators]] = nP + creators
    ev_ref = np.full(nE, -1, dtype=np.int64)
    simple_e = np.flatnonzero(s.ev_simple)
    ev_ref[simple_e] = comp_ref[s.c_ev[simple_e]]
    if mg is not None:
        comp_ref[s.c_ev[mg.ev]] = mg.final(mg.ev_group)
        ev_ref[mg.ev] = mg.ev_group
    # deciding value: the first value in walk order that was known before the event (the creator's first)
    eligible = s.ev_fast[s.u_e] & (s.known_before | s.creator[s.u_e])
    idx = np.flatnonzero(eligible)
    ue, key = s.u_e[idx], s.u_key[idx]
    best = np.full(nE, np.iinfo(np.int64).max, dtype=np.int64)
    minimum_at(best, ue, key)
    is_best = key == best[ue]
    ev_dec = np.full(nE, -1, dtype=np.int64)
    ev_dec[ue[is_best]] = s.u_v[idx[is_best]]
    return Targets(comp_ref=comp_ref, ev_ref=ev_ref, ev_dec=ev_dec, creators=creators)


@dataclass
class Assembled:
    changes: StateChanges
    seq_of_ref: np.ndarray  # profile reference -> seq (refs < nP + nE)
    created_events: np.ndarray  # sorted
    r_from: np.ndarray  # redirects (refs)
    r_to: np.ndarray
    r_at: np.ndarray
    r_e: np.ndarray


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


class _Rows:
    """Column parts gathered from several sources, concatenated once."""

    def __init__(self, *names: str) -> None:
        self.parts: dict[str, list[np.ndarray]] = {n: [] for n in names}

    def add(self, **cols) -> None:
        n = max((np.size(v) for v in cols.values() if np.ndim(v)), default=0)
        for k, v in cols.items():
            self.parts[k].append(np.broadcast_to(np.asarray(v), (n,)) if np.ndim(v) == 0 else np.asarray(v))

    def col(self, name: str, dtype) -> np.ndarray:
        return _cat(self.parts[name], dtype)


def _combine(ref, v, status, first, last, count, nV) -> np.ndarray:
    """Rows meeting on one (profile, value) become one, in place: the first row of each group (a loaded row
    when there is one: they come first) keeps the highest-ranked status, the earliest first and latest last
    sighting and the summed counts. Returns the mask of rows that remain."""
    keep = np.ones(len(ref), dtype=bool)
    if len(ref) < 2:
        return keep
    pair = ref * nV + v
    o = np.argsort(pair, kind="stable")
    pr = pair[o]
    start = np.ones(len(pr), dtype=bool)
    start[1:] = pr[1:] != pr[:-1]
    if start.all():
        return keep
    gid = np.cumsum(start) - 1
    sizes = np.bincount(gid)
    dup = sizes[gid] > 1
    rows, d_gid = o[dup], gid[dup]
    n = len(sizes)
    st = np.full(n, BLOCKED, dtype=np.int64)
    minimum_at(st, d_gid, status[rows].astype(np.int64))
    fs = np.full(n, BIG, dtype=np.int64)
    minimum_at(fs, d_gid, first[rows])
    ls = np.full(n, NAT, dtype=np.int64)
    maximum_at(ls, d_gid, last[rows])
    cn = np.bincount(d_gid, weights=count[rows], minlength=n).astype(np.int64)
    groups = np.flatnonzero(sizes > 1)
    head = o[start][groups]
    status[head], first[head], last[head], count[head] = st[groups], fs[groups], ls[groups], cn[groups]
    keep[rows] = False
    keep[head] = True
    return keep


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
    released: list[int],
) -> Assembled:
    nP, nE, nV = sub.nP, win.nE, sub.nV
    e_ts = win.e_ts

    # ---- values of fast components (all their events are fast): sightings, first and last ----------------
    uv = np.flatnonzero(s.v_usable)
    touched = uv[~s.hard_c[s.c_v[uv]]]
    n_t = np.bincount(s.u_v, minlength=nV)[touched]
    lo_t, hi_t = e_ts[s.first_e[touched]], e_ts[s.last_e[touched]]

    # ---- registry ----------------------------------------------------------------------------------------
    reg = _Rows("rows", "first", "last", "count", "quar", "quar_at")
    if released:
        r = np.asarray(released, dtype=np.int64)
        r = r[~present(touched, nV)[r]]
        if cx is not None:
            r = r[~present(cx.values, nV)[r]]
        reg.add(
            rows=r, first=sub.v_first[r], last=sub.v_last[r], count=sub.v_count[r], quar=False, quar_at=NAT
        )
    had = sub.v_reg[touched]
    reg.add(
        rows=touched,
        first=np.where(had, np.minimum(sub.v_first[touched], lo_t), lo_t),
        last=np.where(had, np.maximum(sub.v_last[touched], hi_t), hi_t),
        count=np.where(had, sub.v_count[touched], 0) + n_t,
        quar=had & v_quar[touched],
        quar_at=np.where(had, v_quar_at[touched], NAT),
    )
    if cx is not None and len(cx.values):
        ok = cx.v_reg
        reg.add(
            rows=cx.values[ok],
            first=cx.v_first[ok],
            last=cx.v_last[ok],
            count=cx.v_count[ok],
            quar=cx.v_quar[ok],
            quar_at=cx.v_quar_at[ok],
        )

    # ---- profiles: per component aggregates of the fast events ---------------------------------------------
    fast_e = np.flatnonzero(s.ev_fast)
    fc = s.c_ev[fast_e]
    c_n = np.bincount(fc, minlength=s.n_comp)
    c_lo = np.full(s.n_comp, BIG, dtype=np.int64)
    c_hi = np.full(s.n_comp, NAT, dtype=np.int64)
    minimum_at(c_lo, fc, e_ts[fast_e])
    maximum_at(c_hi, fc, e_ts[fast_e])
    c_anchor = present(s.c_v[touched[pol.anchor[sub.v_type[touched]]]], s.n_comp)

    prof = _Rows("rows", "first", "last", "status", "merged_ref", "count", "known")
    hp_c = np.flatnonzero(~s.complex_c & (s.comp_P >= 0))
    if len(hp_c):
        up = s.comp_P[hp_c]
        act_anchor = (sub.m_status == ACTIVE) & pol.anchor[sub.v_type[sub.m_v]]
        p_anchor = present(sub.m_p[act_anchor], nP)[up]
        prof.add(
            rows=up,
            first=np.minimum(sub.p_first[up], c_lo[hp_c]),
            last=np.maximum(sub.p_last[up], c_hi[hp_c]),
            status=sub.p_status[up],
            merged_ref=-1,
            count=sub.p_count[up] + c_n[hp_c],
            known=p_anchor | c_anchor[hp_c],
        )
    new = _Rows("ref", "key", "created", "first", "last", "status", "merged_ref", "count", "known")
    cr = tg.creators
    cr_c = s.c_ev[cr]
    new.add(
        ref=nP + cr,
        key=win.e_key[cr],
        created=e_ts[cr],
        first=c_lo[cr_c],
        last=c_hi[cr_c],
        status=PROFILE_ACTIVE,
        merged_ref=-1,
        count=c_n[cr_c],
        known=c_anchor[cr_c],
    )
    redirect = _Rows("from", "to", "at", "e")
    if mg is not None:
        merged_ref = np.where(mg.merged, mg.root, -1)
        status = np.where(mg.merged, PROFILE_MERGED, PROFILE_ACTIVE).astype(np.int8)
        loaded = mg.groups < nP
        lg = mg.groups[loaded]
        prof.add(
            rows=lg,
            first=mg.first[loaded],
            last=mg.last[loaded],
            status=status[loaded],
            merged_ref=merged_ref[loaded],
            count=mg.count[loaded],
            known=mg.known[loaded],
        )
        cg = mg.groups[~loaded]
        new.add(
            ref=cg,
            key=win.e_key[cg - nP],
            created=e_ts[cg - nP],
            first=mg.first[~loaded],
            last=mg.last[~loaded],
            status=status[~loaded],
            merged_ref=merged_ref[~loaded],
            count=mg.count[~loaded],
            known=mg.known[~loaded],
        )
        if len(mg.m_e):
            redirect.add(**{"from": mg.m_lost, "to": mg.final(mg.m_lost), "at": e_ts[mg.m_e], "e": mg.m_e})
    if cx is not None:
        lo = cx.p_ref < nP
        prof.add(
            rows=cx.p_ref[lo],
            first=cx.p_first[lo],
            last=cx.p_last[lo],
            status=cx.p_status[lo],
            merged_ref=cx.p_merged_to[lo],
            count=cx.p_count[lo],
            known=cx.p_known[lo],
        )
        c = ~lo
        new.add(
            ref=cx.p_ref[c],
            key=cx.p_key[c],
            created=cx.p_created[c],
            first=cx.p_first[c],
            last=cx.p_last[c],
            status=cx.p_status[c],
            merged_ref=cx.p_merged_to[c],
            count=cx.p_count[c],
            known=cx.p_known[c],
        )
        if len(cx.r_from):
            redirect.add(**{"from": cx.r_from, "to": cx.r_to, "at": cx.r_at, "e": cx.r_e})

    # created profiles are numbered by their creating events
    refs = new.col("ref", np.int64)
    order = np.argsort(refs, kind="stable")
    created_events = refs[order] - nP
    seq_of_ref = np.full(nP + nE, -1, dtype=np.int64)
    seq_of_ref[:nP] = sub.p_seq
    seq_of_ref[refs[order]] = sub.next_seq + np.arange(len(refs))

    def seqs(r: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        out = np.where(r >= 0, seq_of_ref[np.maximum(r, 0)], -1)
        return out if keep is None else np.where(r >= 0, out, keep)

    prof_rows = prof.col("rows", np.int64)

    # ---- memberships -------------------------------------------------------------------------------------
    # loaded rows of fast values (one active holder each) get the window's sightings
    m_fast = s.m_link & present(touched, nV)[sub.m_v]
    held = np.flatnonzero(m_fast)
    hv = sub.m_v[held]
    pos = np.searchsorted(touched, hv)
    upd_first = np.minimum(sub.m_first[held], lo_t[pos])
    upd_last = np.maximum(sub.m_last[held], hi_t[pos])
    upd_count = sub.m_count[held] + n_t[pos]
    dead = [cx.memberships] if cx is not None else []
    # new rows: values no profile held, blocked evidence, the reference's rows
    add = _Rows("ref", "v", "status", "first", "last", "count")
    nv = ~s.v_held[touched]
    add.add(
        ref=tg.comp_ref[s.c_v[touched[nv]]],
        v=touched[nv],
        status=ACTIVE,
        first=lo_t[nv],
        last=hi_t[nv],
        count=n_t[nv],
    )
    meet_refs = []
    if len(s.b_rows):
        b_e = win.o_e[s.b_rows]
        keep = s.ev_fast[b_e]
        b_e, b_v = b_e[keep], win.o_v[s.b_rows][keep]
        if len(b_e):
            b_ref = tg.comp_ref[s.c_ev[b_e]]
            uq, inv = np.unique(b_ref * nV + b_v, return_inverse=True)
            cnt = np.bincount(inv, minlength=len(uq))
            lo = np.full(len(uq), BIG, dtype=np.int64)
            hi = np.full(len(uq), NAT, dtype=np.int64)
            minimum_at(lo, inv, e_ts[b_e])
            maximum_at(hi, inv, e_ts[b_e])
            add.add(ref=uq // nV, v=uq % nV, status=BLOCKED, first=lo, last=hi, count=cnt)
            meet_refs.append(uq // nV)
    if cx is not None:
        add.add(
            ref=cx.m_ref, v=cx.m_v, status=cx.m_status, first=cx.m_first, last=cx.m_last, count=cx.m_count
        )
    a_ref, a_v = add.col("ref", np.int64), add.col("v", np.int64)
    a_status, a_first = add.col("status", np.int8), add.col("first", np.int64)
    a_last, a_count = add.col("last", np.int64), add.col("count", np.int64)

    # merges of the walk move memberships to the survivor; rows meeting on one value (there, or a blocked
    # value already held as evidence) combine
    final = None
    if mg is not None and mg.merged.any():
        final = np.full(nP + nE, -1, dtype=np.int64)
        lost = mg.groups[mg.merged]
        final[lost] = mg.root[mg.merged]
        meet_refs.append(mg.root[mg.merged])
    mem_rows, mem_ref = held, sub.m_p[held].copy()
    mem_status = sub.m_status[held].copy()
    mem_first, mem_last, mem_count = upd_first, upd_last, upd_count
    if meet_refs:
        meet = np.unique(np.concatenate(meet_refs))
        loaded_meet = present(meet[meet < nP], nP)
        moving_p = present(mg.groups[mg.merged & (mg.groups < nP)], nP) if final is not None else None
        pull_mask = loaded_meet[sub.m_p]
        if moving_p is not None:
            pull_mask |= moving_p[sub.m_p]
        if cx is not None:
            pull_mask[cx.memberships] = False
        pull = np.flatnonzero(pull_mask)
        # the pulled rows with this window's sightings (when fast) and every new row they may meet
        p_first, p_last, p_count = sub.m_first[pull].copy(), sub.m_last[pull].copy(), sub.m_count[pull].copy()
        hit = np.searchsorted(held, pull)
        hit_ok = (hit < len(held)) & (held[np.minimum(hit, len(held) - 1)] == pull) if len(held) else hit < 0
        p_first[hit_ok] = upd_first[hit[hit_ok]]
        p_last[hit_ok] = upd_last[hit[hit_ok]]
        p_count[hit_ok] = upd_count[hit[hit_ok]]
        # only new rows on a meeting profile can meet a pulled row
        meets = present(meet, nP + nE)[a_ref]
        rest = ~meets
        r_ref, r_v, r_status = a_ref[rest], a_v[rest], a_status[rest]
        r_first, r_last, r_count = a_first[rest], a_last[rest], a_count[rest]
        c_ref = np.concatenate([sub.m_p[pull], a_ref[meets]])
        if final is not None:
            mv = final[c_ref] >= 0
            c_ref[mv] = final[c_ref[mv]]
        c_v = np.concatenate([sub.m_v[pull], a_v[meets]])
        c_status = np.concatenate([sub.m_status[pull], a_status[meets]])
        c_first = np.concatenate([p_first, a_first[meets]])
        c_last = np.concatenate([p_last, a_last[meets]])
        c_count = np.concatenate([p_count, a_count[meets]])
        alive = _combine(c_ref, c_v, c_status, c_first, c_last, c_count, nV)
        n_pull = len(pull)
        # rows of `held` not pulled keep their update; pulled ones take the combined result
        not_pulled = ~present(pull, sub.nM)[held]
        keep_pull = alive[:n_pull]
        mem_rows = np.concatenate([held[not_pulled], pull[keep_pull]])
        mem_ref = np.concatenate([sub.m_p[held[not_pulled]], c_ref[:n_pull][keep_pull]])
        mem_status = np.concatenate([sub.m_status[held[not_pulled]], c_status[:n_pull][keep_pull]])
        mem_first = np.concatenate([upd_first[not_pulled], c_first[:n_pull][keep_pull]])
        mem_last = np.concatenate([upd_last[not_pulled], c_last[:n_pull][keep_pull]])
        mem_count = np.concatenate([upd_count[not_pulled], c_count[:n_pull][keep_pull]])
        dead.append(pull[~keep_pull])
        ka = alive[n_pull:]
        a_ref = np.concatenate([r_ref, c_ref[n_pull:][ka]])
        a_v = np.concatenate([r_v, c_v[n_pull:][ka]])
        a_status = np.concatenate([r_status, c_status[n_pull:][ka]])
        a_first = np.concatenate([r_first, c_first[n_pull:][ka]])
        a_last = np.concatenate([r_last, c_last[n_pull:][ka]])
        a_count = np.concatenate([r_count, c_count[n_pull:][ka]])

    new_ref = refs[order]
    changes = StateChanges(
        reg_rows=reg.col("rows", np.int64),
        reg_first=reg.col("first", np.int64),
        reg_last=reg.col("last", np.int64),
        reg_count=reg.col("count", np.int64),
        reg_quar=reg.col("quar", bool),
        reg_quar_at=reg.col("quar_at", np.int64),
        prof_rows=prof_rows,
        prof_first=prof.col("first", np.int64),
        prof_last=prof.col("last", np.int64),
        prof_status=prof.col("status", np.int8),
        prof_merged_to=seqs(prof.col("merged_ref", np.int64), sub.p_merged_to[prof_rows]),
        prof_count=prof.col("count", np.int64),
        prof_known=prof.col("known", bool),
        new_seq=seq_of_ref[new_ref],
        new_key=new.col("key", np.uint64)[order],
        new_created=new.col("created", np.int64)[order],
        new_first=new.col("first", np.int64)[order],
        new_last=new.col("last", np.int64)[order],
        new_status=new.col("status", np.int8)[order],
        new_merged_to=seqs(new.col("merged_ref", np.int64)[order]),
        new_count=new.col("count", np.int64)[order],
        new_known=new.col("known", bool)[order],
        mem_rows=mem_rows,
        mem_seq=seq_of_ref[mem_ref],
        mem_status=mem_status.astype(np.int8),
        mem_first=mem_first,
        mem_last=mem_last,
        mem_count=mem_count,
        mem_dead=_cat(dead, np.int64),
        add_seq=seq_of_ref[a_ref],
        add_v=a_v,
        add_status=a_status.astype(np.int8),
        add_first=a_first,
        add_last=a_last,
        add_count=a_count,
        next_seq=sub.next_seq + len(refs),
    )
    return Assembled(
        changes=changes,
        seq_of_ref=seq_of_ref,
        created_events=created_events,
        r_from=redirect.col("from", np.int64),
        r_to=redirect.col("to", np.int64),
        r_at=redirect.col("at", np.int64),
        r_e=redirect.col("e", np.int64),
    )


def apply_changes(sub: Subgraph, ch: StateChanges) -> tuple[Subgraph, np.ndarray]:
    """The whole subgraph after the window (its rows with the changes applied, then the new profiles and
    memberships), and the mask of membership rows that remain. Memberships refer to profile rows."""
    out = sub.copy()
    r = ch.reg_rows
    out.v_reg[r] = True
    out.v_first[r], out.v_last[r], out.v_count[r] = ch.reg_first, ch.reg_last, ch.reg_count
    out.v_quar[r], out.v_quar_at[r] = ch.reg_quar, ch.reg_quar_at
    p = ch.prof_rows
    out.p_first[p], out.p_last[p], out.p_status[p] = ch.prof_first, ch.prof_last, ch.prof_status
    out.p_merged_to[p], out.p_count[p], out.p_known[p] = ch.prof_merged_to, ch.prof_count, ch.prof_known
    out.p_seq = np.concatenate([out.p_seq, ch.new_seq])
    out.p_key = np.concatenate([out.p_key, ch.new_key])
    out.p_created = np.concatenate([out.p_created, ch.new_created])
    out.p_first = np.concatenate([out.p_first, ch.new_first])
    out.p_last = np.concatenate([out.p_last, ch.new_last])
    out.p_status = np.concatenate([out.p_status, ch.new_status])
    out.p_merged_to = np.concatenate([out.p_merged_to, ch.new_merged_to])
    out.p_count = np.concatenate([out.p_count, ch.new_count])
    out.p_known = np.concatenate([out.p_known, ch.new_known])
    row_of_seq = {int(q): i for i, q in enumerate(out.p_seq.tolist())}

    def rows(seqs: np.ndarray) -> np.ndarray:
        return np.array([row_of_seq[int(q)] for q in seqs.tolist()], dtype=np.int64)

    m = ch.mem_rows
    out.m_p[m] = rows(ch.mem_seq)
    out.m_status[m], out.m_first[m], out.m_last[m], out.m_count[m] = (
        ch.mem_status,
        ch.mem_first,
        ch.mem_last,
        ch.mem_count,
    )
    alive = np.ones(sub.nM + len(ch.add_seq), dtype=bool)
    alive[ch.mem_dead] = False
    out.m_p = np.concatenate([out.m_p, rows(ch.add_seq)])
    out.m_v = np.concatenate([out.m_v, ch.add_v])
    out.m_status = np.concatenate([out.m_status, ch.add_status])
    out.m_first = np.concatenate([out.m_first, ch.add_first])
    out.m_last = np.concatenate([out.m_last, ch.add_last])
    out.m_count = np.concatenate([out.m_count, ch.add_count])
    out.next_seq = ch.next_seq
    return out, alive
