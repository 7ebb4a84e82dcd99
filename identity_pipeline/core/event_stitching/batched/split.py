"""Fast path, second step: connected components, and which path decides each one.

Events link to their usable values, values to every loaded profile holding them; components share no value
and no profile, so the reference's decisions in one never read another. A component is

* SIMPLE when the reference would only attach its events to one profile (see the package docstring);
* MERGE when it is complex by structure alone (several profiles or creators) and nothing else applies;
* COMPLEX (`hard`) when a limit, an expiry, a quarantine, a shared value, a non-active holder or a blocked
  value held otherwise could apply: only the reference decides those.

Events without a usable value are EXCLUDED directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from identity_pipeline.core.event_stitching.batched.arrays import BIG, isin
from identity_pipeline.core.event_stitching.batched.window_input import WindowInput
from identity_pipeline.core.event_stitching.reference import Context, profile_id_for
from identity_pipeline.core.event_stitching.state import NAT


@dataclass
class Split:
    """Components (`c_*`: component of each event, key, loaded profile) and the path of each event."""

    n_comp: int
    c_ev: np.ndarray
    c_key: np.ndarray
    c_prof: np.ndarray
    complex_c: np.ndarray  # per component: not simple (merge or hard)
    linked_p: np.ndarray  # loaded profiles holding a value of the window
    comp_P: np.ndarray  # per component: its loaded profile (-1 none; meaningful when it reaches one)
    k_in_reg: np.ndarray  # per key: in the loaded registry
    k_in_mem: np.ndarray  # per key: held by a loaded membership
    known_before: np.ndarray  # per usable edge: value held, or seen earlier in the window
    creator: np.ndarray  # per event: none of its values known before it (it would create a profile)
    ev_usable: np.ndarray
    ev_merge: np.ndarray
    ev_complex: np.ndarray
    ev_simple: np.ndarray
    ev_excluded: np.ndarray

    @property
    def has_p(self) -> np.ndarray:
        return self.comp_P >= 0


def _bad_keys(
    w: WindowInput, ctx: Context, ids: dict, k_in_reg: np.ndarray, k_in_mem: np.ndarray
) -> np.ndarray:
    """Keys only the reference decides: quarantined, registry and memberships disagreeing, held other than
    active, or expiring inside the window (lifetimes)."""
    R, M = w.R, w.M
    nK, u_k, k_t = w.nK, w.u_k, w.k_t
    hit = w.r_k >= 0
    k_quar = np.zeros(nK, dtype=bool)
    k_quar[w.r_k[hit]] = R["quarantined"][hit]
    k_rfirst = np.full(nK, NAT, dtype=np.int64)
    k_rlast = np.full(nK, NAT, dtype=np.int64)
    k_rfirst[w.r_k[hit]] = R["first_seen_at"][hit]
    k_rlast[w.r_k[hit]] = R["last_seen_at"][hit]
    in_w = w.m_k >= 0
    k_bad = k_quar | (k_in_reg != k_in_mem)
    k_bad[w.m_k[in_w & (M["status"] != "active")]] = True

    # lifetimes
    u_ts = w.e_ts[w.u_pos]
    order = np.lexsort((w.u_pos, u_k))
    s_k, s_ts = u_k[order], u_ts[order]
    is_first = np.ones(len(s_k), dtype=bool)
    is_first[1:] = s_k[1:] != s_k[:-1]
    for t in ids:
        lt = ctx.lifetime_us.get(t)
        if lt is None:
            continue
        sel_k = k_t == t
        if not sel_k.any():
            continue
        if ctx.from_last_seen[t]:
            prev = np.empty(len(s_ts), dtype=np.int64)
            prev[1:] = s_ts[:-1]
            prev[is_first] = NAT
            ref = np.maximum(prev, k_rlast[s_k])
            exp = (ref != NAT) & (s_ts > ref + lt) & sel_k[s_k]
            k_bad[s_k[exp]] = True
        else:
            min_ts = np.full(nK, BIG, dtype=np.int64)
            max_ts = np.full(nK, np.iinfo(np.int64).min, dtype=np.int64)
            np.minimum.at(min_ts, u_k, u_ts)
            np.maximum.at(max_ts, u_k, u_ts)
            ref = np.where(k_in_reg & (k_rfirst != NAT), np.minimum(k_rfirst, min_ts), min_ts)
            k_bad[sel_k & (max_ts > ref + lt)] = True
    return k_bad


def split_components(w: WindowInput, ctx: Context, ids: dict) -> Split:
    """Components of the window and the path of each event (`Split`)."""
    M, P = w.M, w.P
    nE, nK, nP = w.nE, w.nK, w.nP
    u_pos, u_k, m_k, m_p = w.u_pos, w.u_k, w.m_k, w.m_p
    in_w = m_k >= 0

    rows = np.concatenate([u_pos, nE + m_k[in_w]])
    cols = np.concatenate([nE + u_k, nE + nK + m_p[in_w]])
    n_nodes = nE + nK + nP
    graph = sp.coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_nodes, n_nodes)).tocsr()
    n_comp, labels = connected_components(graph, directed=False)
    c_ev = labels[:nE]
    c_key = labels[nE : nE + nK]
    c_prof = labels[nE + nK :]

    complex_c = np.zeros(n_comp, dtype=bool)
    # `hard`: what only the reference decides (limits, expiry, quarantine, non-active holders...). A component
    # complex for structure alone (several profiles or creators: merges) takes the merge path.
    hard_c = np.zeros(n_comp, dtype=bool)

    # profiles reached per component
    p_active = P["status"] == "active"
    linked_p = np.unique(m_p[in_w])
    n_prof_c = np.bincount(c_prof[linked_p], minlength=n_comp)
    complex_c[n_prof_c > 1] = True
    complex_c[c_prof[linked_p[~p_active[linked_p]]]] = True
    hard_c[c_prof[linked_p[~p_active[linked_p]]]] = True
    comp_P = np.full(n_comp, -1, dtype=np.int64)
    comp_P[c_prof[linked_p]] = linked_p

    # keys: registry / memberships / lifetimes
    k_in_reg = np.zeros(nK, dtype=bool)
    k_in_reg[w.r_k[w.r_k >= 0]] = True
    k_in_mem = np.zeros(nK, dtype=bool)
    k_in_mem[m_k[in_w]] = True
    k_bad = _bad_keys(w, ctx, ids, k_in_reg, k_in_mem)
    complex_c[c_key[k_bad]] = True
    hard_c[c_key[k_bad]] = True
    # a value held by several profiles reaches the most recent holder, which the window's order changes
    holders_k = np.bincount(m_k[in_w], minlength=nK)
    hard_c[c_key[holders_k > 1]] = True

    # creators
    first_pos_k = np.full(nK, BIG, dtype=np.int64)
    np.minimum.at(first_pos_k, u_k, u_pos)
    known_before = k_in_mem[u_k] | (first_pos_k[u_k] < u_pos)
    ev_has_known = np.zeros(nE, dtype=bool)
    ev_has_known[u_pos[known_before]] = True
    ev_usable = np.zeros(nE, dtype=bool)
    ev_usable[u_pos] = True
    creator = ev_usable & ~ev_has_known
    n_creators = np.bincount(c_ev[creator], minlength=n_comp)
    has_p = comp_P >= 0
    complex_c[has_p & (n_creators > 0)] = True
    complex_c[~has_p & (n_creators != 1)] = True

    # limits (anchors: compatibility / rule 5 / dropped anchors; weak: demotion)
    m_active = M["status"] == "active"
    limited = [
        (t, p.max_unique_values_per_profile) for t, p in ids.items() if p.max_unique_values_per_profile
    ]
    for t, limit in limited:
        n_t = np.bincount(c_key[w.k_t == t], minlength=n_comp)
        outside = (~in_w) & m_active & (M["identifier_type"] == t)
        if outside.any():
            pp = m_p[outside]
            reached = np.isin(pp, linked_p)
            n_t += np.bincount(c_prof[pp[reached]], minlength=n_comp)
        complex_c[n_t > limit] = True
        hard_c[n_t > limit] = True

    # blocked values held other than as 'blocked' evidence
    if len(w.B):
        mb = isin(w.m_key, w.B["key"].to_numpy()) & (M["status"] != "blocked")
        if mb.any():
            b_bad = isin(w.B["key"].to_numpy(), w.m_key[mb])
            bp = w.B["pos"].to_numpy()[b_bad]
            bp = bp[ev_usable[bp]]
            complex_c[c_ev[bp]] = True
            hard_c[c_ev[bp]] = True

    merge_c = complex_c & ~hard_c
    ev_merge = ev_usable & merge_c[c_ev]
    return Split(
        n_comp=n_comp,
        c_ev=c_ev,
        c_key=c_key,
        c_prof=c_prof,
        complex_c=complex_c,
        linked_p=linked_p,
        comp_P=comp_P,
        k_in_reg=k_in_reg,
        k_in_mem=k_in_mem,
        known_before=known_before,
        creator=creator,
        ev_usable=ev_usable,
        ev_merge=ev_merge,
        ev_complex=ev_usable & complex_c[c_ev] & ~ev_merge,
        ev_simple=ev_usable & ~complex_c[c_ev],
        ev_excluded=~ev_usable,
    )


def created_profile_ids(w: WindowInput, s: Split) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the events that may create a profile (every path's creators) and the id each would
    create (`profile_id_for`), positions sorted."""
    cand = np.flatnonzero((s.creator & s.ev_simple) | s.ev_complex | (s.creator & s.ev_merge))
    cand_pid = np.array([profile_id_for(w.e_m[i], w.e_e[i]) for i in cand], dtype=object)
    return cand, cand_pid
