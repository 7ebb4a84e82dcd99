"""The strings the engine's complex path asks the store for (`store/run.py::_Names`), with and without a
prefetch of the value strings on another thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np

from identity_pipeline.core.event_stitching.store.run import _Names
from identity_pipeline.core.event_stitching.store.tables import STATE, ensure_schema


def _dictionary(n: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schema(con)
    con.execute(
        f"insert into {STATE}.value_dictionary select i, i, i, 0, 'value-' || i from range({n}) t(i)"
    ).fetchall()
    return con


def test_value_strings_are_the_dictionary_strings_of_the_subgraph_rows() -> None:
    con = _dictionary(50)
    vids = np.array([40, 3, 17, 8], dtype=np.int64)  # subgraph row -> vid
    names = _Names(con, None, vids)  # type: ignore[arg-type]  # `staged` is only read for event strings
    assert names.values(np.array([2, 0, 2])).tolist() == ["value-17", "value-40", "value-17"]


def test_a_prefetch_gives_what_values_would_read_even_for_other_rows() -> None:
    con = _dictionary(50)
    vids = np.array([40, 3, 17, 8], dtype=np.int64)
    with ThreadPoolExecutor(max_workers=1) as pool:
        names = _Names(con.cursor(), None, vids, pool)  # type: ignore[arg-type]
        rows = np.array([1, 3])
        names.prefetch(rows)
        rows[:] = 0  # the caller's array may change after the hint: the prefetch kept its own copy
        assert names.values(np.array([1, 3])).tolist() == ["value-3", "value-8"]
        names.prefetch(np.array([0]))
        # asked for other rows than the hint: waits for the prefetch, then reads them
        assert names.values(np.array([2, 1])).tolist() == ["value-17", "value-3"]
        assert names.values(np.array([0])).tolist() == ["value-40"]  # no prefetch pending
