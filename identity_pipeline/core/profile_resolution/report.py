"""identity_matched_ids and identity_golden_report (long form: section, scope, metric, value)."""

from __future__ import annotations

import duckdb

from identity_pipeline.config.profile_resolution import ProfileResolutionConfig
from identity_pipeline.core.profile_resolution.sources import sql_literal
from identity_pipeline.core.source_io import quote_ident

SCHEMA = "pr_stage"


def build_matched_ids(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Non-blocked standardized values (usable or over-shared) of each resolved profile."""
    con.execute(
        f"""
        create or replace table {SCHEMA}.identity_matched_ids as
        select l.dinmo_id, iv.identifier as identifier_type, iv.value,
               cast(count(*) as integer) as record_count,
               array_to_string(list_sort(list(distinct iv.source)), ',') as sources
        from {SCHEMA}.identifier_values iv
        join {SCHEMA}.identity_lookup l using (source, record_id)
        where iv.status <> 'blocked'
        group by all
        order by l.dinmo_id, identifier_type, iv.value
        """
    )
    n = con.execute(f"select count(*) from {SCHEMA}.identity_matched_ids").fetchone()[0]
    return {"matched_ids": int(n)}


def _long(select_sql: str) -> str:
    return (
        f"select section, scope, metric, cast(value as double) as value from "
        f"(unpivot ({select_sql}) on columns(* exclude (section, scope)) into name metric value value)"
    )


def _category_columns(total: str) -> str:
    cats = ("unique", "matched", "conflict", "missing")
    counts = ", ".join(
        f"cast(count(*) filter (where category = '{c}') as double) as {c}_records" for c in cats
    )
    rates = ", ".join(
        f"cast(count(*) filter (where category = '{c}') as double) / nullif({total}, 0) as {c}_rate"
        for c in cats
    )
    resolved = (
        f"cast(count(*) filter (where category <> 'missing') as double) / nullif({total}, 0) "
        "as resolution_rate"
    )
    return f"cast(count(*) as double) as source_records, {counts}, {rates}, {resolved}"


def build_report(con: duckdb.DuckDBPyConnection, pr: ProfileResolutionConfig) -> dict[str, int]:
    # One category per input row: missing (unresolved) / conflict / matched / unique.
    con.execute(
        f"""
        create or replace temp table _pr_conflict as
        select rid_a as rid from {SCHEMA}._pair_status where status = 'rejected_conflict_limit'
        union select rid_b from {SCHEMA}._pair_status where status = 'rejected_conflict_limit'
        """
    )
    con.execute(
        f"""
        create or replace temp table _pr_cat as
        select l.source, case when c.rid is not null then 'conflict'
                              when l.cluster_size > 1 then 'matched' else 'unique' end as category
        from {SCHEMA}.identity_lookup l join {SCHEMA}.source_records r using (source, record_id)
        left join _pr_conflict c on c.rid = r.rid
        union all select source, 'missing' from {SCHEMA}.identity_unresolved_records
        """
    )
    parts = []
    reasons = (
        "missing_primary_key",
        "duplicate_primary_key",
        "no_usable_identifier",
        "only_blocked_values",
        "cluster_too_large",
    )
    reason_cols = ", ".join(
        f"(select count(*) from {SCHEMA}.identity_unresolved_records where reason = '{r}') as unresolved_{r}"
        for r in reasons
    )
    parts.append(
        _long(
            f"""select 'totals' as section, 'all' as scope, {_category_columns("count(*)")},
                   (select count(*) from {SCHEMA}.identity_golden) as golden_records,
                   (select count(*) from {SCHEMA}.match_pairs) as match_pairs,
                   (select count(*) from {SCHEMA}.match_pairs where status = 'applied') as pairs_applied,
                   (select count(*) from {SCHEMA}.match_pairs where status = 'rejected_conflict_limit')
                     as pairs_rejected_conflict_limit,
                   (select count(*) from {SCHEMA}.match_pairs where status = 'rejected_cluster_too_large')
                     as pairs_rejected_cluster_too_large,
                   {reason_cols}
                from _pr_cat"""
        )
    )
    src_values = ", ".join(f"({sql_literal(s.name)})" for s in pr.sources)
    parts.append(
        _long(
            f"""select 'source' as section, s.source as scope, {_category_columns("count(c.category)")}
                from (values {src_values}) s(source) left join _pr_cat c using (source)
                group by s.source"""
        )
    )
    n_accepted = f"(select count(*) from {SCHEMA}.source_records)"
    for rank, rule in enumerate(pr.rules, start=1):
        fields = [c.field for c in rule.conditions]
        applicable = " and ".join(f"{quote_ident(f)} is not null" for f in fields)
        parts.append(
            _long(
                f"""with st as (
                        select p.rid_a, p.rid_b, s.status from {SCHEMA}._pairs p join {SCHEMA}._pair_status s
                        using (rid_a, rid_b) where p.rule_rank = {rank}
                    ), rec as (
                        select rid_a as rid, status from st union all select rid_b, status from st
                    ), m as (
                        select count(distinct rid) filter (where status = 'applied') as matched,
                               count(distinct rid) filter (where status = 'rejected_conflict_limit')
                                 as conflict,
                               (select count(*) from st) as pairs,
                               (select count(*) from st where status = 'applied') as pairs_applied
                        from rec
                    ), a as (select count(*) as applicable from {SCHEMA}._usable where {applicable})
                    select 'rule' as section, {sql_literal(rule.name)} as scope,
                           a.applicable as applicable_records,
                           a.applicable / nullif({n_accepted}, 0) as applicable_rate,
                           m.matched as matched_records, m.matched / nullif({n_accepted}, 0) as matched_rate,
                           m.conflict as conflict_records,
                           m.conflict / nullif({n_accepted}, 0) as conflict_rate,
                           m.pairs, m.pairs_applied
                    from a, m"""
            )
        )
    ident_values = ", ".join(f"({sql_literal(i)})" for i in pr.identifiers)
    parts.append(
        _long(
            f"""select 'identifier' as section, i.identifier as scope,
                       count(iv.rid) as records_with_value,
                       count(iv.rid) / nullif({n_accepted}, 0) as completeness,
                       count(iv.rid) filter (where iv.status = 'usable') / nullif({n_accepted}, 0)
                         as usable_rate,
                       count(iv.rid) filter (where iv.status = 'blocked') / nullif({n_accepted}, 0)
                         as blocked_rate,
                       count(iv.rid) filter (where iv.status = 'over_shared') / nullif({n_accepted}, 0)
                         as over_shared_rate,
                       count(distinct iv.value) as distinct_values
                from (values {ident_values}) i(identifier)
                left join {SCHEMA}.identifier_values iv using (identifier)
                group by i.identifier"""
        )
    )
    parts.append(f"select 'dinmo_ids', 'all', metric, cast(value as double) from {SCHEMA}._id_changes")
    con.execute(
        f"""create or replace table {SCHEMA}.identity_golden_report as
            select * from ({" union all ".join(parts)}) order by section, scope, metric"""
    )
    con.execute("drop table if exists _pr_cat")
    con.execute("drop table if exists _pr_conflict")
    n = con.execute(f"select count(*) from {SCHEMA}.identity_golden_report").fetchone()[0]
    return {"report_rows": int(n)}
