"""DuckDB persistence of Event Stitching: staged windows, the value dictionary, the graph state, per-window
outputs and the published views.

No Dagster import: the Dagster shell (`identity_pipeline/defs/event_stitching.py`) and the tests call these
functions with a DuckDB connection. Design: docs/event-stitching-storage.md.

Modules (each imports only the ones above it):

* `tables.py`: schemas, tables, view names; `ensure_schema`;
* `windows.py`: windows from the config, processed windows, `check_predecessor`;
* `dictionary.py`: identifier type codes and the value dictionary (`vid` of every value);
  `dictionary_index.py`: its keys in memory, for staging many windows in one call;
* `staging.py`: a window's events and observations from the models (`stage_window`; several
  windows, the next one read while the current one is written: `stage_windows`) or frames (`stage_frames`),
  integer-coded;
* `columns.py`, `keyset.py`: growable arrays (filled ahead of use), row chains, a set of 64-bit keys;
* `allocator.py`: glibc's and numpy's memory settings for the length of a run (fresh pages are slow);
* `graph_cache.py`: the run's in-memory graph, loaded from the state tables on demand, journaled;
* `subgraph.py`: the subgraph a window reads, from the in-memory graph;
* `apply.py`: a window's outcome into the in-memory graph (merges carry what was not loaded), conflicts;
* `flush.py`: the in-memory graph back to the state tables, a window's undo log;
* `undo.py`: rolling windows back (re-runs);
* `views.py`: the published views;
* `run.py`: `StitchRun`, windows processed in order, committed every `commit_every_windows` windows.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from identity_pipeline.core.event_stitching.store.run import StitchRun
from identity_pipeline.core.event_stitching.store.staging import (
    read_window_events,
    require_staged,
    stage_frames,
    stage_window,
    stage_windows,
    validate_models,
)
from identity_pipeline.core.event_stitching.store.tables import (
    ATTRIBUTION_VIEW,
    AUDIT_VIEW,
    METRICS_VIEW,
    OUT,
    PROFILES_VIEW,
    PUBLISHED,
    REDIRECTS_VIEW,
    STAGE,
    STATE,
    STATE_TABLES,
    VALUES_VIEW,
    StoreVersionError,
    WindowOrderError,
    ensure_schema,
)
from identity_pipeline.core.event_stitching.store.views import (
    attribution_select,
    audit_select,
    identifier_values_select,
    profiles_select,
    publish_views,
    published_table,
    redirects_select,
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


def stitch_windows(
    con: duckdb.DuckDBPyConnection, config: Any, windows: list[Window], commit_every: int = 10
) -> list[dict[str, float]]:
    """Process consecutive staged windows in order in one run, committing every `commit_every` windows;
    returns each window's metrics."""
    with StitchRun(con, config, windows, commit_every=commit_every) as run:
        return [run.process(w) for w in sorted(windows, key=lambda w: w.start)]


def process_frames(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window: Window,
    events: pd.DataFrame,
    observations: pd.DataFrame,
) -> dict[str, float]:
    """Stage one window from frames (`stage_frames`) and stitch it: what the engine-level store tests use."""
    ensure_schema(con)
    stage_frames(con, config, window, events, observations)
    return stitch_windows(con, config, [window])[0]


__all__ = [
    "ATTRIBUTION_VIEW",
    "AUDIT_VIEW",
    "METRICS_VIEW",
    "OUT",
    "PROFILES_VIEW",
    "PUBLISHED",
    "REDIRECTS_VIEW",
    "STAGE",
    "STATE",
    "STATE_TABLES",
    "VALUES_VIEW",
    "StitchRun",
    "StoreVersionError",
    "Window",
    "WindowOrderError",
    "attribution_select",
    "audit_select",
    "check_predecessor",
    "config_end",
    "config_start",
    "config_windows",
    "ensure_schema",
    "identifier_values_select",
    "process_frames",
    "processed_windows",
    "profiles_select",
    "publish_views",
    "published_table",
    "read_window_events",
    "redirects_select",
    "require_staged",
    "stage_frames",
    "stage_window",
    "stage_windows",
    "stitch_windows",
    "validate_models",
    "window_for_key",
    "window_metrics",
]
