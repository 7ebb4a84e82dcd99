"""Allocator settings for the length of a stitching run (`allocator_tuned`), because fresh memory is slow.

A window's engine creates and frees many temporary arrays of a few to a few hundred megabytes. By default
glibc serves each one above 32 MB with a fresh `mmap` and unmaps it when freed, and numpy asks the kernel for
huge pages on every array of 4 MB or more (`madvise`): so the first write to each array makes the kernel map
and zero its pages again. On the 2-vCPU VMs we measured, that was ~10 s of system time on the main thread of
a 30-window backfill (a first write to fresh memory costs ~15x a write to reused memory). During a run:

* glibc (`mallopt`): blocks up to 256 MB come from the heap, and up to 1 GB of freed heap is kept, so the
  next window's temporaries reuse pages that are already mapped;
* numpy: no huge-page advice (with the heap reused, it only adds a system call per array and lets the kernel
  re-arrange pages under the run).

Measured on the 10M-event bench (docs/benchmarks.md): the main thread's system time 9-10 s -> 4-5 s and the
stitching of 30 staged windows 44-46 s -> 39-42 s, peak RSS +50-100 MB (the freed heap kept). The previous
settings are restored when the run ends (glibc's thresholds then stay fixed at its defaults instead of
adapting) and the kept heap is returned (`malloc_trim`). Other platforms (macOS, musl) are left as they
are. Off with `event_stitching.tune_allocator: false`.

What this cannot stop: DuckDB calls `malloc_trim` itself (at most every 100 ms), mostly when its buffer pool
is at `memory_limit` and has freed `memory_limit / 16` since it last did (a stitching run keeps the pool
full: ~75 calls per 30 windows), and after its worker threads' tasks. Each call returns every free page of
glibc's heap whatever the trim threshold, so the main thread still takes ~1.9M minor faults per 30-window
backfill (0.44M with the call disabled). A larger `memory_limit` makes the calls rarer but costs more memory
than the 4 GB budget leaves (docs/benchmarks.md, 2026-12-03 afternoon).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_RUN_MMAP_THRESHOLD = 256 << 20
_RUN_TRIM_THRESHOLD = 1 << 30
_GLIBC_DEFAULT = 128 << 10  # both thresholds' glibc defaults

_lock = threading.Lock()
_active = 0
_hugepage_before: bool | None = None


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def _set_hugepage(enabled: bool) -> bool | None:
    """numpy's huge-page advice on or off; the previous value (None when this numpy has no such switch)."""
    setter = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    return None if setter is None else bool(setter(enabled))


@contextmanager
def allocator_tuned(enabled: bool = True) -> Iterator[None]:
    """The run's allocator settings (module docstring) inside the block; nested or concurrent runs in one
    process share them, and the last one to end restores the previous settings."""
    global _active, _hugepage_before
    if not enabled:
        yield
        return
    libc = _glibc()
    with _lock:
        if _active == 0:
            if libc is not None:
                libc.mallopt(_M_MMAP_THRESHOLD, _RUN_MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _RUN_TRIM_THRESHOLD)
            _hugepage_before = _set_hugepage(False)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                if _hugepage_before is not None:
                    _set_hugepage(_hugepage_before)
                if libc is not None:
                    libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
                    libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
                    if hasattr(libc, "malloc_trim"):
                        libc.malloc_trim(0)


def tuned_now() -> bool:
    """Whether a run's settings are in effect (for tests)."""
    return _active > 0
