"""Golden record: one row per dinmo_id, one survivorship strategy per field, all in SQL.

Candidate values: identifiers use their standardized value (blocked values excluded, over-shared values kept:
they are real values, only unfit for matching), except `name` identifiers which keep the source spelling
(trimmed) so accents and case survive; other fields use the source text (trimmed, blank = null).
Null values never win. Orderings (first row wins; `order_ts` = the source's `order_by` field):

* source_priority: priority asc, order_ts desc (nulls last), source, record_id
* most_recent:     order_ts desc (nulls last), priority asc, source, record_id
* most_frequent:   number of records holding the value desc, priority asc, order_ts desc, source, record_id
* longest:         length desc, priority asc, order_ts desc, source, record_id
* first_non_null:  order_ts asc (nulls last: the earliest known value), priority asc, source, record_id

The representative record is the first record of the profile in `source_priority` order.
"""

from __future__ import annotations

import duckdb

from identity_pipeline.config.profile_resolution import ProfileResolutionConfig
from identity_pipeline.core.profile_resolution.sources import sql_literal
from identity_pipeline.core.source_io import quote_ident

SCHEMA = "pr_stage"
ORDERINGS = {
    "source_priority": "source_priority asc, order_ts desc nulls last, source, record_id",
    "most_recent": "order_ts desc nulls last, source_priority asc, source, record_id",
    "most_frequent": "freq desc, source_priority asc, order_ts desc nulls last, source, record_id",
    "longest": "length(v) desc, source_priority asc, order_ts desc nulls last, source, record_id",
    "first_non_null": "order_ts asc nulls last, source_priority asc, source, record_id",
}


def build_golden(con: duckdb.DuckDBPyConnection, pr: ProfileResolutionConfig) -> dict[str, int]:
    fields = pr.golden_fields()
    con.execute(
        f"""
        create or replace temp table _pr_lk as
        select l.dinmo_id, r.* from {SCHEMA}.identity_lookup l
        join {SCHEMA}.source_records r using (source, record_id)
        """
    )
    parts = []
    for f in fields:
        if f in pr.identifiers:
            v = "iv.raw_value" if pr.identifiers[f].standardizer == "name" else "iv.value"
            parts.append(
                f"""select k.dinmo_id, {sql_literal(f)} as field, {v} as v, k.source_priority, k.order_ts,
                           k.source, k.record_id
                    from _pr_lk k join {SCHEMA}.identifier_values iv
                      on iv.rid = k.rid and iv.identifier = {sql_literal(f)} and iv.status <> 'blocked'"""
            )
        else:
            parts.append(
                f"""select dinmo_id, {sql_literal(f)} as field, {quote_ident(f)} as v,
                           source_priority, order_ts,
                           source, record_id
                    from _pr_lk where {quote_ident(f)} is not null"""
            )
    if parts:
        con.execute(
            f"""create or replace temp table _pr_long as
                select *, count(*) over (partition by dinmo_id, field, v) as freq
                from ({" union all ".join(parts)})"""
        )
        by_strategy: dict[str, list[str]] = {}
        for f in fields:
            by_strategy.setdefault(pr.strategy_for(f), []).append(f)
        winners = " union all ".join(
            f"""select dinmo_id, field, first(v order by {ORDERINGS[strategy]}) as v from _pr_long
                where field in ({", ".join(sql_literal(f) for f in fs)}) group by dinmo_id, field"""
            for strategy, fs in by_strategy.items()
        )
        con.execute(f"create or replace temp table _pr_win as {winners}")
        pivot = ", ".join(
            f"first(w.v) filter (where w.field = {sql_literal(f)}) as {quote_ident(f)}" for f in fields
        )
        con.execute(
            "create or replace temp table _pr_wide as "
            f"select dinmo_id, {pivot} from _pr_win w group by dinmo_id"
        )
    else:
        con.execute("create or replace temp table _pr_wide as select distinct dinmo_id from _pr_lk")
    key_names = ", ".join(f"({sql_literal(s.name)}, {sql_literal(s.primary_key)})" for s in pr.sources)
    field_cols = "".join(f", w.{quote_ident(f)}" for f in fields)
    con.execute(
        f"""
        create or replace table {SCHEMA}.identity_golden as
        with stats as (
            select dinmo_id, count(*) as record_count, count(distinct source) as source_count,
                   array_to_string(list_sort(list(distinct source)), ',') as sources,
                   min(order_ts) as first_seen, max(order_ts) as last_updated,
                   first(source order by {ORDERINGS["source_priority"]}) as representative_source,
                   first(record_id order by {ORDERINGS["source_priority"]}) as representative_entity_key_value
            from _pr_lk group by dinmo_id
        ), keys(source, key_name) as (values {key_names})
        select s.dinmo_id{field_cols}, cast(s.record_count as integer) as record_count,
               cast(s.source_count as integer) as source_count, s.sources, s.first_seen, s.last_updated,
               s.representative_source, k.key_name as representative_entity_key_name,
               s.representative_entity_key_value
        from stats s left join _pr_wide w using (dinmo_id)
        join keys k on k.source = s.representative_source
        order by s.dinmo_id
        """
    )
    for t in ("_pr_lk", "_pr_long", "_pr_win", "_pr_wide"):
        con.execute(f"drop table if exists {t}")
    n = con.execute(f"select count(*) from {SCHEMA}.identity_golden").fetchone()[0]
    return {"golden_records": int(n)}
