"""The run's set of created profile ids (`store/keyset.py`) against a Python set."""

from __future__ import annotations

import numpy as np
import pytest

from identity_pipeline.core.event_stitching.store.keyset import KeySet


@pytest.mark.parametrize("seed", range(10))
def test_keyset_holds_what_a_python_set_holds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys, model = KeySet(capacity=16), set()
    high = int(rng.choice([50, 5_000, 2**63]))  # many repeats, few, none
    for _ in range(40):  # grows several times; batches repeat keys within and across calls
        batch = rng.integers(0, high, int(rng.integers(0, 400)), dtype=np.uint64)
        keys.add(batch)
        model |= set(batch.tolist())
        probe = np.concatenate([batch, rng.integers(0, high, 300, dtype=np.uint64)])
        assert keys.contains(probe).tolist() == [int(k) in model for k in probe.tolist()]
        assert keys.size == len(model)


def test_keyset_refuses_its_empty_marker_and_takes_any_other_key() -> None:
    keys = KeySet()
    edge = np.array([0, 1, 2**64 - 2], dtype=np.uint64)
    keys.add(edge)
    assert keys.contains(edge).all() and keys.size == 3
    with pytest.raises(ValueError, match="0xFFFFFFFFFFFFFFFF"):
        keys.add(np.array([5, 2**64 - 1], dtype=np.uint64))
    assert not keys.contains(np.array([5], dtype=np.uint64))[0] and keys.size == 3
    assert keys.contains(np.zeros(0, dtype=np.uint64)).tolist() == []
