"""A growing set of 64-bit keys with batched inserts and lookups (open addressing, linear probing).

The run uses it to know which profile ids it has created (a created id that already exists makes the engine
derive another one), without a Python set of millions of ints or a sort per window. The probes are compiled
loops (`kernels.keyset_probe`): the numpy version, one vectorised step per probe round,
took ~18 ms a window to add its new ids on the 10M-event benchmark.
"""

from __future__ import annotations

import numpy as np

_EMPTY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # the one key the set cannot hold (see `add`)
_MIX = np.uint64(0x9E37_79B9_7F4A_7C15)


class KeySet:
    def __init__(self, capacity: int = 1 << 16) -> None:
        size = 1 << max(4, int(np.ceil(np.log2(max(capacity, 16) * 2))))
        self._slots = np.full(size, _EMPTY, dtype=np.uint64)
        self.size = 0

    def _shift(self) -> np.uint64:
        return np.uint64(64 - int(len(self._slots)).bit_length() + 1)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        from identity_pipeline.core.event_stitching.fast_path import kernels  # numba: imported when needed

        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        return kernels.keyset_probe(self._slots, keys, _MIX, self._shift(), False)

    def add(self, keys: np.ndarray) -> None:
        from identity_pipeline.core.event_stitching.fast_path import kernels

        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        if len(keys) and (keys == _EMPTY).any():
            raise ValueError("KeySet cannot hold 0xFFFFFFFFFFFFFFFF")
        if self.size + len(keys) > len(self._slots) // 2:  # at most half full (room for all of them)
            self._grow(self.size + len(keys))
        self.size += int((~kernels.keyset_probe(self._slots, keys, _MIX, self._shift(), True)).sum())

    def _grow(self, need: int) -> None:
        old = self._slots[self._slots != _EMPTY]
        size = len(self._slots)
        while need > size // 2:
            size *= 2
        self._slots = np.full(size, _EMPTY, dtype=np.uint64)
        self.size = 0
        self.add(old)
