"""An in-memory hash index of the value dictionary's keys, for staging many windows in one run.

Looking a window's distinct values up in `value_dictionary` is a DuckDB hash join of the window's keys
against the whole dictionary: its cost grows with the dictionary (10.75M values at the end of the 10M-event
benchmark; ~0.19 s a window, a quarter of staging's main thread). `stage_windows` over several windows
loads the dictionary's keys once into this open-addressing table (linear probing on the key's first 64 bits,
which are already uniform: they are MD5 bits) and then finds and numbers each window's values in a compiled
loop. Ids come out exactly as the join gives them: a value already in the dictionary keeps its id, new
values get the next ids in the order given. The caller still inserts the new values into the table; the
index only lives for one `stage_windows` call, so a failed window drops it with the transaction.
"""

from __future__ import annotations

import duckdb
import numpy as np

# numba through `kernels`, which first points numba's cache at a writable place on a read-only install
from identity_pipeline.core.event_stitching.fast_path.kernels import numba
from identity_pipeline.core.event_stitching.store.tables import STATE

_MIN_SLOTS = 1 << 16
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # no id is 2**32 - 1 (`vid` is a 32-bit INTEGER)


@numba.njit(cache=True, nogil=True)
def _insert_all(slots: np.ndarray, keys: np.ndarray, vids: np.ndarray) -> None:
    """Put ids `vids` (keys `keys[vid]`) into an empty table. A slot holds the key's upper 32 bits (a tag
    that settles almost every probe without reading the key) and the id."""
    low = np.uint64(len(slots) - 1)
    for vid in vids:
        h1 = keys[vid, 0]
        s = h1 & low
        while slots[s] != _EMPTY:
            s = (s + np.uint64(1)) & low
        slots[s] = (h1 >> np.uint64(32) << np.uint64(32)) | np.uint64(vid)


@numba.njit(cache=True, nogil=True)
def _find_or_add(slots: np.ndarray, keys: np.ndarray, k1: np.ndarray, k2: np.ndarray, next_vid: int):
    """The id of each key (k1[i], k2[i]); a key not in the table gets `next_vid`, then the next one, in
    input order (stored at `keys[vid]`). Returns (ids, the next free id). The table and `keys` must have
    room for every new key (`DictionaryIndex._room`)."""
    low = np.uint64(len(slots) - 1)
    ids32 = np.uint64(0xFFFFFFFF)
    out = np.empty(len(k1), dtype=np.int64)
    for i in range(len(k1)):
        a = k1[i]
        b = k2[i]
        tag = a >> np.uint64(32) << np.uint64(32)
        s = a & low
        while True:
            e = slots[s]
            if e == _EMPTY:
                slots[s] = tag | np.uint64(next_vid)
                keys[next_vid, 0] = a
                keys[next_vid, 1] = b
                out[i] = next_vid
                next_vid += 1
                break
            if (e & ~ids32) == tag:
                v = np.int64(e & ids32)
                if keys[v, 0] == a and keys[v, 1] == b:
                    out[i] = v
                    break
            s = (s + np.uint64(1)) & low
    return out, next_vid


class DictionaryIndex:
    """The dictionary's keys in memory (module docstring); `find_or_add` is `ids_of_keys`'s lookup."""

    def __init__(self, h1: np.ndarray, h2: np.ndarray, vids: np.ndarray) -> None:
        vids = np.asarray(vids, dtype=np.int64)
        self.next_vid = int(vids.max()) + 1 if len(vids) else 0
        self.keys = np.zeros((max(_MIN_SLOTS // 2, self.next_vid), 2), dtype=np.uint64)
        self.keys[vids, 0] = h1
        self.keys[vids, 1] = h2
        self._vids = [vids]
        self._n = len(vids)
        self.slots = np.empty(0, dtype=np.uint64)
        self._rehash(_slots_for(self._n))

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection) -> DictionaryIndex:
        t = con.sql(f"select vid, h1, h2 from {STATE}.value_dictionary").to_arrow_table()
        return cls(
            np.asarray(t.column("h1").to_numpy(), dtype=np.uint64),
            np.asarray(t.column("h2").to_numpy(), dtype=np.uint64),
            np.asarray(t.column("vid").to_numpy(), dtype=np.int64),
        )

    def __len__(self) -> int:
        return self._n

    def find_or_add(self, h1: np.ndarray, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(id of each distinct key, which of them are new), new keys numbered in the order given."""
        k1 = np.ascontiguousarray(h1, dtype=np.uint64)
        k2 = np.ascontiguousarray(h2, dtype=np.uint64)
        self._room(len(k1))
        first_new = self.next_vid
        ids, self.next_vid = _find_or_add(self.slots, self.keys, k1, k2, self.next_vid)
        new = ids >= first_new
        if new.any():
            self._vids.append(ids[new])
            self._n += int(new.sum())
        return ids, new

    def _room(self, adding: int) -> None:
        """Grow the keys and the table so that `adding` more keys fit (the table at most 3/4 full: a probe
        reads neighbouring slots, in one cache line mostly; it grows 4x, so a growing dictionary is
        re-inserted about a third of its size in all)."""
        need = self.next_vid + adding
        if need > len(self.keys):
            grown = np.zeros((max(need, 2 * len(self.keys)), 2), dtype=np.uint64)
            grown[: len(self.keys)] = self.keys
            self.keys = grown
        if _slots_for(self._n + adding) > len(self.slots):
            self._rehash(max(_slots_for(self._n + adding), 4 * len(self.slots)))

    def _rehash(self, n_slots: int) -> None:
        self._vids = [np.concatenate(self._vids)] if len(self._vids) > 1 else self._vids
        self.slots = np.full(n_slots, _EMPTY, dtype=np.uint64)
        _insert_all(self.slots, self.keys, self._vids[0])


def _slots_for(n: int) -> int:
    """The smallest power of two with `n` keys filling at most 3/4 of it."""
    return max(_MIN_SLOTS, 1 << int((4 * max(n, 1) + 2) // 3 - 1).bit_length())
