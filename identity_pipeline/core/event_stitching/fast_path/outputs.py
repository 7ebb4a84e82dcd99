"""Fast path: the window's attribution rows (one per event) and audit rows, in the reference's order.

Audits are ordered by event, then blocked-value audits first (once per value and window, at the value's first
event and row), then the rows each path wrote in the order it wrote them; releases come before every event.
"""

from __future__ import annotations

import numpy as np

from identity_pipeline.core.event_stitching.fast_path.complex_path import ReferencePart
from identity_pipeline.core.event_stitching.fast_path.inputs import Subgraph, WindowEvents
from identity_pipeline.core.event_stitching.fast_path.merge_walk import MergeWalk
from identity_pipeline.core.event_stitching.fast_path.outcome import (
    AUDIT_CODE,
    BLOCKED_DETAIL,
    CONFLICTED,
    EXCLUDED,
    MERGE_DETAIL,
    NO_MATCHABLE,
    NO_REASON,
    STITCHED,
)
from identity_pipeline.core.event_stitching.fast_path.split import Split, walk_keys
from identity_pipeline.core.event_stitching.fast_path.updates import Assembled, Targets


def attribution(
    sub: Subgraph,
    win: WindowEvents,
    s: Split,
    tg: Targets,
    cx: ReferencePart | None,
    asm: Assembled,
) -> tuple[np.ndarray, ...]:
    """(status, reason, profile seq, deciding type, deciding value) per event."""
    nE = win.nE
    status = np.full(nE, EXCLUDED, dtype=np.int8)
    reason = np.full(nE, NO_MATCHABLE, dtype=np.int8)
    profile = np.full(nE, -1, dtype=np.int64)
    dec_t = np.full(nE, -1, dtype=np.int64)
    dec_v = np.full(nE, -1, dtype=np.int64)
    # excluded directly: conflicted when a value quarantined before the window was there (the first one in
    # walk order decides), else nothing matchable
    if len(s.q_rows):
        q_e = win.o_e[s.q_rows]
        sel = ~s.ev_usable[q_e]
        rows, q_e = s.q_rows[sel], q_e[sel]
        o = np.lexsort((walk_keys(sub, win, rows), q_e))
        rows, q_e = rows[o], q_e[o]
        first = np.ones(len(q_e), dtype=bool)
        first[1:] = q_e[1:] != q_e[:-1]
        e1, v1 = q_e[first], win.o_v[rows[first]]
        reason[e1] = CONFLICTED
        dec_v[e1] = v1
        dec_t[e1] = sub.v_type[v1]
    fast = np.flatnonzero(s.ev_fast)
    status[fast] = STITCHED
    reason[fast] = NO_REASON
    profile[fast] = asm.seq_of_ref[tg.ev_ref[fast]]
    dec_v[fast] = tg.ev_dec[fast]
    dec_t[fast] = sub.v_type[tg.ev_dec[fast]]
    if cx is not None:
        e = cx.events
        status[e], reason[e] = cx.a_status, cx.a_reason
        profile[e] = np.where(cx.a_ref >= 0, asm.seq_of_ref[np.maximum(cx.a_ref, 0)], -1)
        dec_t[e], dec_v[e] = cx.a_type, cx.a_value
    return status, reason, profile, dec_t, dec_v


def audits(
    win: WindowEvents,
    s: Split,
    mg: MergeWalk | None,
    cx: ReferencePart | None,
    asm: Assembled,
    releases: list[int],
) -> tuple[np.ndarray, ...]:
    """(event, kind, value, profile seq, other profile seq, detail) per audit row, ordered."""
    parts: list[tuple[np.ndarray, ...]] = []  # o1, o2, o3, e, kind, v, p, other, detail

    def seqs(refs: np.ndarray) -> np.ndarray:
        return np.where(refs >= 0, asm.seq_of_ref[np.maximum(refs, 0)], -1)

    if releases:
        n = len(releases)
        parts.append(
            (
                np.full(n, -1),
                np.ones(n, np.int64),
                np.arange(n),
                np.full(n, -1),
                np.full(n, AUDIT_CODE["released_value"]),
                np.asarray(releases, dtype=np.int64),
                np.full(n, -1),
                np.full(n, -1),
                np.full(n, "released in config (released_values)", dtype=object),
            )
        )
    if len(s.b_rows):
        rows = s.b_rows
        b_v = win.o_v[rows]
        o = np.lexsort((rows, win.o_e[rows]))
        rows, b_v = rows[o], b_v[o]
        _, first = np.unique(b_v, return_index=True)
        rows = rows[first]
        n = len(rows)
        e = win.o_e[rows]
        parts.append(
            (
                e,
                np.zeros(n, np.int64),
                rows,
                e,
                np.full(n, AUDIT_CODE["blocked_value"]),
                win.o_v[rows],
                np.full(n, -1),
                np.full(n, -1),
                np.full(n, BLOCKED_DETAIL, dtype=object),
            )
        )
    if cx is not None and len(cx.au_e):
        n = len(cx.au_e)
        parts.append(
            (
                cx.au_e,
                np.ones(n, np.int64),
                np.arange(n),
                cx.au_e,
                cx.au_kind.astype(np.int64),
                cx.au_v,
                seqs(cx.au_ref),
                seqs(cx.au_other),
                cx.au_detail,
            )
        )
    if mg is not None and len(mg.m_e):
        n = len(mg.m_e)
        parts.append(
            (
                mg.m_e,
                np.ones(n, np.int64),
                np.arange(n),
                mg.m_e,
                np.full(n, AUDIT_CODE["merge"]),
                mg.m_v,
                seqs(mg.m_survivor),
                seqs(mg.m_lost),
                np.full(n, MERGE_DETAIL, dtype=object),
            )
        )
    if not parts:
        z = np.zeros(0, np.int64)
        return z, z.astype(np.int8), z, z, z, np.zeros(0, dtype=object)
    cols = [np.concatenate([p[i] for p in parts]) for i in range(9)]
    o = np.lexsort((cols[2], cols[1], cols[0]))
    e, kind, v, p, other, detail = (cols[i][o] for i in range(3, 9))
    return (
        e.astype(np.int64),
        kind.astype(np.int8),
        v.astype(np.int64),
        p.astype(np.int64),
        other.astype(np.int64),
        detail.astype(object),
    )
