"""`staging._ties`: the rank of a value among the values of its type on its event, as strings sort."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from identity_pipeline.core.event_stitching.store.staging import _ties


def test_ties_rank_values_of_one_type_on_one_event_as_strings_sort() -> None:
    seq = np.array([0, 0, 0, 0, 1, 2, 2, 2])
    code = np.array([0, 0, 0, 1, 0, 1, 1, 0])
    values = pa.array(["b", "a", "b", "z", "q", "y", "x", "m"])
    # event 0 type 0: a < b, the two b's (one value in two columns) share a rank; alone: 0
    assert _ties(seq, code, values).tolist() == [1, 0, 1, 0, 0, 1, 0, 0]


def test_ties_by_codepoint_not_by_locale_and_nothing_to_rank() -> None:
    seq, code = np.array([5, 5, 5]), np.array([2, 2, 2])
    assert _ties(seq, code, pa.array(["a", "B", "b"])).tolist() == [1, 0, 2]  # "B" < "a" < "b"
    assert _ties(np.array([1]), np.array([0]), pa.array(["x"])).tolist() == [0]
    assert _ties(np.zeros(0, np.int64), np.zeros(0, np.int64), pa.array([], pa.string())).tolist() == []
