"""Warn when the benchmarks would measure Python compiling its imports.

`uv sync` does not compile bytecode unless asked, and with `PYTHONDONTWRITEBYTECODE=1` (set on our machines)
Python then compiles every module it imports from source, in every process: ~3 s per process for pandas,
numba, DuckDB and the package, part of it inside the timed region (modules imported when first needed).
`make install` compiles them; this check says when that was skipped.
"""

from __future__ import annotations

import importlib.util
import os

PACKAGES = ("pandas", "numba", "duckdb", "pyarrow", "identity_pipeline")


def without_bytecode(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The packages whose `__init__` has no compiled bytecode beside it (absent packages are skipped)."""
    missing = []
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:
            continue
        origin = spec.origin if spec else None
        if origin and origin.endswith(".py") and not os.path.exists(importlib.util.cache_from_source(origin)):
            missing.append(name)
    return missing


def warn_if_uncompiled() -> None:
    missing = without_bytecode()
    if missing:
        flag = ", PYTHONDONTWRITEBYTECODE is set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
        print(
            f"note: no compiled bytecode for {', '.join(missing)}: each run compiles its imports from source "
            f"(seconds per process{flag}); `make install` compiles them"
        )
