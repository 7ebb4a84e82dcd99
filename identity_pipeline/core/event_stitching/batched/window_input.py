"""Fast path, first step: the window's inputs as the arrays every later step shares.

Events in the reference's order ((event_ts, model, event_id), one row per (model, event_id)); observations as
distinct (event, value) edges split into usable, blocked and quarantined-before-the-window; the window's
distinct usable values ("keys") with where they sit in the loaded memberships and registry. Releases
(`released_values`) apply first, as the reference's `apply_releases`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from identity_pipeline.core.event_stitching.batched.arrays import (
    Columns,
    argsort_rows,
    find,
    given_keys,
    isin,
    micros,
    object_frame,
    objects,
    pair_codes,
    state_columns,
    writable,
)
from identity_pipeline.core.event_stitching.reference import Context
from identity_pipeline.core.event_stitching.rules.quarantine import release_applies
from identity_pipeline.core.event_stitching.state import (
    NAT,
    PROFILE_COLUMNS,
    PROFILE_VALUE_COLUMNS,
    REDIRECT_COLUMNS,
    REGISTRY_COLUMNS,
    GraphState,
)


@dataclass
class WindowInput:
    """Loaded state, ordered events and their observations, as numpy columns and integer keys.

    Events are addressed by their position in reference order (`pos`), values by their index among the
    window's distinct usable values (`k`), loaded profiles by their row in `P`.
    """

    # loaded state (R after the window's releases)
    P: Columns
    M: Columns
    R: Columns
    D: Columns
    next_seq: int
    p_ids: np.ndarray  # loaded profile ids
    m_p: np.ndarray  # membership -> loaded profile row
    m_key: np.ndarray  # value key of each membership
    r_key: np.ndarray  # value key of each registry row
    # events in reference order
    ev_key: np.ndarray
    e_m: np.ndarray
    e_e: np.ndarray
    e_ts: np.ndarray
    ev_key_in: np.ndarray  # keys of the input event rows (to select a component's input rows)
    obs_event_key: np.ndarray  # event key of each input observation row
    # distinct (event, value) edges: pos, key, t(ype), v(alue), b(locked), row (first input row); the usable
    # ones are `u_pos` / `u_k` below
    ob: pd.DataFrame
    B: pd.DataFrame  # blocked
    Q: pd.DataFrame  # quarantined before the window (unusable, change nothing)
    # the window's distinct usable values
    u_pos: np.ndarray  # per usable edge: event position
    u_k: np.ndarray  # per usable edge: key index
    k_t: np.ndarray  # per key: identifier type
    k_v: np.ndarray  # per key: value
    m_k: np.ndarray  # membership -> key index (-1: a value not in the window)
    r_k: np.ndarray  # registry row -> key index (-1)
    audit_release: list[tuple]

    @property
    def nE(self) -> int:
        return len(self.e_ts)

    @property
    def nK(self) -> int:
        return len(self.k_t)

    @property
    def nP(self) -> int:
        return len(self.p_ids)


def release_values(R: Columns, ctx: Context, window_key: str) -> list[tuple]:
    """Un-quarantine the values released in config (`released_values`) in the registry columns `R`, in
    place, as the reference's `apply_releases`; returns their audit rows."""
    audit: list[tuple] = []
    if not (ctx.releases and len(R["value"])):
        return audit
    for (t, v), at in ctx.releases:
        hits = np.flatnonzero((R["identifier_type"] == t) & (R["value"] == v))  # registry keys are unique
        i = int(hits[0]) if len(hits) else -1
        if (
            i >= 0
            and R["quarantined"][i]
            and release_applies(None if R["quarantined_at"][i] == NAT else int(R["quarantined_at"][i]), at)
        ):
            R["quarantined"][i] = False
            R["quarantined_at"][i] = NAT
            audit.append(
                (
                    window_key,
                    NAT,
                    "released_value",
                    t,
                    v,
                    None,
                    None,
                    None,
                    None,
                    "released in config (released_values)",
                )
            )
    return audit


def _ordered_events(events: pd.DataFrame | None, observations: pd.DataFrame | None):
    """Events in reference order with int64 keys of (model, event_id), plus each observation row's event key
    and the observations' (model, event_id) strings when they were read (else None).

    An observation whose event is missing from `events` adds that event (first row wins)."""
    has_events = events is not None and len(events) > 0
    has_obs = observations is not None and len(observations) > 0
    none = np.empty(0, dtype=object)
    ev_m_in = objects(events["model"]) if has_events else none
    ev_e_in = objects(events["event_id"]) if has_events else none
    given = given_keys((events, "ekey"), (observations, "ekey")) if has_events and has_obs else None
    if given is None:
        o_m = objects(observations["model"]) if has_obs else none
        o_e = objects(observations["event_id"]) if has_obs else none
        ev_k_in, o_ek = pair_codes((ev_m_in, ev_e_in), (o_m, o_e))
    else:  # the observations' strings are only read for events missing from `events`
        ev_k_in, o_ek = given
        o_m = o_e = None
    ev = object_frame(
        {
            "m": ev_m_in,
            "e": ev_e_in,
            "ts": micros(events["event_ts"]) if has_events else np.empty(0, np.int64),
            "k": ev_k_in,
        }
    )
    if ev["k"].duplicated().any():
        ev = ev.sort_values("ts", kind="mergesort").drop_duplicates("k", keep="first")
    if has_obs:
        missing = ~isin(o_ek, ev["k"].to_numpy())
        if missing.any():
            if o_m is None or o_e is None:
                o_m, o_e = objects(observations["model"]), objects(observations["event_id"])
            o_ts = micros(observations["event_ts"])
            extra = object_frame(
                {"m": o_m[missing], "e": o_e[missing], "ts": o_ts[missing], "k": o_ek[missing]}
            )
            extra = extra.drop_duplicates("k", keep="first")
            ev = pd.concat([ev, extra], ignore_index=True)
    ev = ev.iloc[argsort_rows(ev["ts"].to_numpy(), ev["m"].to_numpy(), ev["e"].to_numpy())]
    return ev.reset_index(drop=True), ev_k_in, o_ek


def _edges(observations: pd.DataFrame | None, ev_key, o_ek, o_key, o_t, o_v) -> pd.DataFrame:
    """Distinct (event, value) edges of the observations: the first row's order, the last row's blocked
    flag (as the reference reads them)."""
    if observations is None or len(observations) == 0:
        return object_frame(
            {
                "pos": np.empty(0, np.int64),
                "key": [],
                "t": [],
                "v": [],
                "b": np.empty(0, bool),
                "row": np.empty(0, np.int64),
            }
        )
    o_b = observations["blocked"].to_numpy(dtype=bool)
    ob = object_frame(
        {
            "pos": find(ev_key, o_ek),
            "key": o_key,
            "t": o_t,
            "v": o_v,
            "b": o_b,
            "row": np.arange(len(o_b)),
        }
    )
    if ob.duplicated(["pos", "key"], keep=False).any():
        last_b = ob.drop_duplicates(["pos", "key"], keep="last").set_index(["pos", "key"])["b"]
        ob = ob.drop_duplicates(["pos", "key"], keep="first").reset_index(drop=True)
        ob["b"] = last_b.reindex(pd.MultiIndex.from_arrays([ob["pos"], ob["key"]])).to_numpy(dtype=bool)
    return ob


def read_window(
    state: GraphState,
    events: pd.DataFrame | None,
    observations: pd.DataFrame | None,
    ctx: Context,
    window_key: str,
) -> WindowInput | None:
    """The window's arrays, or None when only the reference can run it (no event; a membership of a profile
    that was not loaded)."""
    P = state_columns(state.profiles, PROFILE_COLUMNS)
    M = state_columns(state.profile_values, PROFILE_VALUE_COLUMNS)
    R = writable(state_columns(state.value_registry, REGISTRY_COLUMNS))
    D = state_columns(state.redirects, REDIRECT_COLUMNS)
    audit_release = release_values(R, ctx, window_key)

    has_obs = observations is not None and len(observations) > 0
    ev, ev_k_in, o_ek = _ordered_events(events, observations)
    if len(ev) == 0:
        return None
    none = np.empty(0, dtype=object)
    o_t = objects(observations["identifier_type"]) if has_obs else none
    o_v = objects(observations["value"]) if has_obs else none
    vkeys = (
        given_keys((observations, "vkey"), (state.profile_values, "vkey"), (state.value_registry, "vkey"))
        if has_obs
        else None
    )
    if vkeys is None:
        vkeys = pair_codes((o_t, o_v), (M["identifier_type"], M["value"]), (R["identifier_type"], R["value"]))
    o_key, m_key, r_key = vkeys
    ob = _edges(observations, ev["k"].to_numpy(), o_ek, o_key, o_t, o_v)

    blocked = ob["b"].to_numpy(dtype=bool)
    U = ob[~blocked].reset_index(drop=True)
    B = ob[blocked].reset_index(drop=True)
    # values quarantined before the window (rule 3): unusable, and nothing else happens to them (no
    # attachment, no registry update), so they leave the graph; an event left with none is excluded
    # `conflicted_identifier_value`, decided by its first quarantined value in walk order
    Q = U.iloc[:0]
    if len(U) and R["quarantined"].any():
        uq = isin(U["key"].to_numpy(), r_key[R["quarantined"]])
        if uq.any():
            Q = U[uq].reset_index(drop=True)
            U = U[~uq].reset_index(drop=True)

    # keys: the window's distinct usable values, in first-seen order
    k_codes, k_uniques = pd.factorize(U["key"].to_numpy(), sort=False)
    nK = len(k_uniques)
    u_k = k_codes.astype(np.int64)
    first_u = np.unique(u_k, return_index=True)[1] if nK else np.empty(0, np.int64)

    p_ids = P["dinmo_stitched_profile_id"]
    pkeys = given_keys((state.profiles, "pkey"), (state.profile_values, "pkey"))
    m_p = find(p_ids, M["dinmo_stitched_profile_id"]) if pkeys is None else find(*pkeys)
    if (m_p < 0).any():
        return None  # memberships of profiles not loaded: leave it to the reference
    return WindowInput(
        P=P,
        M=M,
        R=R,
        D=D,
        next_seq=int(state.next_sequence),
        p_ids=p_ids,
        m_p=m_p,
        m_key=m_key,
        r_key=r_key,
        ev_key=ev["k"].to_numpy(),
        e_m=ev["m"].to_numpy(),
        e_e=ev["e"].to_numpy(),
        e_ts=ev["ts"].to_numpy(dtype=np.int64),
        ev_key_in=ev_k_in,
        obs_event_key=o_ek,
        ob=ob,
        B=B,
        Q=Q,
        u_pos=U["pos"].to_numpy(dtype=np.int64),
        u_k=u_k,
        k_t=U["t"].to_numpy()[first_u] if nK else np.empty(0, object),
        k_v=U["v"].to_numpy()[first_u] if nK else np.empty(0, object),
        m_k=find(k_uniques, m_key),
        r_k=find(k_uniques, r_key),
        audit_release=audit_release,
    )
