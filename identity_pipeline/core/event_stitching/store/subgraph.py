"""The subgraph one window's rules read (`fast_path.Subgraph`), taken from the run's in-memory graph.

Values: the window's values (all their registry rows and memberships), the released values, and the values
of the profile-wide memberships of the profiles holding a window value. Profiles: the holders (plus, after a
created-id collision, the profiles whose ids collide). Everything is renumbered to local rows; the maps back
to global ids are kept beside it (`Extracted`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identity_pipeline.core.event_stitching.fast_path import Subgraph
from identity_pipeline.core.event_stitching.fast_path.split import present
from identity_pipeline.core.event_stitching.store.graph_cache import GraphCache


@dataclass
class Extracted:
    sub: Subgraph
    vids: np.ndarray  # local value row -> vid
    pids: np.ndarray  # local profile row -> pid (created_sequence)
    rows: np.ndarray  # local membership row -> row of the cache's memberships
    observed: np.ndarray | None = None  # local rows of `extract`'s `observed` vids, when it was given them

    def local_values(self, cache: GraphCache, vids: np.ndarray) -> np.ndarray:
        """Local rows of these vids (all in the subgraph)."""
        scratch = cache.v.scratch
        scratch[self.vids] = np.arange(len(self.vids))
        out = scratch[vids].copy()
        scratch[self.vids] = -1
        return out


def extract(
    cache: GraphCache,
    window_vids: np.ndarray,
    released_vids: np.ndarray,
    next_seq: int,
    extra_pids: np.ndarray | None = None,
    observed: np.ndarray | None = None,
) -> Extracted:
    """Load what the window reads (if the run has not yet) and return it as a `Subgraph`. `window_vids`:
    distinct, their type codes set in the cache. `observed` (vids, all in the subgraph: the window's
    observations) are also mapped to local rows while the map is built (`Extracted.observed`; the same as
    `local_values`, without writing the map a second time)."""
    cache.load_values(np.concatenate([window_vids, released_vids]))
    V, P, M = cache.v, cache.p, cache.m
    rows_w = cache.value_rows(window_vids)
    extra = extra_pids is not None and len(extra_pids) > 0
    if extra:
        cache.load_profiles(extra_pids)  # first: they may be past the cache's profiles so far
    holder_mask = present(M.pid[rows_w], P.n)
    if extra:
        holder_mask[extra_pids] = True
    holders = np.flatnonzero(holder_mask)
    cache.load_wide(holders)
    rows_p = cache.wide_rows(holders)
    in_w = present(window_vids, V.n)
    rows_p = rows_p[~in_w[M.vid[rows_p]]]  # rows of window values are already in rows_w
    rows = np.concatenate([rows_w, rows_p])
    extra_v = M.vid[rows_p]
    extra_v = np.flatnonzero(present(extra_v, V.n) & ~in_w)
    rel = released_vids[~in_w[released_vids]] if len(released_vids) else released_vids
    rel = rel[~present(extra_v, V.n)[rel]] if len(rel) else rel
    vids = np.concatenate([window_vids, extra_v, np.unique(rel)])
    scratch_v, scratch_p = V.scratch, P.scratch
    scratch_v[vids] = np.arange(len(vids))
    scratch_p[holders] = np.arange(len(holders))
    m_vid, m_pid, m_status, m_first, m_last, m_count = M.take(
        rows, "vid", "pid", "status", "first", "last", "count"
    )
    m_v = scratch_v[m_vid]
    m_p = scratch_p[m_pid]
    observed_local = None if observed is None else scratch_v[observed]
    scratch_v[vids] = -1
    scratch_p[holders] = -1
    v_code, v_reg, v_first, v_last, v_count, v_quar, v_quar_at = V.take(
        vids, "code", "reg", "first", "last", "count", "quar", "quar_at"
    )
    walk = cache.code_walk[v_code.astype(np.int64)]
    if (walk < 0).any():
        bad = vids[walk < 0][:5].tolist()
        raise ValueError(f"values {bad} have identifier types the config does not know")
    p_key, p_created, p_first, p_last, p_status, p_merged_to, p_count, p_known = P.take(
        holders, "key", "created", "first", "last", "status", "merged_to", "count", "known"
    )
    pids = holders.astype(np.int64)
    sub = Subgraph(
        v_type=walk,
        v_reg=v_reg,
        v_first=v_first,
        v_last=v_last,
        v_count=v_count,
        v_quar=v_quar,
        v_quar_at=v_quar_at,
        p_seq=pids,
        p_key=p_key,
        p_created=p_created,
        p_first=p_first,
        p_last=p_last,
        p_status=p_status,
        p_merged_to=p_merged_to,
        p_count=p_count,
        p_known=p_known,
        m_p=m_p,
        m_v=m_v,
        m_status=m_status,
        m_first=m_first,
        m_last=m_last,
        m_count=m_count,
        next_seq=next_seq,
    )
    return Extracted(sub=sub, vids=vids, pids=pids, rows=rows, observed=observed_local)
