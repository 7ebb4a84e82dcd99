"""`fast_path/scatter.py`: the compiled `np.minimum.at` / `np.maximum.at` give numpy's results."""

from __future__ import annotations

import numpy as np
import pytest

from identity_pipeline.core.event_stitching.fast_path.scatter import maximum_at, minimum_at

PAIRS = [(minimum_at, np.minimum), (maximum_at, np.maximum)]


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(("ours", "ufunc"), PAIRS)
def test_matches_numpy_on_random_scatters(seed: int, ours, ufunc) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 50))
    m = int(rng.integers(0, 200))
    start = rng.integers(-1000, 1000, n)
    idx = rng.integers(-n, n, m)  # negative indices wrap, as numpy's do
    vals = rng.integers(-2000, 2000, m)
    want = start.copy()
    ufunc.at(want, idx, vals)
    got = start.copy()
    ours(got, idx, vals)
    np.testing.assert_array_equal(got, want)


def test_repeated_index_keeps_the_extreme_and_untouched_slots_stay() -> None:
    out = np.array([5, 5, 5], dtype=np.int64)
    minimum_at(out, np.array([2, 0, 2, 2]), np.array([7, 9, 1, 4]))
    assert out.tolist() == [5, 5, 1]
    maximum_at(out, np.array([1, 1]), np.array([3, 8]))
    assert out.tolist() == [5, 8, 1]


def test_narrower_values_are_widened_and_wider_ones_refused() -> None:
    out = np.zeros(2, dtype=np.int64)
    minimum_at(out, np.array([1]), np.array([-3], dtype=np.int8))
    assert out.tolist() == [0, -3]
    with pytest.raises(TypeError):
        minimum_at(np.zeros(2, dtype=np.int8), np.array([0]), np.array([1], dtype=np.int64))


def test_out_of_bounds_index_is_an_error_not_a_write() -> None:
    out = np.zeros(3, dtype=np.int64)
    with pytest.raises(IndexError, match="index 3 is out of bounds for size 3"):
        maximum_at(out, np.array([0, 3]), np.array([1, 1]))
    with pytest.raises(IndexError, match="index -4"):
        minimum_at(out, np.array([-4]), np.array([-1]))
    assert out.tolist() == [0, 0, 0]


def test_mismatched_lengths_and_float_indices_are_refused() -> None:
    out = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="same length"):
        minimum_at(out, np.array([0, 1]), np.array([1]))
    with pytest.raises(TypeError, match="integer indices"):
        minimum_at(out, np.array([0.0]), np.array([1]))
    minimum_at(out, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))  # nothing to do
    assert out.tolist() == [0, 0, 0]
