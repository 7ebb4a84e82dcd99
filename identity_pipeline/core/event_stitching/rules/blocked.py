"""Rule 2: blocked values (literals standardized like the values, or regex patterns, `re.search`)."""

from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd

from identity_pipeline.config.event_stitching import IdentifierPolicy
from identity_pipeline.core.standardize import standardize


def blocked_literals(policy: IdentifierPolicy) -> frozenset[str]:
    """The blocked literals after the type's standardization (the raw spelling is kept too)."""
    return _literals(policy.standardize, tuple(policy.blocked_values))


@lru_cache(maxsize=256)
def _literals(kind: str, raw: tuple[str, ...]) -> frozenset[str]:
    if not raw:
        return frozenset()
    std = standardize(pd.Series(list(raw), dtype="string"), kind)
    return frozenset(str(v) for v in std.dropna()) | frozenset(raw)


def blocked_mask(values: pd.Series, policy: IdentifierPolicy) -> pd.Series:
    """True where a standardized value is blocked. Patterns run once per distinct value."""
    mask = pd.Series(False, index=values.index, dtype=bool)
    lits = blocked_literals(policy)
    if lits:
        mask |= values.isin(lits).fillna(False).astype(bool)
    if policy.blocked_patterns:
        rxs = [re.compile(p) for p in policy.blocked_patterns]
        uniq = values.dropna().unique()
        hit = {v: any(rx.search(str(v)) for rx in rxs) for v in uniq}
        mask |= values.map(hit).fillna(False).astype(bool)
    return mask
