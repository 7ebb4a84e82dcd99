"""The value dictionary: every (identifier_type, value) the pipeline has seen, once, with a dense integer id.

State, outputs and the engine refer to values by `vid` and to identifier types by `type_code`, so no state
table stores or compares a value string; the published views join the strings back. A value's key is the
128-bit MD5 of `identifier_type || U+001F || value` (two UBIGINT halves): one integer join finds the ids of a
window's values however long the dictionary grows. Two different values with the same 128-bit key would be
one value here; at 10 million values the chance is about 1 in 10^24, so this is treated as impossible.
New values get the next ids in (type, first sighting) order (the same input gives the same ids). Ids are
internal: nothing is ordered or published by them.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from identity_pipeline.core.event_stitching.store.tables import STATE, on_arrow

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
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    table = pa.table(
        {
            "d": pa.array(np.arange(sum(lens), dtype=np.int64)),
            "k": pa.array(np.repeat(np.arange(len(parts), dtype=np.int32), lens)),
            "value": pa.concat_arrays([v.cast(pa.string()) for _, _, v in parts]),
        }
    )
    names = ", ".join(f"({i}, '{t.replace(chr(39), chr(39) * 2)}')" for i, (t, _, _) in enumerate(parts))
    res = on_arrow(
        con,
        "__es_values",
        table,
        f"""select x.d, x.h1, x.h2, d.vid from (
                select y.d, (y.h >> 64)::UBIGINT as h1, (y.h & {_LOW64})::UBIGINT as h2
                from (select v.d, md5_number(t.name || chr(31) || v.value) as h
                      from __es_values v join (values {names}) t(k, name) using (k)) y
            ) x left join {STATE}.value_dictionary d on d.h1 = x.h1 and d.h2 = x.h2""",
    ).to_arrow_table()
    dense = res.column("d").to_numpy()
    vid_col = res.column("vid").combine_chunks()
    found = ~np.asarray(vid_col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    vid = np.full(len(table), -1, dtype=np.int64)
    vid[dense[found]] = np.asarray(vid_col.fill_null(0).to_numpy(zero_copy_only=False), np.int64)[found]
    new = np.flatnonzero(vid < 0)  # in (type, first sighting) order: the same ids for the same input
    if len(new):
        top = con.execute(f"select max(vid) from {STATE}.value_dictionary").fetchall()[0][0]
        vid[new] = (-1 if top is None else int(top)) + 1 + np.arange(len(new))
        h1 = np.empty(len(table), dtype=np.uint64)
        h2 = np.empty(len(table), dtype=np.uint64)
        h1[dense] = res.column("h1").to_numpy()
        h2[dense] = res.column("h2").to_numpy()
        code = np.repeat(np.array([c for _, c, _ in parts], dtype=np.int16), lens)
        added = pa.table(
            {
                "vid": pa.array(vid[new].astype(np.int32)),
                "h1": pa.array(h1[new]),
                "h2": pa.array(h2[new]),
                "type_code": pa.array(code[new]),
                "value": table.column("value").take(pa.array(new)),
            }
        )
        on_arrow(
            con,
            "__es_new_values",
            added,
            f"insert into {STATE}.value_dictionary select * from __es_new_values",
        )
    return [vid[a : a + n] for a, n in zip(starts.tolist(), lens, strict=True)]
