"""Fast path, fifth step: the window's attribution rows (one per event, in reference order) and audit rows
(releases; blocked values once per value at their first event; the complex path's and the merges')."""

from __future__ import annotations

import numpy as np
import pandas as pd

from identity_pipeline.core.event_stitching.batched.arrays import Columns, concat, object_frame, rows_frame
from identity_pipeline.core.event_stitching.batched.complex_path import ComplexPart
from identity_pipeline.core.event_stitching.batched.split import Split
from identity_pipeline.core.event_stitching.batched.targets import Targets
from identity_pipeline.core.event_stitching.batched.window_input import WindowInput
from identity_pipeline.core.event_stitching.engine import ATTRIBUTION_COLUMNS, AUDIT_COLUMNS
from identity_pipeline.core.event_stitching.reference import Context
from identity_pipeline.core.event_stitching.state import NAT

_ROW_COLUMNS = ["pos", *[c for c in ATTRIBUTION_COLUMNS if c != "window_key"]]


def _excluded_rows(w: WindowInput, s: Split, ctx: Context) -> Columns:
    """Events without a usable value: `no_matchable_identifier`, or `conflicted_identifier_value` decided by
    their first value (walk order) quarantined before the window."""
    x = np.flatnonzero(s.ev_excluded)
    rows = {
        "pos": x,
        "model": w.e_m[x],
        "event_id": w.e_e[x],
        "event_ts": w.e_ts[x],
        "dinmo_stitched_profile_id": np.full(len(x), None, dtype=object),
        "status": np.full(len(x), "excluded", dtype=object),
        "reason": np.full(len(x), "no_matchable_identifier", dtype=object),
        "decided_by_identifier_type": np.full(len(x), None, dtype=object),
        "decided_by_value": np.full(len(x), None, dtype=object),
    }
    if len(w.Q):
        qf = object_frame(
            {
                "pos": w.Q["pos"].to_numpy(dtype=np.int64),
                "p": np.array([ctx.priority[t] for t in w.Q["t"].to_numpy()], dtype=np.int64),
                "t": w.Q["t"].to_numpy(),
                "v": w.Q["v"].to_numpy(),
            }
        )
        qf = qf[~s.ev_usable[qf["pos"].to_numpy()]]
        qf = qf.sort_values(["pos", "p", "t", "v"], kind="mergesort").drop_duplicates("pos", keep="first")
        at = np.searchsorted(x, qf["pos"].to_numpy())  # x is sorted; every qf pos is an excluded event
        rows["reason"][at] = "conflicted_identifier_value"
        rows["decided_by_identifier_type"][at] = qf["t"].to_numpy()
        rows["decided_by_value"][at] = qf["v"].to_numpy()
    return rows


def _complex_rows(cx: ComplexPart) -> Columns:
    ca = list(zip(*cx.attribution, strict=True))
    return {
        "pos": np.array([cx.pos_of[k] for k in zip(ca[0], ca[1], strict=True)], dtype=np.int64),
        "model": np.array(ca[0], dtype=object),
        "event_id": np.array(ca[1], dtype=object),
        "event_ts": np.array([NAT if v is None else v for v in ca[2]], dtype=np.int64),
        "dinmo_stitched_profile_id": np.array(ca[4], dtype=object),
        "status": np.array(ca[5], dtype=object),
        "reason": np.array(ca[6], dtype=object),
        "decided_by_identifier_type": np.array(ca[7], dtype=object),
        "decided_by_value": np.array(ca[8], dtype=object),
    }


def attribution_frame(
    w: WindowInput, s: Split, tg: Targets, cx: ComplexPart, ctx: Context, window_key: str
) -> pd.DataFrame:
    pos = tg.fast_pos
    profile = tg.comp_target[s.c_ev[pos]]
    if tg.mg is not None:  # each merge event's profile as decided then (before later merges)
        profile[np.searchsorted(pos, tg.mg.ev)] = tg.mg.pid[tg.mg.ev_g]
    dec_t, dec_v = tg.decided_by(w, pos)
    fast = {
        "pos": pos,
        "model": w.e_m[pos],
        "event_id": w.e_e[pos],
        "event_ts": w.e_ts[pos],
        "dinmo_stitched_profile_id": profile,
        "status": np.full(len(pos), "stitched", dtype=object),
        "reason": np.full(len(pos), None, dtype=object),
        "decided_by_identifier_type": dec_t,
        "decided_by_value": dec_v,
    }
    parts = [fast, _excluded_rows(w, s, ctx)]
    if cx.attribution:
        parts.append(_complex_rows(cx))
    A = concat(parts, _ROW_COLUMNS)
    o = np.argsort(A["pos"], kind="stable")
    A = {c: v[o] for c, v in A.items()}
    A["window_key"] = np.full(len(o), window_key, dtype=object)
    return rows_frame(A, ATTRIBUTION_COLUMNS, "event_ts")


def _blocked_audits(w: WindowInput, window_key: str) -> Columns:
    Bs = w.B.sort_values(["pos", "row"], kind="mergesort").drop_duplicates("key", keep="first")
    bpos = Bs["pos"].to_numpy(dtype=np.int64)
    nb = len(Bs)
    return {
        "o1": bpos,
        "o2": np.zeros(nb, np.int64),
        "o3": Bs["row"].to_numpy(dtype=np.int64),
        "window_key": np.full(nb, window_key, dtype=object),
        "event_ts": w.e_ts[bpos],
        "audit_type": np.full(nb, "blocked_value", dtype=object),
        "identifier_type": Bs["t"].to_numpy(dtype=object),
        "value": Bs["v"].to_numpy(dtype=object),
        "dinmo_stitched_profile_id": np.full(nb, None, dtype=object),
        "other_dinmo_stitched_profile_id": np.full(nb, None, dtype=object),
        "model": w.e_m[bpos],
        "event_id": w.e_e[bpos],
        "detail": np.full(nb, "blocked value, not used", dtype=object),
    }


def _reference_audits(rows: list[tuple], o1: np.ndarray) -> Columns:
    """Audit tuples of the reference (releases, complex path) as columns ordered after `o1`."""
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    d = {"o1": o1, "o2": np.ones(n, np.int64), "o3": np.arange(n, dtype=np.int64)}
    for i, c in enumerate(AUDIT_COLUMNS):
        if c == "event_ts":
            d[c] = np.array([NAT if v is None else v for v in cols[i]], dtype=np.int64)
        else:
            d[c] = np.array(cols[i], dtype=object)
    return d


def _merge_audits(w: WindowInput, tg: Targets, window_key: str) -> Columns:
    mg = tg.mg
    n = len(mg.m_pos)
    return {
        "o1": mg.m_pos,
        "o2": np.ones(n, np.int64),
        "o3": np.arange(n, dtype=np.int64),
        "window_key": np.full(n, window_key, dtype=object),
        "event_ts": w.e_ts[mg.m_pos],
        "audit_type": np.full(n, "merge", dtype=object),
        "identifier_type": w.k_t[mg.m_key],
        "value": w.k_v[mg.m_key],
        "dinmo_stitched_profile_id": mg.pid[mg.m_survivor],
        "other_dinmo_stitched_profile_id": mg.pid[mg.m_lost],
        "model": w.e_m[mg.m_pos],
        "event_id": w.e_e[mg.m_pos],
        "detail": np.full(n, "merged into the oldest profile", dtype=object),
    }


def audit_frame(w: WindowInput, tg: Targets, cx: ComplexPart, window_key: str) -> pd.DataFrame:
    """Audit rows ordered by (event position, blocked first, then the order each path wrote them)."""
    parts = []
    if len(w.B):
        parts.append(_blocked_audits(w, window_key))
    if w.audit_release:
        parts.append(_reference_audits(w.audit_release, np.full(len(w.audit_release), -1, dtype=np.int64)))
    if cx.audits:
        o1 = np.array([cx.pos_of.get((a[7], a[8]), -1) for a in cx.audits], dtype=np.int64)
        parts.append(_reference_audits(cx.audits, o1))
    if tg.mg is not None and len(tg.mg.m_pos):
        parts.append(_merge_audits(w, tg, window_key))
    acols = ["o1", "o2", "o3", *AUDIT_COLUMNS]
    if parts:
        AU = concat(parts, acols)
        o = np.lexsort((AU["o3"], AU["o2"], AU["o1"]))
        AU = {c: v[o] for c, v in AU.items()}
    else:
        AU = {
            c: np.empty(0, dtype=np.int64 if c in ("o1", "o2", "o3", "event_ts") else object) for c in acols
        }
    return rows_frame(AU, AUDIT_COLUMNS, "event_ts")
