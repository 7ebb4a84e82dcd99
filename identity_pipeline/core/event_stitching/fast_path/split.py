"""Fast path, first step: the window's edges, its connected components, and which path decides each event.

Events link to their usable values, values to every loaded profile holding a membership of them; components
share no value and no profile, so the reference's decisions in one never read another. A component is

* SIMPLE when the reference would only attach its events to one profile: it reaches at most one profile, which
  is active; it has one creating event when it reaches none and none when it reaches one; every value is held
  (if at all) by one ACTIVE membership, agrees with the registry and does not expire inside the window; no
  per-profile limit is reached (no rule 5, no dropped anchor, no demotion; one holder per value, so no
  quarantine); its blocked values are held, if at all, only as blocked evidence;
* MERGE when it is complex by structure alone (several profiles or creators) and nothing else applies;
* HARD when a limit, an expiry, a shared or non-active holder or a blocked value held otherwise could apply:
  only the reference decides those.

Events without a usable value are EXCLUDED directly: values quarantined before the window are unusable and
change nothing (rule 3), so they leave the graph first (a quarantined kiosk cookie no longer ties its visitors
into one component).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identity_pipeline.core.event_stitching.fast_path.inputs import (
    ACTIVE,
    BIG,
    BLOCKED,
    NAT,
    NO_LIMIT,
    PROFILE_ACTIVE,
    Policy,
    Subgraph,
    WindowEvents,
)
from identity_pipeline.core.event_stitching.fast_path.scatter import maximum_at, minimum_at

TIE_BITS = 40  # walk key = type << TIE_BITS | o_tie


@dataclass
class Split:
    # observation rows by kind
    b_rows: np.ndarray  # blocked
    q_rows: np.ndarray  # non-blocked values quarantined before the window
    # usable edges (observation rows neither blocked nor quarantined)
    u_row: np.ndarray
    u_e: np.ndarray
    u_v: np.ndarray
    u_key: np.ndarray  # walk order key (type, then value order) of the edge's value
    v_usable: np.ndarray
    v_held: np.ndarray  # usable value held by a loaded membership
    m_link: np.ndarray  # membership of a usable value (links its profile into the component)
    first_e: np.ndarray  # per value: its first event in the window (BIG when not usable)
    last_e: np.ndarray  # per value: its last event (-1)
    known_before: np.ndarray  # per usable edge: value held, or seen by an earlier event of the window
    creator: np.ndarray  # per event: none of its usable values known before it
    # components
    n_comp: int
    c_ev: np.ndarray
    c_v: np.ndarray  # -1 for values that are not usable
    c_p: np.ndarray
    comp_P: np.ndarray  # per component: the loaded profile it reaches (-1; meaningful when it reaches one)
    complex_c: np.ndarray
    hard_c: np.ndarray
    # event paths
    ev_usable: np.ndarray
    ev_simple: np.ndarray
    ev_merge: np.ndarray
    ev_hard: np.ndarray

    @property
    def ev_excluded(self) -> np.ndarray:
        return ~self.ev_usable

    @property
    def ev_fast(self) -> np.ndarray:
        return self.ev_simple | self.ev_merge


def walk_keys(sub: Subgraph, win: WindowEvents, rows: np.ndarray) -> np.ndarray:
    """Walk order (priority, then value) of the observation rows' values, as one sortable integer."""
    tie = win.o_tie[rows]
    if len(tie) and (tie.min() < 0 or tie.max() >= 1 << TIE_BITS):
        raise ValueError("o_tie must lie in [0, 2**40)")
    return (sub.v_type[win.o_v[rows]] << TIE_BITS) | tie


def present(idx: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of the distinct integers in `idx` (all in [0, n)): a bounded `np.unique` without sorting
    or hashing."""
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


def _components(
    sub: Subgraph, nE: int, u_e: np.ndarray, first_e: np.ndarray, u_v: np.ndarray, m_link: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components over events and loaded profiles (component of each event, of each profile).

    A value joins every event observing it and every profile holding it; linking each of those to the value's
    first event gives the same components on a graph without value nodes (less than half the size)."""
    nP = sub.nP
    later = u_e != first_e[u_v]
    rows = np.concatenate([u_e[later], first_e[sub.m_v[m_link]]])
    cols = np.concatenate([first_e[u_v[later]], nE + sub.m_p[m_link]])
    from identity_pipeline.core.event_stitching.fast_path import kernels  # numba: imported when needed

    n_comp, labels = kernels.components(nE + nP, rows.astype(np.int64), cols.astype(np.int64))
    return n_comp, labels[:nE], labels[nE:]


def _expiring(
    sub: Subgraph, pol: Policy, win: WindowEvents, u_e, u_v, v_usable, first_e, last_e
) -> np.ndarray:
    """Usable values that expire inside the window (first_seen: the last observation is past first +
    lifetime; last_seen: a gap between consecutive observations, or since the registry's last sighting,
    longer than the lifetime)."""
    bad = np.zeros(sub.nV, dtype=bool)
    lifetime = pol.lifetime_us[sub.v_type]
    limited = v_usable & (lifetime != NO_LIMIT)
    if not limited.any():
        return bad
    last_mode = pol.from_last_seen[sub.v_type]
    fs = np.flatnonzero(limited & ~last_mode)
    if len(fs):
        lo, hi = win.e_ts[first_e[fs]], win.e_ts[last_e[fs]]
        ref = np.where(sub.v_reg[fs] & (sub.v_first[fs] != NAT), np.minimum(sub.v_first[fs], lo), lo)
        bad[fs[hi > ref + lifetime[fs]]] = True
    sel = (limited & last_mode)[u_v]
    if sel.any():
        v2, t2 = u_v[sel], win.e_ts[u_e[sel]]
        o = np.lexsort((t2, v2))
        v2, t2 = v2[o], t2[o]
        first = np.ones(len(v2), dtype=bool)
        first[1:] = v2[1:] != v2[:-1]
        prev = np.empty(len(t2), dtype=np.int64)
        prev[1:] = t2[:-1]
        reg_last = np.where(sub.v_reg, sub.v_last, NAT)[v2]
        prev[first] = reg_last[first]
        gap = (prev != NAT) & (t2 > prev + lifetime[v2])
        bad[v2[gap]] = True
    return bad


def split_window(sub: Subgraph, win: WindowEvents, pol: Policy, v_quar: np.ndarray) -> Split:
    """Edges, components and the path of every event. `v_quar`: quarantine flags after the releases."""
    nE, nV, nP = win.nE, sub.nV, sub.nP
    o_v, o_b = win.o_v, win.o_blocked
    quar = ~o_b & sub.v_reg[o_v] & v_quar[o_v]
    b_rows = np.flatnonzero(o_b)
    q_rows = np.flatnonzero(quar)
    u_row = np.flatnonzero(~o_b & ~quar)
    u_e, u_v = win.o_e[u_row], o_v[u_row]
    u_key = walk_keys(sub, win, u_row)
    v_usable = present(u_v, nV)
    m_link = v_usable[sub.m_v]
    first_e = np.full(nV, BIG, dtype=np.int64)
    minimum_at(first_e, u_v, u_e)
    last_e = np.full(nV, -1, dtype=np.int64)
    maximum_at(last_e, u_v, u_e)

    n_comp, c_ev, c_p = _components(sub, nE, u_e, first_e, u_v, m_link)
    c_v = np.full(nV, -1, dtype=np.int64)
    c_v[v_usable] = c_ev[first_e[v_usable]]
    complex_c = np.zeros(n_comp, dtype=bool)
    hard_c = np.zeros(n_comp, dtype=bool)

    # profiles reached
    linked_p = np.flatnonzero(present(sub.m_p[m_link], nP))
    n_prof = np.bincount(c_p[linked_p], minlength=n_comp)
    complex_c |= n_prof > 1
    hard_c[c_p[linked_p[sub.p_status[linked_p] != PROFILE_ACTIVE]]] = True
    comp_P = np.full(n_comp, -1, dtype=np.int64)
    comp_P[c_p[linked_p]] = linked_p

    # values: one active holder at most, registry and memberships agreeing, no expiry in the window
    holders = np.bincount(sub.m_v[m_link], minlength=nV)
    v_held = holders > 0
    bad_v = v_usable & ((holders > 1) | (sub.v_reg != v_held))
    bad_v[sub.m_v[m_link & (sub.m_status != ACTIVE)]] = True
    bad_v |= _expiring(sub, pol, win, u_e, u_v, v_usable, first_e, last_e)
    hard_c[c_v[bad_v]] = True

    # creators: events none of whose values is known before them
    known_before = v_held[u_v] | (first_e[u_v] < u_e)
    ev_usable = present(u_e, nE)
    has_known = present(u_e[known_before], nE)
    creator = ev_usable & ~has_known
    n_creators = np.bincount(c_ev[creator], minlength=n_comp)
    has_p = comp_P >= 0
    complex_c |= (has_p & (n_creators > 0)) | (~has_p & (n_creators != 1))

    # per-profile limits: the reached profiles' active values of the type plus the component's new ones
    limited_types = np.flatnonzero(pol.unique_limit != NO_LIMIT)
    if len(limited_types):
        p_linked = present(linked_p, nP)
        uv = np.flatnonzero(v_usable)
        uv_t = sub.v_type[uv]
        m_t = sub.v_type[sub.m_v]
        outside = ~v_usable[sub.m_v] & (sub.m_status == ACTIVE) & p_linked[sub.m_p]
        outside &= present(limited_types, pol.n_types)[m_t]
        om, om_t = np.flatnonzero(outside), m_t[outside]
        for t in limited_types.tolist():
            n_t = np.bincount(c_v[uv[uv_t == t]], minlength=n_comp)
            sel = om[om_t == t]
            if len(sel):
                n_t += np.bincount(c_p[sub.m_p[sel]], minlength=n_comp)
            hard_c |= n_t > pol.unique_limit[t]

    # blocked values held other than as blocked evidence (attaching would change that membership)
    if len(b_rows):
        b_v = o_v[b_rows]
        v_is_b = present(b_v, nV)
        held_otherwise = present(sub.m_v[v_is_b[sub.m_v] & (sub.m_status != BLOCKED)], nV)
        b_e = win.o_e[b_rows][held_otherwise[b_v]]
        b_e = b_e[ev_usable[b_e]]
        hard_c[c_ev[b_e]] = True

    complex_c |= hard_c
    merge_c = complex_c & ~hard_c
    return Split(
        b_rows=b_rows,
        q_rows=q_rows,
        u_row=u_row,
        u_e=u_e,
        u_v=u_v,
        u_key=u_key,
        v_usable=v_usable,
        v_held=v_held,
        m_link=m_link,
        first_e=first_e,
        last_e=last_e,
        known_before=known_before,
        creator=creator,
        n_comp=n_comp,
        c_ev=c_ev,
        c_v=c_v,
        c_p=c_p,
        comp_P=comp_P,
        complex_c=complex_c,
        hard_c=hard_c,
        ev_usable=ev_usable,
        ev_simple=ev_usable & ~complex_c[c_ev],
        ev_merge=ev_usable & merge_c[c_ev],
        ev_hard=ev_usable & hard_c[c_ev],
    )
