"""Rule 6 (compatibility): profiles' active anchor values plus the event's accepted anchors must stay within
every anchor type's `max_unique_values_per_profile` (None = no limit)."""

from __future__ import annotations

from collections.abc import Iterable


def compatible(anchor_sets: Iterable[dict[str, set[str]]], anchor_limits: dict[str, int | None]) -> bool:
    """True when, for every anchor type with a limit, the union of the values in `anchor_sets` fits it."""
    sets = list(anchor_sets)
    for t, limit in anchor_limits.items():
        if limit is None:
            continue
        union: set[str] = set()
        for s in sets:
            vals = s.get(t)
            if vals:
                union |= vals
        if len(union) > limit:
            return False
    return True


def fits(existing: set[str] | None, accepted: set[str] | None, value: str, limit: int | None) -> bool:
    """Would adding `value` to one anchor type's values keep it within `limit`?"""
    if limit is None:
        return True
    union = set(existing or ()) | set(accepted or ()) | {value}
    return len(union) <= limit
