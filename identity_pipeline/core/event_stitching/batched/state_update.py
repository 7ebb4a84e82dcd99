"""Fast path, last step: the new graph state.

Loaded rows the complex path took over are replaced by its state; the others get the simple aggregates of
the window's fast events (per value: count, first and last seen; per component: the same on its profile),
new values / memberships / profiles are appended, merged profiles' memberships move to their survivor and
redirects into them follow it (one hop). Profiles created by any path get `created_sequence` in the global
order of their creating events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identity_pipeline.core.event_stitching.batched.arrays import (
    BIG,
    Columns,
    concat,
    find,
    isin,
    object_frame,
    pair_codes,
    state_columns,
    state_frame,
    take,
    writable,
)
from identity_pipeline.core.event_stitching.batched.complex_path import ComplexPart
from identity_pipeline.core.event_stitching.batched.merge_walk import rekey_merged
from identity_pipeline.core.event_stitching.batched.split import Split
from identity_pipeline.core.event_stitching.batched.targets import Targets
from identity_pipeline.core.event_stitching.batched.window_input import WindowInput
from identity_pipeline.core.event_stitching.state import (
    NAT,
    PROFILE_COLUMNS,
    PROFILE_VALUE_COLUMNS,
    REDIRECT_COLUMNS,
    REGISTRY_COLUMNS,
    GraphState,
)

_MIN = np.iinfo(np.int64).min


@dataclass
class _KeyAggregates:
    """Per key: count, first and last seen over the fast events' usable observations."""

    n: np.ndarray
    first: np.ndarray
    last: np.ndarray
    seen: np.ndarray  # keys with n > 0


def _key_aggregates(w: WindowInput, tg: Targets) -> _KeyAggregates:
    su_pos, su_k = w.u_pos[tg.u_fast], w.u_k[tg.u_fast]
    su_ts = w.e_ts[su_pos]
    n = np.bincount(su_k, minlength=w.nK)
    first = np.full(w.nK, BIG, dtype=np.int64)
    last = np.full(w.nK, _MIN, dtype=np.int64)
    np.minimum.at(first, su_k, su_ts)
    np.maximum.at(last, su_k, su_ts)
    return _KeyAggregates(n=n, first=first, last=last, seen=np.flatnonzero(n > 0))


def _registry(w: WindowInput, s: Split, cx: ComplexPart, agg: _KeyAggregates) -> Columns:
    R = w.R
    reg_upd = (w.r_k >= 0) & ~cx.reg_sel
    reg_upd[reg_upd] = agg.n[w.r_k[reg_upd]] > 0
    R2 = {c: v.copy() for c, v in R.items()}
    rk = w.r_k[reg_upd]
    R2["first_seen_at"][reg_upd] = np.minimum(R2["first_seen_at"][reg_upd], agg.first[rk])
    R2["last_seen_at"][reg_upd] = np.maximum(R2["last_seen_at"][reg_upd], agg.last[rk])
    R2["event_count"][reg_upd] = R2["event_count"][reg_upd] + agg.n[rk]
    new_k = agg.seen[~s.k_in_reg[agg.seen]]
    nr = len(new_k)
    new = {
        "identifier_type": w.k_t[new_k],
        "value": w.k_v[new_k],
        "first_seen_at": agg.first[new_k],
        "last_seen_at": agg.last[new_k],
        "quarantined": np.zeros(nr, dtype=bool),
        "quarantined_at": np.full(nr, NAT, dtype=np.int64),
        "event_count": agg.n[new_k],
    }
    parts = [take(R2, ~cx.reg_sel), new]
    if cx.state is not None:
        parts.append(state_columns(cx.state.value_registry, REGISTRY_COLUMNS))
    return concat(parts, REGISTRY_COLUMNS)


def _blocked_evidence(w: WindowInput, s: Split, tg: Targets, M2: Columns) -> Columns | None:
    """Blocked values of fast events stay on the event's profile as 'blocked' memberships (updated in `M2`
    when the profile already holds the value, else returned as new rows)."""
    B, M, m_key = w.B, w.M, w.m_key
    bsel = tg.ev_fast[B["pos"].to_numpy()]
    if not bsel.any():
        return None
    Bsimp = B[bsel]
    bp = Bsimp["pos"].to_numpy(dtype=np.int64)
    bdf = object_frame(
        {
            "pid": tg.comp_target[s.c_ev[bp]],
            "key": Bsimp["key"].to_numpy(),
            "t": Bsimp["t"].to_numpy(),
            "v": Bsimp["v"].to_numpy(),
            "ts": w.e_ts[bp],
        }
    )
    agg = bdf.groupby(["pid", "key"], sort=False).agg(
        t=("t", "first"), v=("v", "first"), n=("ts", "size"), mn=("ts", "min"), mx=("ts", "max")
    )
    agg = agg.reset_index()
    # memberships of these values (integer keys first: a few rows, not every loaded membership)
    near = np.flatnonzero(isin(m_key, agg["key"].to_numpy()))
    held, blocked_rows = pair_codes(
        (M["dinmo_stitched_profile_id"][near], m_key[near]),
        (agg["pid"].to_numpy(), agg["key"].to_numpy()),
    )
    j = find(held, blocked_rows)
    j[j >= 0] = near[j[j >= 0]]
    exist = j >= 0
    if exist.any():
        jj = j[exist]
        M2["first_seen_at"][jj] = np.minimum(M2["first_seen_at"][jj], agg["mn"].to_numpy()[exist])
        M2["last_seen_at"][jj] = np.maximum(M2["last_seen_at"][jj], agg["mx"].to_numpy()[exist])
        M2["event_count"][jj] = M2["event_count"][jj] + agg["n"].to_numpy()[exist]
    nb = int((~exist).sum())
    return {
        "dinmo_stitched_profile_id": agg["pid"].to_numpy(dtype=object)[~exist],
        "identifier_type": agg["t"].to_numpy(dtype=object)[~exist],
        "value": agg["v"].to_numpy(dtype=object)[~exist],
        "status": np.full(nb, "blocked", dtype=object),
        "first_seen_at": agg["mn"].to_numpy(dtype=np.int64)[~exist],
        "last_seen_at": agg["mx"].to_numpy(dtype=np.int64)[~exist],
        "event_count": agg["n"].to_numpy(dtype=np.int64)[~exist],
    }


def _memberships(w: WindowInput, s: Split, tg: Targets, cx: ComplexPart, agg: _KeyAggregates) -> Columns:
    """Usable values of fast events are active memberships of their component's profile."""
    M, m_k = w.M, w.m_k
    M2 = {c: v.copy() for c, v in M.items()}
    mem_upd = (m_k >= 0) & ~cx.mem_sel
    mem_upd[mem_upd] = agg.n[m_k[mem_upd]] > 0
    mk = m_k[mem_upd]
    M2["first_seen_at"][mem_upd] = np.minimum(M2["first_seen_at"][mem_upd], agg.first[mk])
    M2["last_seen_at"][mem_upd] = np.maximum(M2["last_seen_at"][mem_upd], agg.last[mk])
    M2["event_count"][mem_upd] = M2["event_count"][mem_upd] + agg.n[mk]
    new_k = agg.seen[~s.k_in_mem[agg.seen]]
    nm = len(new_k)
    parts = [
        {
            "dinmo_stitched_profile_id": tg.comp_target[s.c_key[new_k]],
            "identifier_type": w.k_t[new_k],
            "value": w.k_v[new_k],
            "status": np.full(nm, "active", dtype=object),
            "first_seen_at": agg.first[new_k],
            "last_seen_at": agg.last[new_k],
            "event_count": agg.n[new_k],
        }
    ]
    if len(w.B):
        blocked = _blocked_evidence(w, s, tg, M2)
        if blocked is not None:
            parts.append(blocked)
    parts.insert(0, take(M2, ~cx.mem_sel))
    if cx.state is not None:
        parts.append(state_columns(cx.state.profile_values, PROFILE_VALUE_COLUMNS))
    mem = concat(parts, PROFILE_VALUE_COLUMNS)
    if tg.mg is not None and len(tg.mg.m_pos):
        mem = rekey_merged(mem, tg.mg.moved())
    return mem


def _profiles_and_redirects(
    w: WindowInput,
    s: Split,
    tg: Targets,
    cx: ComplexPart,
    agg: _KeyAggregates,
    anchor_types: list[str],
    cand: np.ndarray,
    cand_pid: np.ndarray,
    window_key: str,
) -> tuple[Columns, Columns, int, int]:
    """Profiles (updated, created, merged) and redirects; also the next sequence number and how many
    profiles the simple path created."""
    P, M, D = w.P, w.M, w.D
    nP, n_comp, e_ts = w.nP, s.n_comp, w.e_ts
    sc = s.c_ev[tg.fast_pos]
    c_n = np.bincount(sc, minlength=n_comp)
    c_min = np.full(n_comp, BIG, dtype=np.int64)
    c_max = np.full(n_comp, _MIN, dtype=np.int64)
    np.minimum.at(c_min, sc, e_ts[tg.fast_pos])
    np.maximum.at(c_max, sc, e_ts[tg.fast_pos])
    c_anchor = np.zeros(n_comp, dtype=bool)
    k_anchor = np.isin(w.k_t, anchor_types) if w.nK else np.zeros(0, bool)
    c_anchor[s.c_key[agg.seen[k_anchor[agg.seen]]]] = True
    P2 = {c: v.copy() for c, v in P.items()}
    upd_c = np.flatnonzero(tg.hp & (c_n > 0))
    up = s.comp_P[upd_c]
    p_anchor = np.zeros(nP, dtype=bool)
    m_active = M["status"] == "active"
    act_anchor = m_active & np.isin(M["identifier_type"], anchor_types) if len(w.m_p) else np.zeros(0, bool)
    p_anchor[w.m_p[act_anchor]] = True
    P2["first_seen_at"][up] = np.minimum(P2["first_seen_at"][up], c_min[upd_c])
    P2["last_seen_at"][up] = np.maximum(P2["last_seen_at"][up], c_max[upd_c])
    P2["event_count"][up] = P2["event_count"][up] + c_n[upd_c]
    P2["is_known"][up] = p_anchor[up] | c_anchor[upd_c]
    new_c = np.flatnonzero(tg.comp_new)
    nn = len(new_c)
    cr_pos = tg.comp_creator[new_c]
    P_new = {
        "dinmo_stitched_profile_id": tg.comp_target[new_c],
        "created_sequence": cr_pos.astype(np.int64),  # renumbered below
        "created_at": e_ts[cr_pos],
        "first_seen_at": c_min[new_c],
        "last_seen_at": c_max[new_c],
        "status": np.full(nn, "active", dtype=object),
        "merged_to_dinmo_stitched_profile_id": np.full(nn, None, dtype=object),
        "event_count": c_n[new_c],
        "is_known": c_anchor[new_c],
    }
    created_pos = [cr_pos]
    mg = tg.mg
    mg_new: Columns | None = None
    if mg is not None:
        st, root = mg.stats, mg.root
        for g, (cnt, fst, lst, kn) in st.items():  # loaded profiles of merge components
            if g < nP:
                P2["event_count"][g], P2["first_seen_at"][g], P2["last_seen_at"][g] = cnt, fst, lst
                P2["is_known"][g] = kn
                if g in mg.parent:
                    P2["status"][g] = "merged"
                    P2["merged_to_dinmo_stitched_profile_id"][g] = mg.pid[root[g]]
        new_g = mg.new_g
        new_root = np.array([root[g] for g in new_g], dtype=np.int64)
        merged_new = np.array([g in mg.parent for g in new_g], dtype=bool)
        mg_new = {
            "dinmo_stitched_profile_id": mg.pid[new_g],
            "created_sequence": new_g - nP,  # renumbered below
            "created_at": e_ts[new_g - nP],
            "first_seen_at": np.array([st[g][1] for g in new_g], dtype=np.int64),
            "last_seen_at": np.array([st[g][2] for g in new_g], dtype=np.int64),
            "status": np.where(merged_new, "merged", "active").astype(object),
            "merged_to_dinmo_stitched_profile_id": np.where(merged_new, mg.pid[new_root], None).astype(
                object
            ),
            "event_count": np.array([st[g][0] for g in new_g], dtype=np.int64),
            "is_known": np.array([st[g][3] for g in new_g], dtype=bool),
        }
        created_pos.append(new_g - nP)
        # redirects to a loaded profile merged now follow it to the survivor (one hop)
        lost = {mg.pid[g]: mg.pid[root[g]] for g in mg.parent if g < nP}
        if lost:
            D = writable(D)
            rp = isin(D["to_id"], np.array(list(lost), dtype=object))
            D["to_id"][rp] = np.array([lost[t] for t in D["to_id"][rp]], dtype=object)
            fp = find(w.p_ids, D["from_id"][rp])
            P2["merged_to_dinmo_stitched_profile_id"][fp[fp >= 0]] = D["to_id"][rp][fp >= 0]
    prof_parts = [take(P2, ~cx.p_sel), P_new]
    if mg_new is not None:
        prof_parts.append(mg_new)

    # renumber created profiles by the global order of their creating events
    if cx.state is not None:
        CP = writable(state_columns(cx.state.profiles, PROFILE_COLUMNS))
        is_new = CP["created_sequence"] >= w.next_seq
        pid_of_pos = dict(zip(cand_pid.tolist(), cand.tolist(), strict=True))
        cpos = np.array([pid_of_pos[p] for p in CP["dinmo_stitched_profile_id"][is_new]], dtype=np.int64)
        created_pos.append(cpos)
        prof_parts.append(CP)
    order_pos = np.sort(np.concatenate(created_pos))
    seq_of = dict(zip(order_pos.tolist(), range(w.next_seq, w.next_seq + len(order_pos)), strict=True))
    P_new["created_sequence"] = np.array([seq_of[int(p)] for p in cr_pos], dtype=np.int64)
    if cx.state is not None:
        CP["created_sequence"][is_new] = np.array([seq_of[int(p)] for p in cpos], dtype=np.int64)
    if mg_new is not None:
        mg_new["created_sequence"] = np.array([seq_of[int(p)] for p in mg.new_g - nP], dtype=np.int64)
    profiles = concat(prof_parts, PROFILE_COLUMNS)

    red_parts = [take(D, ~cx.red_sel)]
    if mg is not None and len(mg.m_pos):
        red_parts.append(
            {
                "from_id": mg.pid[mg.m_lost],
                "to_id": mg.pid[np.array([mg.root[g] for g in mg.m_lost], dtype=np.int64)],
                "merged_at": e_ts[mg.m_pos],
                "evidence_model": w.e_m[mg.m_pos],
                "evidence_event_id": w.e_e[mg.m_pos],
                "window_key": np.full(len(mg.m_pos), window_key, dtype=object),
            }
        )
    if cx.state is not None:
        red_parts.append(state_columns(cx.state.redirects, REDIRECT_COLUMNS))
    redirects = concat(red_parts, REDIRECT_COLUMNS)
    return profiles, redirects, w.next_seq + len(order_pos), nn


def updated_state(
    w: WindowInput,
    s: Split,
    tg: Targets,
    cx: ComplexPart,
    anchor_types: list[str],
    cand: np.ndarray,
    cand_pid: np.ndarray,
    window_key: str,
) -> tuple[GraphState, int]:
    """The new state, and how many profiles the simple path created (for the window's metrics)."""
    agg = _key_aggregates(w, tg)
    registry = _registry(w, s, cx, agg)
    memberships = _memberships(w, s, tg, cx, agg)
    profiles, redirects, next_seq, n_simple_created = _profiles_and_redirects(
        w, s, tg, cx, agg, anchor_types, cand, cand_pid, window_key
    )
    state = GraphState(
        profiles=state_frame(PROFILE_COLUMNS, profiles),
        profile_values=state_frame(PROFILE_VALUE_COLUMNS, memberships),
        value_registry=state_frame(REGISTRY_COLUMNS, registry),
        redirects=state_frame(REDIRECT_COLUMNS, redirects),
        next_sequence=next_seq,
    )
    return state, n_simple_created
