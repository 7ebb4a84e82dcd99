"""A window's outcome applied to the run's in-memory graph (journaling every row before it changes).

Beyond the engine's row changes, merges reach rows the window did not load (see `graph_cache.py`):

* memberships of a merged profile outside the subgraph (an old session of an anonymous profile) move to the
  survivor, combining with the survivor's row of the same value as `reference.merge_profiles` does;
* older redirects to a profile merged now are re-pointed to its survivor (redirects stay one hop), and so is
  the merged_to of the profiles they come from.

Then the values whose holders changed are re-counted for `active_conflicts` (`recount_conflicts`).
"""

from __future__ import annotations

import numpy as np

from identity_pipeline.core.event_stitching.fast_path import ACTIVE, NAT, PROFILE_ACTIVE, WindowOutcome
from identity_pipeline.core.event_stitching.fast_path.scatter import maximum_at, minimum_at
from identity_pipeline.core.event_stitching.fast_path.split import present
from identity_pipeline.core.event_stitching.store.graph_cache import GraphCache
from identity_pipeline.core.event_stitching.store.subgraph import Extracted


def apply_outcome(
    cache: GraphCache,
    ex: Extracted,
    out: WindowOutcome,
    *,
    window_key: str,
    evidence,
) -> tuple[np.ndarray, int, int]:
    """Write the outcome into the cache. Returns (values whose holders, membership statuses or quarantine
    changed, delta of active profiles, delta of known active profiles). `evidence(e)`: the (model, event_id)
    strings of events `e` (a merge's evidence event)."""
    ch = out.changes
    V, P, M = cache.v, cache.p, cache.m
    ts = cache.window_ts
    touched_v = []

    # registry
    rv = ex.vids[ch.reg_rows]
    cache.touch_values(rv)
    touched_v.append(rv[V.quar[rv] != ch.reg_quar])
    V.reg[rv] = True
    V.first[rv], V.last[rv], V.count[rv] = ch.reg_first, ch.reg_last, ch.reg_count
    V.quar[rv], V.quar_at[rv] = ch.reg_quar, ch.reg_quar_at

    # profiles of the subgraph, then the created ones
    pp = ex.pids[ch.prof_rows]
    before_active = P.status[pp] == PROFILE_ACTIVE
    before_known = before_active & P.known[pp]
    cache.touch_profiles(pp)
    P.first[pp], P.last[pp], P.status[pp] = ch.prof_first, ch.prof_last, ch.prof_status
    P.merged_to[pp], P.count[pp], P.known[pp] = ch.prof_merged_to, ch.prof_count, ch.prof_known
    new = ch.new_seq
    if len(new):
        P.ensure(int(new.max()) + 1)
        P.state[new] = 3
        P.key[new], P.created[new], P.first[new], P.last[new] = (
            ch.new_key,
            ch.new_created,
            ch.new_first,
            ch.new_last,
        )
        P.status[new], P.merged_to[new], P.count[new], P.known[new] = (
            ch.new_status,
            ch.new_merged_to,
            ch.new_count,
            ch.new_known,
        )
        P.ww[new], P.dirty[new], P.in_db[new] = ts, True, False
        cache.created_keys.add(ch.new_key)
    after_active = P.status[pp] == PROFILE_ACTIVE
    d_active = int(after_active.sum() - before_active.sum() + (ch.new_status == PROFILE_ACTIVE).sum())
    d_known = int(
        (after_active & P.known[pp]).sum()
        - before_known.sum()
        + ((ch.new_status == PROFILE_ACTIVE) & ch.new_known).sum()
    )

    # memberships: in place, moved to another profile (a new row), removed, new
    mr = ex.rows[ch.mem_rows]
    same = M.pid[mr] == ch.mem_seq
    ip = mr[same]
    cache.touch_memberships(ip)
    touched_v.append(M.vid[ip[M.status[ip] != ch.mem_status[same]]])
    M.status[ip], M.first[ip], M.last[ip], M.count[ip] = (
        ch.mem_status[same],
        ch.mem_first[same],
        ch.mem_last[same],
        ch.mem_count[same],
    )
    moved = mr[~same]
    dead = ex.rows[ch.mem_dead]
    gone = np.concatenate([moved, dead])
    cache.touch_memberships(gone)
    M.alive[gone] = False
    touched_v.append(M.vid[gone])
    if len(moved):
        k = ~same
        cache._append_memberships(
            pid=ch.mem_seq[k],
            vid=M.vid[moved],
            code=M.code[moved].astype(np.int64),
            status=ch.mem_status[k],
            first=ch.mem_first[k],
            last=ch.mem_last[k],
            count=ch.mem_count[k],
            ww=ts,
            in_db=False,
        )
    if len(ch.add_seq):
        av = ex.vids[ch.add_v]
        cache._append_memberships(
            pid=ch.add_seq,
            vid=av,
            code=V.code[av].astype(np.int64),
            status=ch.add_status,
            first=ch.add_first,
            last=ch.add_last,
            count=ch.add_count,
            ww=ts,
            in_db=False,
        )
        touched_v.append(av)

    # merges: carry the merged profiles' other memberships, re-point older redirects, add the new ones
    if len(out.r_from):
        touched_v.append(_carry(cache, out.r_from, out.r_to, ex.sub.next_seq))
        _redirects(cache, out, window_key, evidence)
    vids = np.flatnonzero(present(np.concatenate(touched_v), V.n)) if touched_v else np.zeros(0, np.int64)
    return vids, d_active, d_known


def _carry(cache: GraphCache, losers: np.ndarray, survivors: np.ndarray, next_seq: int) -> np.ndarray:
    """Memberships the window did not load of profiles it merged, moved to their survivors. Returns the
    values concerned."""
    V, P, M = cache.v, cache.p, cache.m
    pre = losers < next_seq  # profiles created in the window had all their rows in the subgraph
    lost, surv = losers[pre], survivors[pre]
    if len(lost) == 0:
        return np.zeros(0, np.int64)
    cache.load_all(lost)
    left = cache.profile_rows(lost)
    if len(left) == 0:
        return np.zeros(0, np.int64)
    vids = np.unique(M.vid[left])
    cache.load_values(vids)
    left = cache.profile_rows(lost)  # loading may not add rows of these profiles (all loaded): unchanged
    final = np.full(P.n, -1, dtype=np.int64)
    final[lost] = surv
    target = final[M.pid[left]]
    # the survivor's row of the same value, if any
    rows = cache.value_rows(vids)
    rows = rows[final[M.pid[rows]] < 0]  # not the merged profiles' own rows
    key = M.pid[rows].astype(np.int64) * (V.n + 1) + M.vid[rows]
    order = np.argsort(key)
    key_sorted, rows_sorted = key[order], rows[order]
    want = target.astype(np.int64) * (V.n + 1) + M.vid[left]
    match = np.full(len(left), -1, dtype=np.int64)
    if len(key_sorted):
        pos = np.minimum(np.searchsorted(key_sorted, want), len(key_sorted) - 1)
        hit = key_sorted[pos] == want
        match[hit] = rows_sorted[pos[hit]]
    # several merged profiles can bring the same value to one survivor: combine them all into one row
    cache.touch_memberships(left)
    M.alive[left] = False
    grp_key = want
    uk, inv = np.unique(grp_key, return_inverse=True)
    n = len(uk)
    st = np.full(n, 2, dtype=np.int64)
    minimum_at(st, inv, M.status[left].astype(np.int64))
    fs = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    minimum_at(fs, inv, M.first[left])
    ls = np.full(n, NAT, dtype=np.int64)
    maximum_at(ls, inv, M.last[left])
    cn = np.bincount(inv, weights=M.count[left], minlength=n).astype(np.int64)
    first_of = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    minimum_at(first_of, inv, np.arange(len(inv)))
    tgt_row = match[first_of]
    existing = tgt_row >= 0
    er = tgt_row[existing]
    cache.touch_memberships(er)
    M.status[er] = np.minimum(M.status[er].astype(np.int64), st[existing]).astype(np.int8)
    M.first[er] = np.minimum(M.first[er], fs[existing])
    M.last[er] = np.maximum(M.last[er], ls[existing])
    M.count[er] = M.count[er] + cn[existing]
    nw = ~existing
    src = left[first_of[nw]]
    cache._append_memberships(
        pid=target[first_of[nw]],
        vid=M.vid[src],
        code=M.code[src].astype(np.int64),
        status=st[nw],
        first=fs[nw],
        last=ls[nw],
        count=cn[nw],
        ww=cache.window_ts,
        in_db=False,
    )
    return vids


def _redirects(cache: GraphCache, out: WindowOutcome, window_key: str, evidence) -> None:
    """Re-point the older redirects to the profiles merged now to their survivors, then add the window's
    redirects. Only profiles some redirect points to (`has_into`) are looked up: a late window merges ~10k
    profiles, a few hundred of which have redirects into them."""
    P = cache.p
    models, eids = evidence(out.r_e)
    losers, survivors = out.r_from, out.r_to
    cache.load_redirects_into(losers)
    repoint: list[tuple[int, int]] = []
    targets = np.flatnonzero(P.has_into[losers])
    if len(targets):
        merged_now = set(losers.tolist())
        into = cache.redirect_into
        for i in targets.tolist():
            lo, sv = int(losers[i]), int(survivors[i])
            repoint += [(src, sv) for src in sorted(into.get(lo, ())) if src not in merged_now]
    for src, sv in repoint:
        cache.touch_redirect(src)
        old_to = cache.redirects[src][0]
        cache.redirects[src][0] = sv
        cache.redirect_into.get(old_to, set()).discard(src)
        cache.redirect_into.setdefault(sv, set()).add(src)
    if repoint:
        srcs = np.array([s for s, _ in repoint], dtype=np.int64)
        cache.load_profiles(srcs)
        cache.touch_profiles(srcs)
        P.merged_to[srcs] = np.array([sv for _, sv in repoint], dtype=np.int64)
    ts = cache.window_ts
    lo_l, sv_l = losers.tolist(), survivors.tolist()
    rows = zip(sv_l, out.r_at.tolist(), models.tolist(), eids.tolist(), strict=True)
    cache.redirects.update(
        zip(lo_l, [[sv, at, m, e, window_key, ts, False, True] for sv, at, m, e in rows], strict=True)
    )
    into = cache.redirect_into
    for lo, sv in zip(lo_l, sv_l, strict=True):
        held = into.get(sv)
        if held is None:
            into[sv] = {lo}
        else:
            held.add(lo)
    P.has_into[survivors] = True


def recount_conflicts(cache: GraphCache, vids: np.ndarray, refreshed: np.ndarray, window_end_us: int) -> int:
    """Re-evaluate the values whose holders, membership statuses or quarantine changed (`vids`): a conflict is
    a non-quarantined value active on more than one active profile. Conflicts among `refreshed` (registry rows
    the window wrote) get their expiry again. Returns the conflicts not expired at the window's end."""
    V, P, M = cache.v, cache.p, cache.m
    if len(vids):
        cache.load_values(vids)  # every holder counts (a profile-wide value may have others in DuckDB)
        rows = cache.value_rows(vids)
        act = rows[(M.status[rows] == ACTIVE) & (P.status[M.pid[rows]] == PROFILE_ACTIVE)]
        scratch = V.scratch
        scratch[vids] = np.arange(len(vids))
        n_act = np.bincount(scratch[M.vid[act]], minlength=len(vids))
        scratch[vids] = -1
        conflict = (n_act > 1) & ~V.quar[vids]
        cand = np.flatnonzero(conflict | V.conflict[vids])
        for i in cand.tolist():
            v, n = int(vids[i]), int(n_act[i])
            row = cache.conflicts.get(v)
            if conflict[i]:
                x = _expiry(cache, v)
                if row is None:
                    cache.conflicts[v] = [n, x, cache.window_ts, False, True]
                    V.conflict[v] = True
                elif row[0] != n or row[1] != x:
                    cache.touch_conflict(v)
                    row[0], row[1] = n, x
            elif row is not None:
                cache.touch_conflict(v)
                del cache.conflicts[v]
                V.conflict[v] = False
                if row[3]:
                    cache.conflicts_deleted.add(v)
    for v in refreshed[V.conflict[refreshed]].tolist():
        row = cache.conflicts[v]
        x = _expiry(cache, v)
        if row[1] != x:
            cache.touch_conflict(v)
            row[1] = x
    return sum(1 for _, x, *_ in cache.conflicts.values() if x == NAT or x >= window_end_us)


def _expiry(cache: GraphCache, vid: int) -> int:
    """When the value stops counting as a conflict: its lifetime's end (NAT: never)."""
    pol, V = cache.policy, cache.v
    walk = int(cache.code_walk[int(V.code[vid])])
    if walk < 0 or pol.lifetime_us[walk] < 0:
        return NAT
    ref = int(V.last[vid] if pol.from_last_seen[walk] else V.first[vid])
    return NAT if ref == NAT else ref + int(pol.lifetime_us[walk])
