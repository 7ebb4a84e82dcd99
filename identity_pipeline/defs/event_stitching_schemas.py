"""pandera schemas of the Event Stitching outputs (checked per window by `event_stitching_checks.py`)."""

from __future__ import annotations

import pandera.pandas as pa

_STR = pa.String
_TS = pa.DateTime

PROFILE_STATUS = ["active", "merged"]
VALUE_STATUS = ["active", "expired", "demoted", "quarantined", "blocked"]
ATTRIBUTION_STATUS = ["stitched", "excluded"]
EXCLUSION_REASONS = ["no_matchable_identifier", "conflicted_identifier_value", "limit_conflict"]


def _id_check() -> pa.Check:
    return pa.Check.str_length(min_value=1)


attribution_schema = pa.DataFrameSchema(
    name="identity_event_profile_attribution",
    columns={
        "model": pa.Column(_STR),
        "event_id": pa.Column(_STR, _id_check()),
        "event_ts": pa.Column(_TS),
        "window_key": pa.Column(_STR),
        "dinmo_stitched_profile_id": pa.Column(_STR, nullable=True),
        "resolved_dinmo_stitched_profile_id": pa.Column(_STR, nullable=True),
        "status": pa.Column(_STR, pa.Check.isin(ATTRIBUTION_STATUS)),
        "reason": pa.Column(_STR, nullable=True),
        "decided_by_identifier_type": pa.Column(_STR, nullable=True),
        "decided_by_value": pa.Column(_STR, nullable=True),
    },
    checks=[
        pa.Check(
            lambda df: (df["status"] == "stitched") == df["dinmo_stitched_profile_id"].notna(),
            name="stitched_iff_profile_id",
            error="stitched events have a profile id; excluded events have none",
        ),
        pa.Check(
            lambda df: (df["status"] == "stitched") | df["reason"].isin(EXCLUSION_REASONS),
            name="excluded_has_known_reason",
            error=f"excluded events carry one of {EXCLUSION_REASONS}",
        ),
    ],
    unique=["model", "event_id"],
)

profiles_schema = pa.DataFrameSchema(
    name="identity_event_profiles",
    columns={
        "dinmo_stitched_profile_id": pa.Column(_STR, _id_check(), unique=True),
        "created_sequence": pa.Column(int, pa.Check.ge(0)),
        "created_at": pa.Column(_TS),
        "first_seen_at": pa.Column(_TS),
        "last_seen_at": pa.Column(_TS),
        "status": pa.Column(_STR, pa.Check.isin(PROFILE_STATUS)),
        "merged_to_dinmo_stitched_profile_id": pa.Column(_STR, nullable=True),
        "resolved_dinmo_stitched_profile_id": pa.Column(_STR),
        "is_known": pa.Column(bool),
        "profile_type": pa.Column(_STR, pa.Check.isin(["known", "anonymous"])),
        "event_count": pa.Column(int, pa.Check.ge(0)),
    },
    checks=[
        pa.Check(lambda df: df["first_seen_at"] <= df["last_seen_at"], name="first_seen_before_last_seen"),
        pa.Check(
            lambda df: (df["status"] == "merged") == df["merged_to_dinmo_stitched_profile_id"].notna(),
            name="merged_iff_merged_to",
        ),
    ],
)

identifier_values_schema = pa.DataFrameSchema(
    name="identity_event_profile_identifier_values",
    columns={
        "dinmo_stitched_profile_id": pa.Column(_STR, _id_check()),
        "identifier_type": pa.Column(_STR),
        "value": pa.Column(_STR),
        "status": pa.Column(_STR, pa.Check.isin(VALUE_STATUS)),
        "first_seen_at": pa.Column(_TS),
        "last_seen_at": pa.Column(_TS),
        "event_count": pa.Column(int, pa.Check.ge(0)),
    },
    checks=[
        pa.Check(lambda df: df["first_seen_at"] <= df["last_seen_at"], name="first_seen_before_last_seen")
    ],
    unique=["dinmo_stitched_profile_id", "identifier_type", "value"],
)

redirects_schema = pa.DataFrameSchema(
    name="identity_event_profile_redirects",
    columns={
        "from_id": pa.Column(_STR, _id_check(), unique=True),
        "to_id": pa.Column(_STR, _id_check()),
        "resolved_dinmo_stitched_profile_id": pa.Column(_STR),
        "merged_at": pa.Column(_TS),
        "evidence_model": pa.Column(_STR, nullable=True),
        "evidence_event_id": pa.Column(_STR, nullable=True),
        "window_key": pa.Column(_STR),
    },
    checks=[pa.Check(lambda df: df["from_id"] != df["to_id"], name="no_self_redirect")],
)

audit_events_schema = pa.DataFrameSchema(
    name="identity_event_profile_audit_events",
    columns={
        "window_key": pa.Column(_STR),
        "audit_type": pa.Column(_STR),
        "identifier_type": pa.Column(_STR, nullable=True),
        "value": pa.Column(_STR, nullable=True),
        "dinmo_stitched_profile_id": pa.Column(_STR, nullable=True),
    },
)

run_metrics_schema = pa.DataFrameSchema(
    name="identity_event_profile_run_metrics",
    columns={
        "window_key": pa.Column(_STR),
        "window_start": pa.Column(_TS),
        "breakdown": pa.Column(_STR, pa.Check.isin(["window", "model", "identifier_type"])),
        "breakdown_value": pa.Column(_STR, nullable=True),
        "metric": pa.Column(_STR),
        "value": pa.Column(float),
    },
    checks=[
        pa.Check(
            lambda df: (df["breakdown"] == "window") == df["breakdown_value"].isna(),
            name="breakdown_value_iff_breakdown",
        )
    ],
    unique=["window_key", "breakdown", "breakdown_value", "metric"],
)
