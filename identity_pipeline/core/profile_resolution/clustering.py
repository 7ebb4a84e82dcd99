"""Group records: connected components over match pairs with two guardrails.

1. Components over every match pair (scipy). Only components holding more distinct values of a limited
   identifier (`max_values_per_profile`) than allowed are replayed with an ordered union-find: pairs strongest
   rule first, then anchor value, then record keys; a pair whose union would exceed a limit is rejected
   (`rejected_conflict_limit`).
2. `max_cluster_size`: an oversize component is split by dropping the edges of its weakest rule (rule order),
   repeatedly, until every part fits. A part that is still too large when only one rule's edges remain is not
   merged: its records go to identity_unresolved_records (`cluster_too_large`) and its pairs, like every
   dropped pair, get `rejected_cluster_too_large`.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from identity_pipeline.config.profile_resolution import ProfileResolutionConfig
from identity_pipeline.core.profile_resolution.matching import write_match_pairs

SCHEMA = "pr_stage"
APPLIED, CONFLICT, TOO_LARGE = 0, 1, 2
STATUS_NAMES = {
    APPLIED: "applied",
    CONFLICT: "rejected_conflict_limit",
    TOO_LARGE: "rejected_cluster_too_large",
}


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    m = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(m, directed=False)[1]


def _find(parent: dict[int, int], x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def apply_conflict_limits(
    n: int, a: np.ndarray, b: np.ndarray, status: np.ndarray, limited: dict[str, tuple[int, pd.DataFrame]]
) -> None:
    """Mark pairs that would exceed a `max_values_per_profile` limit (edges are already in apply order)."""
    if not limited or len(a) == 0:
        return
    labels = components(n, a, b)
    bad = np.zeros(labels.max() + 1 if n else 0, dtype=bool)
    for limit, vals in limited.values():
        if vals.empty:
            continue
        per = pd.DataFrame({"label": labels[vals["rid"].to_numpy()], "value": vals["value"].to_numpy()})
        counts = per.groupby("label")["value"].nunique()
        bad[counts.index[counts.to_numpy() > limit].to_numpy()] = True
    if not bad.any():
        return
    edge_bad = np.flatnonzero(bad[labels[a]])
    rid_values = {
        ident: dict(zip(v["rid"].to_numpy().tolist(), v["value"].tolist(), strict=True))
        for ident, (_, v) in limited.items()
    }
    parent: dict[int, int] = {}
    held: dict[int, dict[str, set]] = {}

    def node(x: int) -> int:
        if x not in parent:
            parent[x] = x
            held[x] = {i: ({rv[x]} if x in rv else set()) for i, rv in rid_values.items()}
        return x

    for e in edge_bad.tolist():
        ra, rb = _find(parent, node(int(a[e]))), _find(parent, node(int(b[e])))
        if ra == rb:
            continue
        merged = {i: held[ra][i] | held[rb][i] for i in rid_values}
        if any(len(merged[i]) > limited[i][0] for i in rid_values):
            status[e] = CONFLICT
            continue
        parent[rb] = ra
        held[ra] = merged
        del held[rb]


def apply_cluster_size(
    n: int, a: np.ndarray, b: np.ndarray, rank: np.ndarray, status: np.ndarray, max_size: int | None
) -> np.ndarray:
    """Split oversize components on their weakest rules; returns a mask of the records still too large."""
    too_large = np.zeros(n, dtype=bool)
    if max_size is None or len(a) == 0:
        return too_large
    live = np.flatnonzero(status == APPLIED)
    labels = components(n, a[live], b[live])
    sizes = np.bincount(labels)
    big = np.flatnonzero(sizes > max_size)
    if len(big) == 0:
        return too_large
    edge_label = labels[a[live]]
    queue = [live[edge_label == lab] for lab in big.tolist()]
    while queue:
        edges = queue.pop()
        ranks = np.unique(rank[edges])
        if len(ranks) <= 1:
            too_large[a[edges]] = True
            too_large[b[edges]] = True
            status[edges] = TOO_LARGE
            continue
        weakest = ranks.max()
        status[edges[rank[edges] == weakest]] = TOO_LARGE
        keep = edges[rank[edges] < weakest]
        nodes, inv = np.unique(np.concatenate([a[keep], b[keep]]), return_inverse=True)
        local = components(len(nodes), inv[: len(keep)], inv[len(keep) :])
        part_sizes = np.bincount(local)
        part_of_edge = local[inv[: len(keep)]]
        for lab in np.flatnonzero(part_sizes > max_size).tolist():
            queue.append(keep[part_of_edge == lab])
    return too_large


def build_clusters(con: duckdb.DuckDBPyConnection, pr: ProfileResolutionConfig) -> dict[str, int]:
    """pr_stage._clusters (rid, cluster = smallest rid of the cluster, entered_by, cluster_size),
    pr_stage.identity_unresolved_records, and statuses in pr_stage.match_pairs."""
    n = int(con.execute(f"select count(*) from {SCHEMA}.source_records").fetchone()[0])
    pairs = con.execute(
        f"select rid_a, rid_b, rule_rank from {SCHEMA}._pairs order by rule_rank, anchor_value, rid_a, rid_b"
    ).fetchnumpy()
    a = np.asarray(pairs["rid_a"], dtype=np.int64)
    b = np.asarray(pairs["rid_b"], dtype=np.int64)
    rank = np.asarray(pairs["rule_rank"], dtype=np.int64)
    status = np.full(len(a), APPLIED, dtype=np.int8)

    limited: dict[str, tuple[int, pd.DataFrame]] = {}
    for ident, cfg in pr.identifiers.items():
        if cfg.max_values_per_profile is not None:
            vals = con.execute(
                f"select rid, value from {SCHEMA}.identifier_values "
                "where identifier = ? and status <> 'blocked'",
                [ident],
            ).df()
            limited[ident] = (cfg.max_values_per_profile, vals)
    apply_conflict_limits(n, a, b, status, limited)
    too_large = apply_cluster_size(n, a, b, rank, status, pr.max_cluster_size)

    live = np.flatnonzero(status == APPLIED)
    labels = components(n, a[live], b[live])
    # cluster id = smallest rid in the cluster (deterministic for a given input)
    first = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    cluster = first[labels] if n else np.zeros(0, dtype=np.int64)
    # a dropped edge whose two records still ended in the same cluster is applied after all
    st_final = status.copy()
    same = (status == TOO_LARGE) & (cluster[a] == cluster[b]) & ~too_large[a] & ~too_large[b]
    st_final[same] = APPLIED
    status_df = pd.DataFrame(
        {
            "rid_a": a.astype(np.int32),
            "rid_b": b.astype(np.int32),
            "status": pd.Series(st_final).map(STATUS_NAMES).astype("string"),
        }
    )
    con.register("_pr_status", status_df)
    con.execute(f"create or replace table {SCHEMA}._pair_status as select * from _pr_status")
    con.unregister("_pr_status")
    write_match_pairs(
        con,
        status_sql="s.status",
        status_join=f"join {SCHEMA}._pair_status s on s.rid_a = p.rid_a and s.rid_b = p.rid_b",
    )
    con.register(
        "_pr_cl", pd.DataFrame({"rid": np.arange(n, dtype=np.int32), "cluster": cluster, "big": too_large})
    )
    rules = pd.DataFrame({"rule_rank": range(1, len(pr.rules) + 1), "rule": [r.name for r in pr.rules]})
    con.register("_pr_rules", rules)
    con.execute(
        f"""
        create or replace table {SCHEMA}._clusters as
        with usable as (select distinct rid from {SCHEMA}.identifier_values where status = 'usable'),
        applied as (
            select p.rid_a as rid, p.rule_rank from {SCHEMA}._pairs p join {SCHEMA}._pair_status s
              on s.rid_a = p.rid_a and s.rid_b = p.rid_b where s.status = 'applied'
            union all
            select p.rid_b, p.rule_rank from {SCHEMA}._pairs p join {SCHEMA}._pair_status s
              on s.rid_a = p.rid_a and s.rid_b = p.rid_b where s.status = 'applied'
        ), entered as (select rid, min(rule_rank) as rule_rank from applied group by rid)
        select c.rid, c.cluster, coalesce(r.rule, 'singleton') as entered_by,
               count(*) over (partition by c.cluster) as cluster_size
        from _pr_cl c join usable u using (rid)
        left join entered e using (rid) left join _pr_rules r using (rule_rank)
        where not c.big
        """
    )
    _unresolved(con)
    con.execute(f"create or replace table {SCHEMA}._too_large as select rid from _pr_cl where big")
    con.unregister("_pr_cl")
    con.unregister("_pr_rules")
    counts = dict(zip(*np.unique(st_final, return_counts=True), strict=True))
    return {
        "pairs_applied": int(counts.get(APPLIED, 0)),
        "pairs_rejected_conflict_limit": int(counts.get(CONFLICT, 0)),
        "pairs_rejected_cluster_too_large": int(counts.get(TOO_LARGE, 0)),
        "records_cluster_too_large": int(too_large.sum()),
    }


def _unresolved(con: duckdb.DuckDBPyConnection) -> None:
    """Rejected keys + records without usable identifier (+ `cluster_too_large`)."""
    con.execute(
        f"""
        create or replace table {SCHEMA}.identity_unresolved_records as
        with iv as (
            select rid, bool_or(status = 'usable') as any_usable,
                   string_agg(identifier || '=' || value || ' (' || status || ')', '; '
                              order by identifier) filter (where status <> 'usable') as not_usable
            from {SCHEMA}.identifier_values group by rid
        )
        select source, record_id, reason, detail from {SCHEMA}.rejected_records
        union all
        select r.source, r.record_id,
               case when iv.rid is null then 'no_usable_identifier' else 'only_blocked_values' end,
               case when iv.rid is null then 'no identifier value after standardization'
                    else 'identifier values not usable for matching: ' || iv.not_usable end
        from {SCHEMA}.source_records r left join iv using (rid)
        where iv.rid is null or not iv.any_usable
        union all
        select r.source, r.record_id, 'cluster_too_large',
               'component still above max_cluster_size with only its strongest rule''s pairs'
        from {SCHEMA}.source_records r join _pr_cl c using (rid) where c.big
        order by 1, 2, 3
        """
    )
