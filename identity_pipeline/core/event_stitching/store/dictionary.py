"""The value dictionary: every (identifier_type, value) the pipeline has seen, once, with a dense integer id.

State, outputs and the engine refer to values by `vid` and to identifier types by `type_code`, so no state
table stores or compares a value string; the published views join the strings back. A value's key is the
128-bit MD5 of `identifier_type || U+001F || value` (two UBIGINT halves): one integer join finds the ids of a
window's values however long the dictionary grows. Two different values with the same 128-bit key would be
one value here; at 10 million values the chance is about 1 in 10^24, so this is treated as impossible.
New values get the next ids in key order (deterministic for a given set of new values). Ids are internal:
nothing is ordered or published by them.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from identity_pipeline.core.event_stitching.store.tables import STATE

_LOW64 = "18446744073709551615::UHUGEINT"


def type_codes(con: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, int]:
    """Code of each identifier type name (new names get the next codes, in name order)."""
    rows = con.execute(f"select identifier_type, type_code from {STATE}.identifier_types").fetchall()
    codes = {str(n): int(c) for n, c in rows}
    nxt = max(codes.values(), default=-1) + 1
    for name in sorted(set(names) - set(codes)):
        con.execute(f"insert into {STATE}.identifier_types values (?, ?)", [nxt, name]).fetchall()
        codes[name] = nxt
        nxt += 1
    return codes


def type_names(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    rows = con.execute(f"select type_code, identifier_type from {STATE}.identifier_types").fetchall()
    return {int(c): str(n) for c, n in rows}


def value_ids(con: duckdb.DuckDBPyConnection, parts: list[tuple[str, int, pa.Array]]) -> list[np.ndarray]:
    """Ids of distinct values: `parts` holds (identifier_type, type_code, distinct values) per type; returns
    the ids aligned with each part's values, adding the values the dictionary does not hold yet."""
    if not parts:
        return []
    lens = [len(v) for _, _, v in parts]
    table = pa.table(
        {
            "k": pa.array(np.repeat(np.arange(len(parts), dtype=np.int32), lens)),
            "pos": pa.array(np.concatenate([np.arange(n, dtype=np.int64) for n in lens])),
            "identifier_type": pa.array(np.repeat(np.array([t for t, _, _ in parts], dtype=object), lens)),
            "type_code": pa.array(np.repeat(np.array([c for _, c, _ in parts], dtype=np.int16), lens)),
            "value": pa.concat_arrays([v.cast(pa.string()) for _, _, v in parts]),
        }
    )
    con.register("__es_values", table)
    try:
        con.execute(
            f"""create or replace temp table __es_keyed as
            select k, pos, type_code, value, (h >> 64)::UBIGINT as h1, (h & {_LOW64})::UBIGINT as h2
            from (select *, md5_number(identifier_type || chr(31) || value) as h from __es_values)"""
        ).fetchall()
        con.execute(
            f"""create or replace temp table __es_ids as
            select x.k, x.pos, x.type_code, x.value, x.h1, x.h2, d.vid
            from __es_keyed x left join {STATE}.value_dictionary d on d.h1 = x.h1 and d.h2 = x.h2"""
        ).fetchall()
        con.execute(
            f"""create or replace temp table __es_new as
            select (select coalesce(max(vid), -1) from {STATE}.value_dictionary)
                   + row_number() over (order by h1, h2) as vid, h1, h2, type_code, value
            from __es_ids where vid is null"""
        ).fetchall()
        con.execute(
            f"insert into {STATE}.value_dictionary select vid, h1, h2, type_code, value from __es_new"
        ).fetchall()
        res = con.sql(
            """select i.k, i.pos, coalesce(i.vid, n.vid) as vid
            from __es_ids i left join __es_new n on i.vid is null and n.h1 = i.h1 and n.h2 = i.h2"""
        ).to_arrow_table()
    finally:
        con.unregister("__es_values")
        for t in ("__es_keyed", "__es_ids", "__es_new"):
            con.execute(f"drop table if exists {t}").fetchall()
    k = res.column("k").to_numpy()
    pos = res.column("pos").to_numpy()
    vid = res.column("vid").to_numpy()
    out = [np.empty(n, dtype=np.int64) for n in lens]
    for i in range(len(parts)):
        sel = k == i
        out[i][pos[sel]] = vid[sel]
    return out
