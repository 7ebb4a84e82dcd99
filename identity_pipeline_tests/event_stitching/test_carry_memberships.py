"""`carry_merged_memberships`: memberships a window did not load follow the window's merges."""

from __future__ import annotations

import pandas as pd

from identity_pipeline.core.event_stitching.state import (
    PROFILE_VALUE_COLUMNS,
    carry_merged_memberships,
    profile_wide_types,
)
from identity_pipeline_tests.event_stitching.helpers import make_config


def _rows(*rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=PROFILE_VALUE_COLUMNS)
    for c in ("first_seen_at", "last_seen_at"):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[us]")
    return df


def test_rows_move_to_the_survivor_and_combine_on_the_same_value():
    unloaded = _rows(
        ("P2", "session_id", "s1", "active", "2026-11-01 10:00", "2026-11-01 11:00", 2),
        ("P2", "session_id", "s9", "blocked", "2026-11-01 09:00", "2026-11-01 09:00", 1),
        ("P3", "session_id", "s9", "active", "2026-11-02 08:00", "2026-11-02 12:00", 5),  # merged too
        ("P1", "session_id", "s1", "blocked", "2026-11-01 08:00", "2026-11-01 10:30", 3),
        ("P1", "session_id", "s9", "blocked", "2026-11-01 07:00", "2026-11-01 07:30", 1),
    )
    out = carry_merged_memberships(unloaded, {"P2": "P1", "P3": "P1"})
    got = {
        (r.dinmo_stitched_profile_id, r.value): (
            r.status,
            str(r.first_seen_at),
            str(r.last_seen_at),
            r.event_count,
        )
        for r in out.itertuples()
    }
    assert got == {
        # active (P2) outranks blocked (P1); earliest first seen, latest last seen, counts summed
        ("P1", "s1"): ("active", "2026-11-01 08:00:00", "2026-11-01 11:00:00", 5),
        ("P1", "s9"): ("active", "2026-11-01 07:00:00", "2026-11-02 12:00:00", 7),
    }
    assert list(out.columns) == PROFILE_VALUE_COLUMNS


def test_rows_of_profiles_not_merged_stay_as_they_are():
    unloaded = _rows(("P4", "cookie_id", "c", "active", "2026-11-01", "2026-11-02", 4))
    out = carry_merged_memberships(unloaded, {"P2": "P1"})
    assert out.to_dict("records") == unloaded.to_dict("records")


def test_profile_wide_types_are_anchors_and_capacity_limited_weak_types():
    assert profile_wide_types(make_config()) == ["email", "user_id"]
    cfg = make_config(device_id={"max_unique_values_per_profile": 3}, email={"anchor": False})
    assert profile_wide_types(cfg) == ["device_id", "user_id"]
