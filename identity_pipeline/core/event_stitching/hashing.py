"""A 64-bit string hash, the same in numpy (whole Arrow string arrays at once) and in plain Python.

Profile ids (`reference.profile_id_for`) are hashes of strings that must be the same on every machine and in
every version: Python's `hash()` is salted and DuckDB's `hash()` may change
between releases, and hashing hundreds of thousands of strings one by one with `hashlib` costs ~2 µs each.
This is a plain, documented function of the UTF-8 bytes, computed 8 bytes at a time:

    h = seed XOR (length * K0)
    for each little-endian 8-byte word w of the bytes (the last one zero-padded):
        h = rotl64((h XOR (w * K1)), 31) * K2
    return fmix64(h)            # MurmurHash3's 64-bit finalizer

K0, K1, K2 are odd 64-bit constants (below), arithmetic is modulo 2^64. It is not a cryptographic hash:
collisions are as rare as for any good 64-bit hash (about n^2 / 2^65 among n distinct strings), and the code
that uses it handles them (a created id that exists already gets another one, see `reference.py` rule 7).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

K0 = 0x9E3779B97F4A7C15
K1 = 0xC2B2AE3D27D4EB4F
K2 = 0x165667B19E3779F9
F1 = 0xFF51AFD7ED558CCD
F2 = 0xC4CEB9FE1A85EC53
MASK = (1 << 64) - 1
SEED_PROFILE = 0x0E5B_0000_0000_0001


def _fmix(h: int) -> int:
    h ^= h >> 33
    h = (h * F1) & MASK
    h ^= h >> 33
    h = (h * F2) & MASK
    h ^= h >> 33
    return h


def hash64_bytes(data: bytes, seed: int) -> int:
    """The hash of one byte string (reference implementation)."""
    h = (seed ^ (len(data) * K0)) & MASK
    for i in range(0, len(data), 8):
        w = int.from_bytes(data[i : i + 8].ljust(8, b"\0"), "little")
        x = (h ^ ((w * K1) & MASK)) & MASK
        x = ((x << 31) | (x >> 33)) & MASK
        h = (x * K2) & MASK
    return _fmix(h)


def hash64_str(text: str, seed: int) -> int:
    return hash64_bytes(text.encode("utf-8"), seed)


def hash64(strings: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """`hash64_bytes` of every string of an Arrow array (nulls hash as empty strings), as uint64."""
    arr = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    arr = arr.cast(pa.large_string()).fill_null("")
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    start = offsets[:-1]
    length = np.diff(offsets)
    # the bytes as aligned little-endian words (zero-padded): the word at any byte position p is two aligned
    # words shifted, so each step gathers 2 words per string instead of 8 bytes
    pad = (-len(data)) % 8 + 16
    aligned = np.frombuffer(np.concatenate([data, np.zeros(pad, dtype=np.uint8)]).tobytes(), dtype="<u8")
    aligned = aligned.astype(np.uint64)
    with np.errstate(over="ignore"):
        h = np.uint64(seed) ^ (length.astype(np.uint64) * np.uint64(K0))
        k1, k2, ones = np.uint64(K1), np.uint64(K2), np.uint64(MASK)
        idx = np.arange(n)
        j = 0
        while True:
            idx = idx[length[idx] > j]
            if len(idx) == 0:
                break
            pos = start[idx] + j
            q = pos >> 3
            r = ((pos & 7) * 8).astype(np.uint64)
            lo, hi = aligned[q], aligned[q + 1]
            w = (lo >> r) | np.where(r == 0, np.uint64(0), hi << (np.uint64(64) - r))
            rem = (length[idx] - j).astype(np.uint64)
            w &= np.where(rem >= 8, ones, (np.uint64(1) << (rem * np.uint64(8))) - np.uint64(1))
            x = h[idx] ^ (w * k1)
            x = (x << np.uint64(31)) | (x >> np.uint64(33))
            h[idx] = x * k2
            j += 8
        h ^= h >> np.uint64(33)
        h *= np.uint64(F1)
        h ^= h >> np.uint64(33)
        h *= np.uint64(F2)
        h ^= h >> np.uint64(33)
    return h


def profile_key(model: str, event_id: str, salt: int | None = None) -> int:
    """64 bits of the id of the profile the event (model, event_id) creates (`salt`: the sequence number that
    makes it unique when that id exists already)."""
    text = f"{model}\x1f{event_id}" if salt is None else f"{model}\x1f{event_id}\x1f{salt}"
    return hash64_str(text, SEED_PROFILE)


def profile_keys(models: pa.Array, event_ids: pa.Array) -> np.ndarray:
    """`profile_key` of many events at once."""
    import pyarrow.compute as pc

    joined = pc.binary_join_element_wise(models.cast(pa.string()), event_ids.cast(pa.string()), "\x1f")
    return hash64(joined, SEED_PROFILE)
