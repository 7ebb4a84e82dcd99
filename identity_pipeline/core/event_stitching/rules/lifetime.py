"""Rule 3 (expired): a known value expires when event_ts > reference + lifetime.

The reference is the value's global first observation (`lifetime_from: first_seen`, default) or its last
*matching* observation (`last_seen`, sliding). An expired value is not attached and does not refresh
last_seen, so expiry is permanent (see docs/event-stitching.md).
"""

from __future__ import annotations

from identity_pipeline.core.event_stitching.state import RegistryEntry


def is_expired(entry: RegistryEntry, event_ts: int, lifetime_us: int | None, from_last_seen: bool) -> bool:
    if lifetime_us is None:
        return False
    ref = entry.last_seen if from_last_seen else entry.first_seen
    return event_ts > ref + lifetime_us
