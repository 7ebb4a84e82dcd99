"""Rule 8 (quarantine): a value held by more profiles than `max_profiles_per_value` is quarantined everywhere,
for good; `released_values` in config is the only way back.

"Held by" = a membership with status active or demoted (blocked evidence does not count). Memberships of a
merged profile have moved to its survivor, so holders are always active profiles.
"""

from __future__ import annotations

from datetime import datetime

from identity_pipeline.core.event_stitching.state import Membership


def holder_count(members_by_pid: dict[str, dict], holders: set[str], key: tuple[str, str]) -> int:
    n = 0
    for pid in holders:
        m: Membership = members_by_pid[pid][key]
        if m.status != "blocked":
            n += 1
    return n


def over_limit(count: int, max_profiles: int | None) -> bool:
    return max_profiles is not None and count > max_profiles


def release_applies(quarantined_at: int | None, released_at_us: int | None) -> bool:
    """A release without `released_at` lifts any quarantine (and exempts the value while listed); with it,
    only quarantines that happened at or before `released_at`."""
    if released_at_us is None:
        return True
    return quarantined_at is not None and quarantined_at <= released_at_us


def to_us(ts: datetime | None) -> int | None:
    if ts is None:
        return None
    import pandas as pd

    return int(pd.Timestamp(ts).as_unit("us").asm8.view("int64"))
