"""A growing set of 64-bit keys with vectorised inserts and lookups (open addressing, linear probing).

The run uses it to know which profile ids it has created (a created id that already exists makes the engine
derive another one), without a Python set of millions of ints or a sort per window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_EMPTY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # the one key the set cannot hold (see `add`)
_MIX = np.uint64(0x9E37_79B9_7F4A_7C15)


class KeySet:
    def __init__(self, capacity: int = 1 << 16) -> None:
        size = 1 << max(4, int(np.ceil(np.log2(max(capacity, 16) * 2))))
        self._slots = np.full(size, _EMPTY, dtype=np.uint64)
        self.size = 0

    def _start(self, keys: np.ndarray) -> np.ndarray:
        bits = int(np.log2(len(self._slots)))
        with np.errstate(over="ignore"):
            return ((keys * _MIX) >> np.uint64(64 - bits)).astype(np.int64)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.zeros(len(keys), dtype=bool)
        mask = len(self._slots) - 1
        pos = self._start(keys)
        todo = np.arange(len(keys))
        while len(todo):
            slot = self._slots[pos[todo]]
            hit = slot == keys[todo]
            found[todo[hit]] = True
            go_on = ~hit & (slot != _EMPTY)
            todo = todo[go_on]
            pos[todo] = (pos[todo] + 1) & mask
        return found

    def add(self, keys: np.ndarray) -> None:
        keys = pd.unique(np.asarray(keys, dtype=np.uint64))
        if len(keys) and (keys == _EMPTY).any():
            raise ValueError("KeySet cannot hold 0xFFFFFFFFFFFFFFFF")
        keys = keys[~self.contains(keys)]
        if self.size + len(keys) > len(self._slots) // 2:
            self._grow(self.size + len(keys))
        mask = len(self._slots) - 1
        pos = self._start(keys)
        todo = np.arange(len(keys))
        while len(todo):
            p = pos[todo]
            free = self._slots[p] == _EMPTY
            # several keys may want one free slot: the first of each takes it, the others probe on
            want = p[free]
            first = ~pd.Index(want).duplicated()
            winners = todo[free][first]
            self._slots[want[first]] = keys[winners]
            placed = np.zeros(len(keys), dtype=bool)
            placed[winners] = True
            todo = todo[~placed[todo]]
            pos[todo] = (pos[todo] + 1) & mask
        self.size += len(keys)

    def _grow(self, need: int) -> None:
        old = self._slots[self._slots != _EMPTY]
        size = len(self._slots)
        while need > size // 2:
            size *= 2
        self._slots = np.full(size, _EMPTY, dtype=np.uint64)
        self.size = 0
        self.add(old)
