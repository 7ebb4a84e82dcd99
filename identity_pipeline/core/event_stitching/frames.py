"""The fast path on the engine's frame API: `GraphState` + event / observation frames (strings) in,
`WindowResult` frames out.

`engine.stitch_window` runs this by default, so every engine test (and the property tests comparing it with
`reference.py`) exercises the integer-coded fast path (`fast_path/`) the store runs. Strings are coded here
once: values by (identifier_type, value), profiles by id, events in processing order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.fast_path import (
    MEMBERSHIP_STATUS,
    NAT,
    PROFILE_STATUS,
    Policy,
    Subgraph,
    WindowEvents,
    WindowOutcome,
    profile_id,
    profile_key,
    stitch_arrays,
)
from identity_pipeline.core.event_stitching.fast_path.outcome import AUDIT_KINDS, REASON, STATUS
from identity_pipeline.core.event_stitching.fast_path.updates import apply_changes
from identity_pipeline.core.event_stitching.metrics import window_metrics
from identity_pipeline.core.event_stitching.reference import profile_id_for
from identity_pipeline.core.event_stitching.state import (
    PROFILE_COLUMNS,
    PROFILE_VALUE_COLUMNS,
    REDIRECT_COLUMNS,
    REGISTRY_COLUMNS,
    GraphState,
)


def _objects(s: pd.Series) -> np.ndarray:
    if len(s) == 0:
        return np.empty(0, dtype=object)
    return s.to_numpy(dtype=object, na_value=None)


def _micros(s: pd.Series) -> np.ndarray:
    if len(s) == 0:
        return np.empty(0, dtype=np.int64)
    return pd.to_datetime(s).astype("datetime64[us]").to_numpy().view(np.int64)


def _ts(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=np.int64).view("datetime64[us]"), dtype="datetime64[us]")


def _obj(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object), dtype="object")


@dataclass
class _Names:
    value_text: np.ndarray
    models: np.ndarray
    event_ids: np.ndarray

    def values(self, v: np.ndarray) -> np.ndarray:
        return self.value_text[v]

    def events(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.models[e], self.event_ids[e]


@dataclass
class Coded:
    """A window's frames coded for the fast path, with what it takes to decode the outcome."""

    sub: Subgraph
    win: WindowEvents
    policy: Policy
    v_type_name: np.ndarray
    v_value: np.ndarray
    id_of_seq: dict[int, str]
    models: np.ndarray
    event_ids: np.ndarray


def _ordered_events(events: pd.DataFrame | None, observations: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (model, event_id) in processing order (event_ts, model, event_id), as
    `reference.prepare_events`: an event's earliest timestamp among `events`; an event only in `observations`
    with its first observation row's timestamp."""

    def frame(df: pd.DataFrame | None) -> pd.DataFrame:
        if df is None or len(df) == 0:
            return pd.DataFrame({"m": _obj([]), "e": _obj([]), "ts": np.zeros(0, np.int64)})
        return pd.DataFrame(
            {
                "m": _obj(_objects(df["model"].astype(str))),
                "e": _obj(_objects(df["event_id"].astype(str))),
                "ts": _micros(df["event_ts"]),
            }
        )

    ev = frame(events).sort_values("ts", kind="mergesort").drop_duplicates(["m", "e"], keep="first")
    extra = frame(observations).drop_duplicates(["m", "e"], keep="first")
    if len(extra):
        known = pd.MultiIndex.from_frame(ev[["m", "e"]])
        extra = extra[~pd.MultiIndex.from_frame(extra[["m", "e"]]).isin(known)]
        ev = pd.concat([ev, extra], ignore_index=True)
    return ev.sort_values(["ts", "m", "e"], kind="mergesort").reset_index(drop=True)


def code_window(
    state: GraphState,
    events: pd.DataFrame | None,
    observations: pd.DataFrame | None,
    config: EventStitchingConfig,
) -> Coded:
    pol = Policy.from_config(config)
    t_index = pol.index()
    ev = _ordered_events(events, observations)
    has_obs = observations is not None and len(observations) > 0
    o_m = _objects(observations["model"].astype(str)) if has_obs else np.empty(0, object)
    o_eid = _objects(observations["event_id"].astype(str)) if has_obs else np.empty(0, object)
    o_t = _objects(observations["identifier_type"]) if has_obs else np.empty(0, object)
    o_val = _objects(observations["value"]) if has_obs else np.empty(0, object)
    o_b = observations["blocked"].to_numpy(dtype=bool) if has_obs else np.zeros(0, bool)

    pv, reg, prof = state.profile_values, state.value_registry, state.profiles
    m_t, m_val = _objects(pv["identifier_type"]), _objects(pv["value"])
    r_t, r_val = _objects(reg["identifier_type"]), _objects(reg["value"])
    all_t = np.concatenate([o_t, m_t, r_t])
    unknown = sorted(set(all_t.tolist()) - set(t_index))
    if unknown:
        raise ValueError(f"identifier types not in the config: {', '.join(map(str, unknown))}")
    all_val = np.concatenate([o_val, m_val, r_val])
    keys = pd.MultiIndex.from_arrays([all_t, all_val])
    codes, uniques = pd.factorize(keys)
    v_type_name = np.asarray(uniques.get_level_values(0), dtype=object)
    v_value = np.asarray(uniques.get_level_values(1), dtype=object)
    v_type = np.array([t_index[t] for t in v_type_name], dtype=np.int64)
    nO, nM = len(o_t), len(m_t)
    o_v, m_v, r_v = codes[:nO], codes[nO : nO + nM], codes[nO + nM :]
    nV = len(v_type)
    # a value's rank among the values of its type, as strings sort (the walk's tie-break)
    rank = np.empty(nV, dtype=np.int64)
    if nV:
        order = pd.DataFrame({"t": v_type, "v": v_value}).sort_values(["t", "v"], kind="mergesort").index
        rank[order.to_numpy()] = np.arange(nV)

    sub = Subgraph.empty(nV, v_type)
    if len(r_v):
        sub.v_reg[r_v] = True
        sub.v_first[r_v] = _micros(reg["first_seen_at"])
        sub.v_last[r_v] = _micros(reg["last_seen_at"])
        sub.v_count[r_v] = reg["event_count"].to_numpy(dtype=np.int64)
        sub.v_quar[r_v] = reg["quarantined"].fillna(False).to_numpy(dtype=bool)
        sub.v_quar_at[r_v] = _micros(reg["quarantined_at"])
    ids = _objects(prof["dinmo_stitched_profile_id"])
    seq = prof["created_sequence"].to_numpy(dtype=np.int64) if len(prof) else np.zeros(0, np.int64)
    seq_of_id = dict(zip(ids.tolist(), seq.tolist(), strict=True))
    row_of_id = {p: i for i, p in enumerate(ids.tolist())}
    merged_to = _objects(prof["merged_to_dinmo_stitched_profile_id"])
    missing = sorted({m for m in merged_to.tolist() if m is not None and m not in seq_of_id})
    m_ids = _objects(pv["dinmo_stitched_profile_id"])
    missing += sorted({p for p in m_ids.tolist() if p not in row_of_id})
    if missing:
        raise ValueError(f"the state refers to profiles it does not hold: {', '.join(missing[:5])}")
    sub.p_seq = seq
    sub.p_key = np.array([profile_key(p) for p in ids], dtype=np.uint64)
    sub.p_created = _micros(prof["created_at"])
    sub.p_first = _micros(prof["first_seen_at"])
    sub.p_last = _micros(prof["last_seen_at"])
    sub.p_status = np.array([PROFILE_STATUS.index(s) for s in _objects(prof["status"])], dtype=np.int8)
    sub.p_merged_to = np.array([-1 if m is None else seq_of_id[m] for m in merged_to], dtype=np.int64)
    sub.p_count = prof["event_count"].to_numpy(dtype=np.int64) if len(prof) else np.zeros(0, np.int64)
    sub.p_known = prof["is_known"].fillna(False).to_numpy(dtype=bool) if len(prof) else np.zeros(0, bool)
    sub.m_p = np.array([row_of_id[p] for p in m_ids], dtype=np.int64)
    sub.m_v = m_v.astype(np.int64)
    sub.m_status = np.array([MEMBERSHIP_STATUS.index(s) for s in _objects(pv["status"])], dtype=np.int8)
    sub.m_first = _micros(pv["first_seen_at"])
    sub.m_last = _micros(pv["last_seen_at"])
    sub.m_count = pv["event_count"].to_numpy(dtype=np.int64) if len(pv) else np.zeros(0, np.int64)
    sub.next_seq = int(state.next_sequence)

    # observations: distinct (event, value) in first-row order, with the last row's blocked flag (as the
    # reference reads them)
    e_of = {(m, e): i for i, (m, e) in enumerate(zip(ev["m"].tolist(), ev["e"].tolist(), strict=True))}
    o_e = np.array([e_of[k] for k in zip(o_m.tolist(), o_eid.tolist(), strict=True)], dtype=np.int64)
    pairs = pd.DataFrame({"e": o_e, "v": o_v, "b": o_b})
    last_b = pairs.drop_duplicates(["e", "v"], keep="last").set_index(["e", "v"])["b"]
    pairs = pairs.drop_duplicates(["e", "v"], keep="first")
    o_blocked = last_b.reindex(pd.MultiIndex.from_arrays([pairs["e"], pairs["v"]])).to_numpy(dtype=bool)
    o_e, o_v = pairs["e"].to_numpy(np.int64), pairs["v"].to_numpy(np.int64)

    models, eids = ev["m"].to_numpy(dtype=object), ev["e"].to_numpy(dtype=object)
    e_key = np.array(
        [profile_key(profile_id_for(m, e)) for m, e in zip(models, eids, strict=True)], np.uint64
    )
    reg_of = {(int(v_type[v]), v_value[v]): int(v) for v in r_v.tolist()}
    released = []
    for t, v, at in pol.releases():
        row = reg_of.get((t_index[t], v))
        if row is not None:
            released.append((row, at))
    win = WindowEvents(
        e_ts=ev["ts"].to_numpy(dtype=np.int64),
        e_key=e_key,
        o_e=o_e,
        o_v=o_v,
        o_blocked=o_blocked,
        o_tie=rank[o_v],
        names=_Names(v_value, models, eids),
        released=released,
    )
    return Coded(
        sub=sub,
        win=win,
        policy=pol,
        v_type_name=v_type_name,
        v_value=v_value,
        id_of_seq=dict(zip(seq.tolist(), ids.tolist(), strict=True)),
        models=models,
        event_ids=eids,
    )


def decode_state(c: Coded, out: WindowOutcome, redirects: pd.DataFrame, window_key: str) -> GraphState:
    st, alive = apply_changes(c.sub, out.changes)
    id_of_seq = dict(c.id_of_seq)
    for s_, k in zip(st.p_seq[c.sub.nP :].tolist(), st.p_key[c.sub.nP :].tolist(), strict=True):
        id_of_seq[int(s_)] = profile_id(k)
    ids = np.array([id_of_seq[int(s_)] for s_ in st.p_seq], dtype=object)
    merged_to = np.array([None if m < 0 else id_of_seq[int(m)] for m in st.p_merged_to], dtype=object)
    # older redirects to a profile merged now follow it to the survivor (one hop), as its merged_to
    merged = {id_of_seq[f]: id_of_seq[t] for f, t in out.merged_to.items()}
    red = redirects[REDIRECT_COLUMNS].reset_index(drop=True).copy()
    if len(red) and merged:
        old_to = red["to_id"].astype(object)
        hit = old_to.isin(list(merged)).to_numpy()
        red["to_id"] = old_to.map(merged).fillna(old_to).astype(object)
        row = {p: i for i, p in enumerate(ids.tolist())}
        for f, t in zip(red["from_id"][hit].tolist(), red["to_id"][hit].tolist(), strict=True):
            if f in row:
                merged_to[row[f]] = t
    if len(out.r_from):
        new = pd.DataFrame(
            {
                "from_id": _obj([id_of_seq[int(s_)] for s_ in out.r_from]),
                "to_id": _obj([id_of_seq[int(s_)] for s_ in out.r_to]),
                "merged_at": _ts(out.r_at),
                "evidence_model": _obj(c.models[out.r_e]),
                "evidence_event_id": _obj(c.event_ids[out.r_e]),
                "window_key": _obj([window_key] * len(out.r_from)),
            }
        )
        red = pd.concat([red, new], ignore_index=True) if len(red) else new
    red["merged_at"] = red["merged_at"].astype("datetime64[us]")
    for col in ("from_id", "to_id", "evidence_model", "evidence_event_id", "window_key"):
        red[col] = red[col].astype(object)
    mv = st.m_v[alive]
    profiles = pd.DataFrame(
        {
            "dinmo_stitched_profile_id": _obj(ids),
            "created_sequence": pd.Series(st.p_seq, dtype="int64"),
            "created_at": _ts(st.p_created),
            "first_seen_at": _ts(st.p_first),
            "last_seen_at": _ts(st.p_last),
            "status": _obj(np.asarray(PROFILE_STATUS, dtype=object)[st.p_status]),
            "merged_to_dinmo_stitched_profile_id": _obj(merged_to),
            "event_count": pd.Series(st.p_count, dtype="int64"),
            "is_known": pd.Series(st.p_known, dtype="bool"),
        },
        columns=PROFILE_COLUMNS,
    )
    memberships = pd.DataFrame(
        {
            "dinmo_stitched_profile_id": _obj(ids[st.m_p[alive]]),
            "identifier_type": _obj(c.v_type_name[mv]),
            "value": _obj(c.v_value[mv]),
            "status": _obj(np.asarray(MEMBERSHIP_STATUS, dtype=object)[st.m_status[alive]]),
            "first_seen_at": _ts(st.m_first[alive]),
            "last_seen_at": _ts(st.m_last[alive]),
            "event_count": pd.Series(st.m_count[alive], dtype="int64"),
        },
        columns=PROFILE_VALUE_COLUMNS,
    )
    rv = np.flatnonzero(st.v_reg)
    registry = pd.DataFrame(
        {
            "identifier_type": _obj(c.v_type_name[rv]),
            "value": _obj(c.v_value[rv]),
            "first_seen_at": _ts(st.v_first[rv]),
            "last_seen_at": _ts(st.v_last[rv]),
            "quarantined": pd.Series(st.v_quar[rv], dtype="bool"),
            "quarantined_at": _ts(st.v_quar_at[rv]),
            "event_count": pd.Series(st.v_count[rv], dtype="int64"),
        },
        columns=REGISTRY_COLUMNS,
    )
    # canonical row order, as the reference's `Graph.to_state` (row order carries no meaning otherwise)
    return GraphState(profiles, memberships, registry, red[REDIRECT_COLUMNS], st.next_seq).sorted()


def decode_outputs(c: Coded, out: WindowOutcome, window_key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(attribution, audit_events) frames as `engine.build_result` builds them."""
    from identity_pipeline.core.event_stitching.engine import ATTRIBUTION_COLUMNS, AUDIT_COLUMNS

    id_of_seq = dict(c.id_of_seq)
    for s_, k in zip(out.changes.new_seq.tolist(), out.changes.new_key.tolist(), strict=True):
        id_of_seq[int(s_)] = profile_id(k)

    def pids(seqs: np.ndarray) -> np.ndarray:
        return np.array([None if s_ < 0 else id_of_seq[int(s_)] for s_ in seqs], dtype=object)

    def strings(table, codes: np.ndarray) -> np.ndarray:
        out_ = np.full(len(codes), None, dtype=object)
        ok = codes >= 0
        out_[ok] = np.asarray(table, dtype=object)[codes[ok]]
        return out_

    names = np.asarray(c.policy.names, dtype=object)
    nE = len(out.a_status)
    attribution = pd.DataFrame(
        {
            "model": _obj(c.models),
            "event_id": _obj(c.event_ids),
            "event_ts": _ts(c.win.e_ts),
            "window_key": _obj([window_key] * nE),
            "dinmo_stitched_profile_id": _obj(pids(out.a_profile)),
            "status": _obj(np.asarray(STATUS, dtype=object)[out.a_status]),
            "reason": _obj(np.asarray(REASON, dtype=object)[out.a_reason]),
            "decided_by_identifier_type": _obj(strings(names, out.a_type)),
            "decided_by_value": _obj(strings(c.v_value, out.a_value)),
        },
        columns=ATTRIBUTION_COLUMNS,
    )
    e = out.au_e
    has_e = e >= 0
    ts = np.full(len(e), NAT, dtype=np.int64)
    ts[has_e] = c.win.e_ts[e[has_e]]
    audit = pd.DataFrame(
        {
            "window_key": _obj([window_key] * len(e)),
            "event_ts": _ts(ts),
            "audit_type": _obj(np.asarray(AUDIT_KINDS, dtype=object)[out.au_kind]),
            "identifier_type": _obj(c.v_type_name[out.au_v]),
            "value": _obj(c.v_value[out.au_v]),
            "dinmo_stitched_profile_id": _obj(pids(out.au_p)),
            "other_dinmo_stitched_profile_id": _obj(pids(out.au_other)),
            "model": _obj(strings(c.models, e)),
            "event_id": _obj(strings(c.event_ids, e)),
            "detail": _obj(out.au_detail),
        },
        columns=AUDIT_COLUMNS,
    )
    return attribution, audit


def stitch_frames(
    state: GraphState,
    events: pd.DataFrame | None,
    observations: pd.DataFrame | None,
    config: EventStitchingConfig,
    window_key: str,
):
    """`engine.stitch_window` through the fast path."""
    from identity_pipeline.core.event_stitching.engine import WindowResult
    from identity_pipeline.core.event_stitching.observations import empty_observations

    c = code_window(state, events, observations, config)
    out = stitch_arrays(c.sub, c.win, c.policy, window_key)
    new_state = decode_state(c, out, state.redirects, window_key)
    attribution, audit = decode_outputs(c, out, window_key)
    obs = observations if observations is not None else empty_observations()
    metrics, by_model, by_type = window_metrics(
        attribution, audit, obs, out.profiles_created, out.profiles_merged
    )
    metrics["events_fast_path"] = out.events_fast_path
    return WindowResult(
        state=new_state,
        attribution=attribution,
        audit_events=audit,
        metrics=metrics,
        metrics_by_model=by_model,
        metrics_by_identifier_type=by_type,
    )
