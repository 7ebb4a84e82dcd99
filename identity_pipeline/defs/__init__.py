"""The thin Dagster shell: assets, checks, resources and schedules that call the pure engine in `core/`.

`build_definitions(config)` is the single code path used by `dagster dev`, the CLI and the tests.
"""

from __future__ import annotations

import dagster as dg

from identity_pipeline.config import PipelineConfig
from identity_pipeline.defs.resources import duckdb_resource


def build_definitions(config: PipelineConfig) -> dg.Definitions:
    """Definitions for every capability present in the config, sharing one DuckDB resource."""
    parts: list[dg.Definitions] = []
    if config.profile_resolution is not None:
        from identity_pipeline.defs.profile_resolution import build_profile_resolution_defs

        parts.append(build_profile_resolution_defs(config))
    if config.event_stitching is not None:
        from identity_pipeline.defs.event_stitching import build_event_stitching_defs

        parts.append(build_event_stitching_defs(config))
    shared = dg.Definitions(
        resources={"duckdb": duckdb_resource(config)},
        executor=dg.in_process_executor,
    )
    return dg.Definitions.merge(shared, *parts)
