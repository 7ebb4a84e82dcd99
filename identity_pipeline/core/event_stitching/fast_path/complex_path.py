"""Fast path, HARD components: the per-event reference (`reference.py`) on just their events and the part of
the subgraph they reach, with strings; its decisions are turned back into the fast path's codes.

The part: the profiles the components reach, all their memberships in the subgraph, the registry rows of every
value their events observe. Redirects are not needed: re-pointing older redirects to a profile merged now is
the caller's job for every path (`WindowOutcome.merged_to`). The same function runs a whole window through the
reference when the fast path cannot (`window.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from identity_pipeline.core.event_stitching.fast_path.inputs import (
    MEMBERSHIP_STATUS,
    NAT,
    PROFILE_STATUS,
    Policy,
    Subgraph,
    WindowEvents,
)
from identity_pipeline.core.event_stitching.fast_path.outcome import AUDIT_CODE, REASON, STATUS
from identity_pipeline.core.event_stitching.reference import run_reference
from identity_pipeline.core.event_stitching.state import (
    PROFILE_COLUMNS,
    PROFILE_VALUE_COLUMNS,
    REDIRECT_COLUMNS,
    REGISTRY_COLUMNS,
    GraphState,
)


def profile_id(key: int | np.integer) -> str:
    """The published id of a profile from its 64-bit key (`reference.profile_id_for` is `esp_` + 16 hex)."""
    return f"esp_{int(key):016x}"


def profile_key(pid: str) -> int:
    return int(pid[4:], 16)


@dataclass
class ReferencePart:
    """What the reference decided for a set of events, in the fast path's codes. Profiles are references:
    a loaded row `p`, or `nP + e` for the profile event `e` created."""

    events: np.ndarray
    profiles: np.ndarray  # loaded profile rows taken over (replaced by `p_*`)
    memberships: np.ndarray  # loaded membership rows taken over (replaced by `m_*`)
    values: np.ndarray  # value rows whose registry the reference returns (`v_*`)
    # profiles after the window (loaded ones taken over, and created ones)
    p_ref: np.ndarray
    p_key: np.ndarray
    p_created: np.ndarray
    p_first: np.ndarray
    p_last: np.ndarray
    p_status: np.ndarray
    p_merged_to: np.ndarray  # ref, -1
    p_count: np.ndarray
    p_known: np.ndarray
    # memberships of those profiles after the window
    m_ref: np.ndarray
    m_v: np.ndarray
    m_status: np.ndarray
    m_first: np.ndarray
    m_last: np.ndarray
    m_count: np.ndarray
    # registry of `values`
    v_reg: np.ndarray
    v_first: np.ndarray
    v_last: np.ndarray
    v_count: np.ndarray
    v_quar: np.ndarray
    v_quar_at: np.ndarray
    # attribution of `events`
    a_status: np.ndarray
    a_reason: np.ndarray
    a_ref: np.ndarray
    a_type: np.ndarray
    a_value: np.ndarray
    # audits (blocked-value audits left out: the fast path writes those for every event)
    au_e: np.ndarray
    au_kind: np.ndarray
    au_v: np.ndarray
    au_ref: np.ndarray
    au_other: np.ndarray
    au_detail: np.ndarray
    # redirects of the merges
    r_from: np.ndarray
    r_to: np.ndarray
    r_at: np.ndarray
    r_e: np.ndarray
    created_events: np.ndarray
    merged: int


def _ts(values: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=np.int64).view("datetime64[us]"), dtype="datetime64[us]")


def _objects(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object), dtype="object")


def _int(x: int | None) -> int:
    return NAT if x is None else int(x)


@dataclass
class Part:
    """The rows a set of events and profiles hand to the reference: `events` (positions, sorted), the loaded
    `profiles` (rows) they reach, their observations (`o_rows`), the profiles' memberships (`mem`) and every
    value the reference reads (`values`, whose strings it needs)."""

    events: np.ndarray
    profiles: np.ndarray
    o_rows: np.ndarray
    mem: np.ndarray
    values: np.ndarray


def part_rows(sub: Subgraph, win: WindowEvents, events: np.ndarray, profiles: np.ndarray) -> Part:
    events = np.asarray(events, dtype=np.int64)
    profiles = np.asarray(profiles, dtype=np.int64)
    o_rows = np.flatnonzero(np.isin(win.o_e, events))
    p_mask = np.zeros(sub.nP, dtype=bool)
    p_mask[profiles] = True
    mem = np.flatnonzero(p_mask[sub.m_p])
    values = np.unique(np.concatenate([win.o_v[o_rows], sub.m_v[mem]]))
    return Part(events, profiles, o_rows, mem, values)


def run_part(
    sub: Subgraph,
    win: WindowEvents,
    pol: Policy,
    v_quar: np.ndarray,
    v_quar_at: np.ndarray,
    part: Part,
    window_key: str,
) -> ReferencePart:
    """The reference on the part's events and profiles (`part_rows`). `v_quar` / `v_quar_at`: the registry's
    quarantine after the window's releases."""
    nP = sub.nP
    events, profiles, o_rows, mem, values = part.events, part.profiles, part.o_rows, part.mem, part.values
    obs_v = win.o_v[o_rows]
    obs_u = np.unique(obs_v)
    reg_v = obs_u[sub.v_reg[obs_u]]

    names = np.asarray(pol.names, dtype=object)
    v_text = np.empty(sub.nV, dtype=object)
    v_text[values] = win.names.values(values)
    models, eids = win.names.events(events)
    pid_of_p = np.array([profile_id(k) for k in sub.p_key[profiles]], dtype=object)
    pid_full = np.empty(nP, dtype=object)
    pid_full[profiles] = pid_of_p
    seq_to_id = {int(s): p for s, p in zip(sub.p_seq[profiles].tolist(), pid_of_p.tolist(), strict=True)}

    state = GraphState(
        profiles=pd.DataFrame(
            {
                "dinmo_stitched_profile_id": _objects(pid_of_p),
                "created_sequence": pd.Series(sub.p_seq[profiles], dtype="int64"),
                "created_at": _ts(sub.p_created[profiles]),
                "first_seen_at": _ts(sub.p_first[profiles]),
                "last_seen_at": _ts(sub.p_last[profiles]),
                "status": _objects(np.asarray(PROFILE_STATUS, dtype=object)[sub.p_status[profiles]]),
                "merged_to_dinmo_stitched_profile_id": _objects(
                    [seq_to_id.get(int(s)) if s >= 0 else None for s in sub.p_merged_to[profiles]]
                ),
                "event_count": pd.Series(sub.p_count[profiles], dtype="int64"),
                "is_known": pd.Series(sub.p_known[profiles], dtype="bool"),
            },
            columns=PROFILE_COLUMNS,
        ),
        profile_values=pd.DataFrame(
            {
                "dinmo_stitched_profile_id": _objects(pid_full[sub.m_p[mem]]),
                "identifier_type": _objects(names[sub.v_type[sub.m_v[mem]]]),
                "value": _objects(v_text[sub.m_v[mem]]),
                "status": _objects(np.asarray(MEMBERSHIP_STATUS, dtype=object)[sub.m_status[mem]]),
                "first_seen_at": _ts(sub.m_first[mem]),
                "last_seen_at": _ts(sub.m_last[mem]),
                "event_count": pd.Series(sub.m_count[mem], dtype="int64"),
            },
            columns=PROFILE_VALUE_COLUMNS,
        ),
        value_registry=pd.DataFrame(
            {
                "identifier_type": _objects(names[sub.v_type[reg_v]]),
                "value": _objects(v_text[reg_v]),
                "first_seen_at": _ts(sub.v_first[reg_v]),
                "last_seen_at": _ts(sub.v_last[reg_v]),
                "quarantined": pd.Series(v_quar[reg_v], dtype="bool"),
                "quarantined_at": _ts(v_quar_at[reg_v]),
                "event_count": pd.Series(sub.v_count[reg_v], dtype="int64"),
            },
            columns=REGISTRY_COLUMNS,
        ),
        redirects=pd.DataFrame({c: pd.Series([], dtype="object") for c in REDIRECT_COLUMNS}),
        next_sequence=sub.next_seq,
    )
    state.redirects["merged_at"] = _ts(np.zeros(0, np.int64))
    pos_in = np.searchsorted(events, win.o_e[o_rows])
    ev_frame = pd.DataFrame(
        {"model": _objects(models), "event_id": _objects(eids), "event_ts": _ts(win.e_ts[events])}
    )
    obs_frame = pd.DataFrame(
        {
            "model": _objects(models[pos_in]),
            "event_id": _objects(eids[pos_in]),
            "event_ts": _ts(win.e_ts[win.o_e[o_rows]]),
            "identifier_type": _objects(names[sub.v_type[obs_v]]),
            "value": _objects(v_text[obs_v]),
            "blocked": pd.Series(win.o_blocked[o_rows], dtype="bool"),
        }
    )
    g, ctx = run_reference(state, ev_frame, obs_frame, pol.config, window_key)
    return _decode(
        sub, win, pol, g, ctx, events, models, eids, profiles, pid_of_p, mem, values, obs_u, v_text
    )


def _decode(sub, win, pol, g, ctx, events, models, eids, profiles, pid_of_p, mem, values, reg_v, v_text):
    nP = sub.nP
    t_index = pol.index()
    # strings back to codes
    ref_of_id = dict(zip(pid_of_p.tolist(), profiles.tolist(), strict=True))
    e_of_event = {
        (m, x): int(e) for m, x, e in zip(models.tolist(), eids.tolist(), events.tolist(), strict=True)
    }
    v_of = {(int(sub.v_type[v]), v_text[v]): int(v) for v in values.tolist()}
    att = sorted(ctx.attribution, key=lambda r: e_of_event[(r[0], r[1])])
    # a created profile's first attribution row is the event that created it (rule 7)
    created_id: dict[str, int] = {}
    for r in att:
        if r[4] is not None and r[4] not in ref_of_id:
            created_id.setdefault(r[4], nP + e_of_event[(r[0], r[1])])

    def ref(pid: str | None) -> int:
        if pid is None:
            return -1
        r = ref_of_id.get(pid)
        return created_id[pid] if r is None else r

    def vrow(t: str | None, v: str | None) -> int:
        return -1 if v is None else v_of[(t_index[t], v)]

    profs = list(g.profiles.values())
    created = sorted(created_id[p.pid] - nP for p in profs if p.pid not in ref_of_id)
    mrows = [(ref(pid), k, m) for pid, d in g.members.items() for k, m in d.items()]
    reg = [g.registry.get((pol.names[int(sub.v_type[v])], v_text[v])) for v in reg_v.tolist()]
    st_code = {s: i for i, s in enumerate(MEMBERSHIP_STATUS)}
    aud = [a for a in ctx.audits if a[2] != "blocked_value"]
    red = sorted(g.redirects.items())
    status_code = {s: i for i, s in enumerate(STATUS)}
    reason_code = {r: i for i, r in enumerate(REASON)}
    return ReferencePart(
        events=events,
        profiles=profiles,
        memberships=mem,
        values=reg_v,
        p_ref=np.array([ref(p.pid) for p in profs], dtype=np.int64),
        p_key=np.array([profile_key(p.pid) for p in profs], dtype=np.uint64),
        p_created=np.array([_int(p.created_at) for p in profs], dtype=np.int64),
        p_first=np.array([_int(p.first_seen) for p in profs], dtype=np.int64),
        p_last=np.array([_int(p.last_seen) for p in profs], dtype=np.int64),
        p_status=np.array([PROFILE_STATUS.index(p.status) for p in profs], dtype=np.int8),
        p_merged_to=np.array([ref(p.merged_to) for p in profs], dtype=np.int64),
        p_count=np.array([p.count for p in profs], dtype=np.int64),
        p_known=np.array([bool(p.known) for p in profs], dtype=bool),
        m_ref=np.array([r for r, _, _ in mrows], dtype=np.int64),
        m_v=np.array([vrow(k[0], k[1]) for _, k, _ in mrows], dtype=np.int64),
        m_status=np.array([st_code[m.status] for _, _, m in mrows], dtype=np.int8),
        m_first=np.array([_int(m.first_seen) for _, _, m in mrows], dtype=np.int64),
        m_last=np.array([_int(m.last_seen) for _, _, m in mrows], dtype=np.int64),
        m_count=np.array([m.count for _, _, m in mrows], dtype=np.int64),
        v_reg=np.array([r is not None for r in reg], dtype=bool),
        v_first=np.array([NAT if r is None else _int(r.first_seen) for r in reg], dtype=np.int64),
        v_last=np.array([NAT if r is None else _int(r.last_seen) for r in reg], dtype=np.int64),
        v_count=np.array([0 if r is None else r.count for r in reg], dtype=np.int64),
        v_quar=np.array([False if r is None else bool(r.quarantined) for r in reg], dtype=bool),
        v_quar_at=np.array([NAT if r is None else _int(r.quarantined_at) for r in reg], dtype=np.int64),
        a_status=np.array([status_code[r[5]] for r in att], dtype=np.int8),
        a_reason=np.array([reason_code[r[6]] for r in att], dtype=np.int8),
        a_ref=np.array([ref(r[4]) for r in att], dtype=np.int64),
        a_type=np.array([-1 if r[7] is None else t_index[r[7]] for r in att], dtype=np.int64),
        a_value=np.array([vrow(r[7], r[8]) for r in att], dtype=np.int64),
        au_e=np.array([e_of_event.get((a[7], a[8]), -1) for a in aud], dtype=np.int64),
        au_kind=np.array([AUDIT_CODE[a[2]] for a in aud], dtype=np.int8),
        au_v=np.array([vrow(a[3], a[4]) for a in aud], dtype=np.int64),
        au_ref=np.array([ref(a[5]) for a in aud], dtype=np.int64),
        au_other=np.array([ref(a[6]) for a in aud], dtype=np.int64),
        au_detail=np.array([a[9] for a in aud], dtype=object),
        r_from=np.array([ref(f) for f, _ in red], dtype=np.int64),
        r_to=np.array([ref(r[0]) for _, r in red], dtype=np.int64),
        r_at=np.array([_int(r[1]) for _, r in red], dtype=np.int64),
        r_e=np.array([e_of_event[(r[2], r[3])] for _, r in red], dtype=np.int64),
        created_events=np.array(created, dtype=np.int64),
        merged=ctx.profiles_merged,
    )
