"""DuckDB persistence for Event Stitching: versioned graph state, per-window outputs, published views.

No Dagster import: the Dagster shell (`identity_pipeline/defs/event_stitching.py`) and the tests call these
functions with a DuckDB connection.

Design (see `docs/event-stitching-storage.md`):

* Graph state lives in schema `es_state` as **versioned** rows. Every row carries `version_window_start` /
  `version_window_key` (the window that wrote it) and `is_deleted` (a tombstone). "State before window N" is
  the latest version per key among rows written by windows strictly before N; a window writes only the rows it
  changed (a diff of the loaded subgraph against the engine's result).
* `live_<name>` tables hold the state after the last window processed in order (`live_as_of.valid_before`),
  kept current in each window's transaction, so a window reads the current graph, not the version history;
  they are rebuilt from the versions when a window is re-run (`ensure_live`).
* A window loads only what its rules read (the memberships of `state.profile_wide_types` and of its values;
  no redirects, no merged profiles); the rest follows the window's merges in the store
  (`carry_unloaded_rows`).
* Re-running window N deletes the rows written by window N (state versions and per-window outputs) and inserts
  the new ones in **one transaction**. Rows of later windows stay; if window N's state changed, later windows
  are marked `outdated` and must be re-run in order before anything newer is processed.
* Per-window outputs (attribution, audit events, run metrics) are tables in `es_output` keyed by `window_key`.
  The names DinMo documents are **views** in `main` over those tables and over the current state (the live
  tables, or the latest versions while a re-run waits for the later windows: `point_current_views`), so
  `resolved_dinmo_stitched_profile_id` and value statuses are always current without rewriting history.
* A window's cost: one filtered read of its events, semi-joins of the state tables against the window's
  values, a diff of the touched subgraph, and small inserts. Global metrics (`known_profile_share`,
  `active_conflicts`) are maintained incrementally (running totals per window and a small versioned table
  of conflicted values).

Modules (each imports only the ones above it):

* `tables.py`: schema, table and view names, state columns and keys; `ensure_schema`;
* `windows.py`: windows from the config, processed windows, `check_predecessor`;
* `staging.py`: a window's events and identifier observations (`stage_window`, `stage_observations`);
* `live_state.py`: versions and live tables, `load_subgraph`, `carry_unloaded_rows`;
* `diffs.py`: a window's changed rows as versions, applied to the live tables;
* `conflicts.py`: conflicted values, incrementally (`active_conflicts`);
* `views.py`: the published views (`publish_views`, and the queries of the two the checks filter:
  `profiles_select`, `identifier_values_select`);
* `save.py`: `save_window` (one transaction) and `process_window` (load -> engine -> save).
"""

from identity_pipeline.core.event_stitching.store.live_state import (
    KeyCollisionError,
    carry_unloaded_rows,
    ensure_live,
    load_subgraph,
)
from identity_pipeline.core.event_stitching.store.save import (
    LAST_TIMINGS,
    process_window,
    save_window,
)
from identity_pipeline.core.event_stitching.store.staging import (
    read_window_events,
    require_staged,
    stage_observations,
    stage_window,
    staged_events,
    staged_observations,
    validate_models,
)
from identity_pipeline.core.event_stitching.store.tables import (
    ATTRIBUTION_VIEW,
    AUDIT_VIEW,
    EVENT_KEY_SQL,
    LIVE_COLUMNS,
    LIVE_HASH_KEYS,
    LIVE_KEYS,
    METRICS_VIEW,
    OUT,
    PROFILES_VIEW,
    PUBLISHED,
    REDIRECTS_VIEW,
    STAGE,
    STATE,
    STATE_COLUMNS,
    VALUES_VIEW,
    WindowOrderError,
    ensure_schema,
)
from identity_pipeline.core.event_stitching.store.views import (
    identifier_values_select,
    profiles_select,
    publish_views,
    published_table,
    window_metrics,
)
from identity_pipeline.core.event_stitching.store.windows import (
    Window,
    check_predecessor,
    config_end,
    config_start,
    config_windows,
    processed_windows,
    window_for_key,
)

__all__ = [
    "ATTRIBUTION_VIEW",
    "AUDIT_VIEW",
    "EVENT_KEY_SQL",
    "KeyCollisionError",
    "LAST_TIMINGS",
    "LIVE_COLUMNS",
    "LIVE_HASH_KEYS",
    "LIVE_KEYS",
    "METRICS_VIEW",
    "OUT",
    "PROFILES_VIEW",
    "PUBLISHED",
    "REDIRECTS_VIEW",
    "STAGE",
    "STATE",
    "STATE_COLUMNS",
    "VALUES_VIEW",
    "Window",
    "WindowOrderError",
    "carry_unloaded_rows",
    "check_predecessor",
    "config_end",
    "config_start",
    "config_windows",
    "ensure_live",
    "ensure_schema",
    "identifier_values_select",
    "load_subgraph",
    "process_window",
    "processed_windows",
    "profiles_select",
    "publish_views",
    "published_table",
    "read_window_events",
    "require_staged",
    "save_window",
    "stage_observations",
    "stage_window",
    "staged_events",
    "staged_observations",
    "validate_models",
    "window_for_key",
    "window_metrics",
]
