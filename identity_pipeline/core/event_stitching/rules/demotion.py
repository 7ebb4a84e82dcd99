"""Rule 8 (demotion): a weak type over `max_unique_values_per_profile` keeps its most recently seen active
values; the least recently seen are demoted (ties: smallest value first). A demoted value seen again on an
event stitched to that profile is re-activated (it becomes the most recent) and the LRU one is demoted."""

from __future__ import annotations


def values_to_demote(active: list[tuple[int, str]], limit: int | None) -> list[str]:
    """`active`: (last_seen_us, value) of one profile's active values of one type -> values to demote."""
    if limit is None or len(active) <= limit:
        return []
    ordered = sorted(active)
    return [v for _, v in ordered[: len(active) - limit]]
