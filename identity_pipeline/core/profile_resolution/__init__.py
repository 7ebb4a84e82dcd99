"""Profile Resolution engine (pure: no Dagster). Stage functions live in `pipeline`."""

from identity_pipeline.core.profile_resolution.pipeline import (
    PUBLISHED_TABLES,
    STAGES,
    publish,
    run_all,
    stage_clusters,
    stage_golden,
    stage_identifier_values,
    stage_match_pairs,
    stage_matched_ids,
    stage_report,
    stage_source_records,
    validate_sources,
)

__all__ = [
    "PUBLISHED_TABLES",
    "STAGES",
    "publish",
    "run_all",
    "stage_clusters",
    "stage_golden",
    "stage_identifier_values",
    "stage_match_pairs",
    "stage_matched_ids",
    "stage_report",
    "stage_source_records",
    "validate_sources",
]
