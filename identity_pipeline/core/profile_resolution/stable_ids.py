"""Stable dinmo_id: carry-over from the last published run, merges, splits, history.

Run numbers: the run number of this run is 1 + the largest run number found in the previously published
`identity_lookup` (record_first_run, dinmo_id_created_run) and `identity_dinmo_id_history`. It is only
*stored* when something new happens (a new record, a new id, a merge or a split), so an identical rerun writes
identical tables.

* A record keeps the id it had in the last run.
* Each old id is *held* by the new cluster containing its oldest member: the member with the smallest
  (record_first_run, source, record_id). The other clusters holding records of that old id are a split.
* A cluster holding several old ids keeps the oldest one: smallest (dinmo_id_created_run, dinmo_id); the
  others are recorded as `merged` into it.
* A cluster holding no old id gets `dm_` + the first 16 hex digits of sha256(source || 0x1f || record_id) of
  its smallest (source, record_id); if that id was ever used before, `#1`, `#2`, … is appended to the hashed
  text until it is new.
"""

from __future__ import annotations

import hashlib

import duckdb
import pandas as pd

from identity_pipeline.core.storage import table_exists

SCHEMA = "pr_stage"
HISTORY_COLUMNS = "old_dinmo_id varchar, dinmo_id varchar, change varchar, run_number integer, detail varchar"


def derive_id(source: str, record_id: str, salt: int = 0) -> str:
    text = f"{source}\x1f{record_id}" + (f"#{salt}" if salt else "")
    return "dm_" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = 'main' and table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def assign_ids(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """pr_stage.identity_lookup, pr_stage.identity_dinmo_id_history and pr_stage._id_changes."""
    if table_exists(con, "identity_lookup"):
        cols = _columns(con, "identity_lookup")
        first_run = "record_first_run" if "record_first_run" in cols else "0"
        created = "dinmo_id_created_run" if "dinmo_id_created_run" in cols else "0"
        con.execute(
            f"""create or replace temp table _pr_prev as
                select source, record_id, dinmo_id as old_id, {first_run} as record_first_run,
                       {created} as old_created from main.identity_lookup"""
        )
    else:
        con.execute(
            "create or replace temp table _pr_prev (source varchar, record_id varchar, old_id varchar, "
            "record_first_run integer, old_created integer)"
        )
    if table_exists(con, "identity_dinmo_id_history"):
        con.execute(
            "create or replace temp table _pr_prev_hist as select old_dinmo_id, dinmo_id, change, "
            "run_number, detail from main.identity_dinmo_id_history"
        )
    else:
        con.execute(f"create or replace temp table _pr_prev_hist ({HISTORY_COLUMNS})")
    run = int(
        con.execute(
            """select coalesce(max(r), 0) + 1 from (
                 select max(record_first_run) as r from _pr_prev
                 union all select max(old_created) from _pr_prev
                 union all select max(run_number) from _pr_prev_hist)"""
        ).fetchone()[0]
    )
    con.execute(
        f"""
        create or replace temp table _pr_m as
        select c.rid, c.cluster, c.entered_by, c.cluster_size, r.source, r.record_id,
               p.old_id, p.record_first_run, p.old_created
        from {SCHEMA}._clusters c join {SCHEMA}.source_records r using (rid)
        left join _pr_prev p using (source, record_id)
        """
    )
    con.execute(
        """
        create or replace temp table _pr_holder as
        select old_id, first(cluster order by record_first_run, source, record_id) as cluster,
               min(old_created) as created
        from _pr_m where old_id is not null group by old_id
        """
    )
    con.execute(
        """
        create or replace temp table _pr_keep as
        select cluster, first(old_id order by created, old_id) as dinmo_id,
               first(created order by created, old_id) as created
        from _pr_holder group by cluster
        """
    )
    new = con.execute(
        f"""
        select c.cluster, r.source, r.record_id
        from (select distinct cluster from _pr_m) c
        join {SCHEMA}.source_records r on r.rid = c.cluster
        anti join _pr_keep k on k.cluster = c.cluster
        order by c.cluster
        """
    ).df()
    known = {
        r[0]
        for r in con.execute(
            """select old_id from _pr_prev union select old_dinmo_id from _pr_prev_hist
               union select dinmo_id from _pr_prev_hist"""
        ).fetchall()
        if r[0] is not None
    }
    text = new["source"].astype(str) + "\x1f" + new["record_id"].astype(str)
    ids = pd.Series([derive_id_text(t) for t in text], index=new.index, dtype=object)
    clash = ids.isin(known) | ids.duplicated(keep="first")
    if clash.any():
        used = set(known) | set(ids[~clash])
        for i in ids.index[clash.to_numpy()]:
            salt = 1
            cand = derive_id(new.at[i, "source"], new.at[i, "record_id"], salt)
            while cand in used:
                salt += 1
                cand = derive_id(new.at[i, "source"], new.at[i, "record_id"], salt)
            ids.at[i] = cand
            used.add(cand)
    con.register(
        "_pr_new", pd.DataFrame({"cluster": new["cluster"].astype("int64"), "dinmo_id": ids.astype(str)})
    )
    con.execute(
        f"""
        create or replace temp table _pr_ids as
        select cluster, dinmo_id, created from _pr_keep
        union all select cluster, dinmo_id, {run} from _pr_new
        """
    )
    con.unregister("_pr_new")
    con.execute(
        f"""
        create or replace table {SCHEMA}.identity_lookup as
        select m.source, m.record_id, i.dinmo_id, m.entered_by,
               cast(m.cluster_size as integer) as cluster_size,
               cast(coalesce(m.record_first_run, {run}) as integer) as record_first_run,
               cast(i.created as integer) as dinmo_id_created_run
        from _pr_m m join _pr_ids i using (cluster)
        order by m.source, m.record_id
        """
    )
    con.execute(
        """
        create or replace temp table _pr_changes as
        select m.old_id as old_dinmo_id, i.dinmo_id,
               case when h.cluster = m.cluster then 'merged' else 'split' end as change,
               count(*) as n
        from _pr_m m join _pr_ids i using (cluster) join _pr_holder h using (old_id)
        where m.old_id is not null and not (h.cluster = m.cluster and i.dinmo_id = m.old_id)
        group by all
        """
    )
    con.execute(
        f"""
        create or replace table {SCHEMA}.identity_dinmo_id_history as
        select * from _pr_prev_hist
        union all
        select old_dinmo_id, dinmo_id, change, {run},
               n || ' record(s) of ' || old_dinmo_id || ' now under ' || dinmo_id ||
               case when change = 'merged' then ' (kept the oldest id)'
                    else ' (the part holding the oldest member kept ' || old_dinmo_id || ')' end
        from _pr_changes
        order by run_number, old_dinmo_id, dinmo_id, change
        """
    )
    con.execute(
        f"""
        create or replace table {SCHEMA}._id_changes as
        with prev_n as (select old_id, count(*) as n from _pr_prev group by old_id),
        cl as (
            select i.cluster, i.dinmo_id, count(*) as size,
                   count(*) filter (where m.old_id = i.dinmo_id) as same
            from _pr_m m join _pr_ids i using (cluster) group by all
        )
        select 'created' as metric, count(*) as value from _pr_ids where created = {run}
          and dinmo_id not in (select old_id from _pr_prev where old_id is not null)
        union all select 'merged_away', count(distinct old_dinmo_id) from _pr_changes where change = 'merged'
        union all select 'split', count(distinct old_dinmo_id) from _pr_changes where change = 'split'
        union all select 'unchanged', count(*) from cl join prev_n p on p.old_id = cl.dinmo_id
          where cl.size = cl.same and cl.same = p.n
        union all select 'run_number', (select max(r) from (
            select max(record_first_run) as r from {SCHEMA}.identity_lookup
            union all select max(dinmo_id_created_run) from {SCHEMA}.identity_lookup
            union all select max(run_number) from {SCHEMA}.identity_dinmo_id_history))
        """
    )
    out = {r[0]: int(r[1]) for r in con.execute(f"select * from {SCHEMA}._id_changes").fetchall()}
    for t in ("_pr_prev", "_pr_prev_hist", "_pr_m", "_pr_holder", "_pr_keep", "_pr_ids", "_pr_changes"):
        con.execute(f"drop table if exists {t}")
    return {f"ids_{k}": v for k, v in out.items()}


def derive_id_text(text: str) -> str:
    return "dm_" + hashlib.sha256(text.encode()).hexdigest()[:16]
