"""`carry_merged_memberships` / `carry_merged_redirects`: rows a window did not load follow its merges."""

from __future__ import annotations

import pandas as pd

from identity_pipeline.core.event_stitching.state import (
    PROFILE_COLUMNS,
    PROFILE_VALUE_COLUMNS,
    REDIRECT_COLUMNS,
    carry_merged_memberships,
    carry_merged_redirects,
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


def test_older_redirects_to_a_merged_profile_point_to_its_survivor_with_their_source_profiles():
    # P3 -> P2 and P4 -> P2 were written by earlier windows; this window merges P2 into P1. P5 -> P6 is
    # unrelated.
    redirects = pd.DataFrame(
        [
            ("P3", "P2", pd.Timestamp("2026-11-01 10:00"), "web", "e4", "2026-11-01"),
            ("P4", "P2", pd.Timestamp("2026-11-01 11:00"), "web", "e7", "2026-11-01"),
            ("P5", "P6", pd.Timestamp("2026-11-01 12:00"), "app", "e9", "2026-11-01"),
        ],
        columns=REDIRECT_COLUMNS,
    )
    t = pd.Timestamp("2026-11-01 09:00")
    profiles = pd.DataFrame(
        [
            ("P3", 3, t, t, t, "merged", "P2", 1, False),
            ("P4", 4, t, t, t, "merged", "P2", 2, True),
            ("P5", 5, t, t, t, "merged", "P6", 1, False),
        ],
        columns=PROFILE_COLUMNS,
    )
    red, prof = carry_merged_redirects(redirects, profiles, {"P2": "P1"})
    assert dict(zip(red["from_id"], red["to_id"], strict=True)) == {"P3": "P1", "P4": "P1", "P5": "P6"}
    # evidence and timing of the original merge are kept
    assert red.drop(columns="to_id").equals(redirects.drop(columns="to_id"))
    merged_to = dict(
        zip(prof["dinmo_stitched_profile_id"], prof["merged_to_dinmo_stitched_profile_id"], strict=True)
    )
    assert merged_to == {"P3": "P1", "P4": "P1", "P5": "P6"}
    assert prof.drop(columns="merged_to_dinmo_stitched_profile_id").equals(
        profiles.drop(columns="merged_to_dinmo_stitched_profile_id")
    )
    assert list(red.columns) == REDIRECT_COLUMNS and list(prof.columns) == PROFILE_COLUMNS
