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

from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa

from identity_pipeline.core.event_stitching.store.tables import STATE, on_arrow

if TYPE_CHECKING:  # the index imports numba: only the runs that use it load it
    from identity_pipeline.core.event_stitching.store.dictionary_index import DictionaryIndex

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


def value_keys(
    con: duckdb.DuckDBPyConnection, names: list[str], kind: np.ndarray, values: pa.Array
) -> pa.Table:
    """The 128-bit keys (h1, h2) of values, row for row; `kind[i]` indexes `names`, the identifier type of
    `values[i]`. Needs nothing from the dictionary (staging computes them on its reader thread)."""
    h1 = np.zeros(len(values), dtype=np.uint64)
    h2 = np.zeros(len(values), dtype=np.uint64)
    if len(values):
        table = pa.table(
            {"d": pa.array(np.arange(len(values), dtype=np.int64)), "k": pa.array(kind), "value": values}
        )
        names_sql = ", ".join(f"({i}, '{t.replace(chr(39), chr(39) * 2)}')" for i, t in enumerate(names))
        res = on_arrow(
            con,
            "__es_values",
            table,
            f"""select y.d, (y.h >> 64)::UBIGINT as h1, (y.h & {_LOW64})::UBIGINT as h2
                from (select v.d, md5_number(t.name || chr(31) || v.value) as h
                      from __es_values v join (values {names_sql}) t(k, name) using (k)) y""",
        ).to_arrow_table()
        d = res.column("d").to_numpy()
        h1[d] = res.column("h1").to_numpy()
        h2[d] = res.column("h2").to_numpy()
    return pa.table({"h1": pa.array(h1), "h2": pa.array(h2)})


def ids_of_keys(
    con: duckdb.DuckDBPyConnection,
    codes: np.ndarray,
    values: pa.Array,
    keys: pa.Table,
    index: DictionaryIndex | None = None,
) -> np.ndarray:
    """Ids of distinct values (type code `codes[i]`, string `values[i]`, key row `keys[i]`), adding the values
    the dictionary does not hold yet, numbered in the order given (the same input gives the same ids).
    With `index` (the dictionary's keys in memory, `dictionary_index.py`) the lookup is done there instead of
    by a join against the table: the same ids."""
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64)
    if index is not None:
        vid, is_new = index.find_or_add(keys.column("h1").to_numpy(), keys.column("h2").to_numpy())
        new = np.flatnonzero(is_new)
    else:
        vid, new = _join_ids(con, keys)
    if len(new):
        take = pa.array(new)
        added = pa.table(
            {
                "vid": pa.array(vid[new].astype(np.int32)),
                "h1": keys.column("h1").take(take),
                "h2": keys.column("h2").take(take),
                "type_code": pa.array(np.asarray(codes)[new].astype(np.int16)),
                "value": values.take(take),
            }
        )
        on_arrow(
            con,
            "__es_new_values",
            added,
            f"insert into {STATE}.value_dictionary select * from __es_new_values",
        )
    return vid


def _join_ids(con: duckdb.DuckDBPyConnection, keys: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(ids of the keys: the dictionary's, the next ones for the new keys in order; rows of the new keys)."""
    n = keys.num_rows
    probe = keys.append_column("d", pa.array(np.arange(n, dtype=np.int64)))
    res = on_arrow(
        con,
        "__es_keys",
        probe,
        f"select k.d, d.vid from __es_keys k join {STATE}.value_dictionary d on d.h1 = k.h1 and d.h2 = k.h2",
    ).to_arrow_table()
    vid = np.full(n, -1, dtype=np.int64)
    vid[res.column("d").to_numpy()] = res.column("vid").to_numpy()
    new = np.flatnonzero(vid < 0)
    if len(new):
        top = con.execute(f"select max(vid) from {STATE}.value_dictionary").fetchall()[0][0]
        vid[new] = (-1 if top is None else int(top)) + 1 + np.arange(len(new))
    return vid, new
