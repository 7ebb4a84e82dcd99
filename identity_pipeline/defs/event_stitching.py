"""Event Stitching as Dagster assets: one time partition per window, processed strictly in order.

    event models (external) -> window_events + identifier_observations -> event_stitching_graph
                                                                          + the six published outputs

`window_events` and `identifier_observations` are staged together (one read of the models per window).
`event_stitching_graph` depends on its own previous window and is computed together with the published
outputs (one multi-asset step): the run's windows are stitched in order by `core/event_stitching/store/`
(`StitchRun`), committed every `commit_every_windows` windows (a failure keeps the windows committed before
it). Every asset has `BackfillPolicy.single_run()`, so a range of windows is one run that loops over the
windows oldest first. Dagster does not stop a run of window N when N-1 was never processed; the store checks
it and fails with a message naming both windows.
"""

import warnings
from datetime import datetime
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from identity_pipeline.config import PipelineConfig
from identity_pipeline.core.event_stitching import store

# Single-run backfills need `backfill_policy`, still flagged beta; we rely on it knowingly.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

GROUP = "event_stitching"
JOB_NAME = "event_stitching_job"
SCHEDULE_NAME = "event_stitching_schedule"
GRAPH_KEY = dg.AssetKey("event_stitching_graph")
WINDOW_EVENTS_KEY = dg.AssetKey("window_events")
OBSERVATIONS_KEY = dg.AssetKey("identifier_observations")
PUBLISHED_KEYS = [dg.AssetKey(name) for name in store.PUBLISHED]
# Numeric window metrics surfaced as materialization metadata (plotted over time by the UI).
HEADLINE_METRICS = (
    "events_processed",
    "events_stitched",
    "events_excluded",
    "stitch_rate",
    "known_profile_share",
    "profiles_created",
    "profiles_merged",
    "values_quarantined",
    "active_conflicts",
    "values_demoted",
    "duration_seconds",
)


def partitions_def(config: PipelineConfig) -> dg.TimeWindowPartitionsDefinition:
    es = config.event_stitching
    assert es is not None
    start = store.config_start(es)
    end = store.config_end(es)
    if str(es.window) == "hourly":
        fmt = "%Y-%m-%d-%H:%M"
        return dg.HourlyPartitionsDefinition(
            start_date=start.strftime(fmt), end_date=end.strftime(fmt) if end else None
        )
    fmt = "%Y-%m-%d"
    return dg.DailyPartitionsDefinition(
        start_date=start.strftime(fmt), end_date=end.strftime(fmt) if end else None
    )


def _windows(context: dg.AssetExecutionContext | dg.OpExecutionContext, config: PipelineConfig) -> list:
    es = config.event_stitching
    keys = sorted(context.partition_keys, key=lambda k: store.window_for_key(es, k).start)
    return [store.window_for_key(es, k) for k in keys]


def _model_specs(config: PipelineConfig) -> list[dg.AssetSpec]:
    es = config.event_stitching
    assert es is not None
    specs = []
    for m in es.models:
        where = m.table if m.table is not None else str(m.resolved_path(config.base_path()))
        specs.append(
            dg.AssetSpec(
                key=dg.AssetKey(["event_models", m.name]),
                group_name=GROUP,
                description=f"Event model `{m.name}` ({where}), read window by window.",
                metadata={"location": where, "event_id": m.event_id, "timestamp": m.timestamp},
                kinds={"duckdb" if m.table is not None else "file"},
            )
        )
    return specs


def _metrics_markdown(rows: list[dict[str, float]], keys: list[str]) -> str:
    cols = [c for c in HEADLINE_METRICS if any(c in r for r in rows)]
    head = "| window | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    body = "".join(
        f"| {k} | " + " | ".join(f"{r.get(c, float('nan')):.4g}" for c in cols) + " |\n"
        for k, r in zip(keys, rows, strict=True)
    )
    return head + body


def _numeric_metadata(metrics: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if k in HEADLINE_METRICS or k.startswith(("events_excluded_", "excluded_")):
            out[k] = float(v)
    return out


def build_event_stitching_defs(config: PipelineConfig) -> dg.Definitions:
    """Assets, checks, job and schedule of Event Stitching for this config."""
    from identity_pipeline.defs.event_stitching_checks import build_event_stitching_checks

    es = config.event_stitching
    assert es is not None
    base_dir: Path = config.base_path()
    parts = partitions_def(config)
    model_specs = _model_specs(config)
    single_run = dg.BackfillPolicy.single_run()

    stage_specs = [
        dg.AssetSpec(
            key=WINDOW_EVENTS_KEY,
            group_name=GROUP,
            partitions_def=parts,
            deps=model_specs,
            kinds={"duckdb"},
            description="Events of the window from every model (model, event id, timestamp) in processing "
            "order (`es_stage.events`), replaced per window.",
        ),
        dg.AssetSpec(
            key=OBSERVATIONS_KEY,
            group_name=GROUP,
            partitions_def=parts,
            deps=[WINDOW_EVENTS_KEY],
            kinds={"duckdb"},
            description="Standardized identifier observations of the window (rules 1-2: standardized, "
            "blocked flagged), as ids of the value dictionary (`es_stage.observations`), replaced per "
            "window.",
        ),
    ]

    @dg.multi_asset(
        name="stage_event_windows", specs=stage_specs, backfill_policy=single_run, can_subset=False
    )
    def stage_event_windows(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        """Read each window once from the models: stage its events and its observations together."""
        windows = _windows(context, config)
        events = observations = blocked = 0
        per_window: dict[str, int] = {}
        with duckdb.get_connection() as con:
            store.ensure_schema(con)
            store.validate_models(con, es, base_dir)
            for w, counts in store.stage_windows(con, es, windows, base_dir):
                per_window[w.key] = counts["events"]
                events += counts["events"]
                observations += counts["observations"]
                blocked += counts["blocked"]
                context.log.info(
                    f"window {w.key}: {counts['events']} events, {counts['observations']} observations staged"
                )
        yield dg.MaterializeResult(
            asset_key=WINDOW_EVENTS_KEY,
            metadata={
                "dagster/row_count": events,
                "events": events,
                "windows": len(windows),
                "events_by_window": dg.MetadataValue.json(per_window),
            },
        )
        yield dg.MaterializeResult(
            asset_key=OBSERVATIONS_KEY,
            metadata={"dagster/row_count": observations, "observations": observations, "blocked": blocked},
        )

    graph_spec = dg.AssetSpec(
        key=GRAPH_KEY,
        group_name=GROUP,
        partitions_def=parts,
        kinds={"duckdb"},
        deps=[
            OBSERVATIONS_KEY,
            WINDOW_EVENTS_KEY,
            dg.AssetDep(
                GRAPH_KEY, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
            ),
        ],
        description="The event profile graph (state tables in `es_state`) after the window; each window "
        "starts from the state left by the previous one.",
    )
    published_specs = [
        dg.AssetSpec(
            key=key,
            group_name=GROUP,
            partitions_def=parts,
            deps=[GRAPH_KEY],
            kinds={"duckdb"},
            metadata={"dagster/table_name": f"main.{key.path[-1]}"},
            description=f"Published output `{key.path[-1]}` (view, see docs/event-stitching-storage.md).",
        )
        for key in PUBLISHED_KEYS
    ]

    @dg.multi_asset(
        name="event_stitching_graph",
        specs=[graph_spec, *published_specs],
        backfill_policy=single_run,
        can_subset=False,
    )
    def event_stitching_graph(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        windows = _windows(context, config)
        with duckdb.get_connection() as con:
            store.ensure_schema(con)
            for w in windows:
                store.require_staged(con, w.key, "identifier_observations")
            all_metrics = store.stitch_windows(con, es, windows, commit_every=es.commit_every_windows)
        for w, metrics in zip(windows, all_metrics, strict=True):
            context.log_event(
                dg.AssetObservation(asset_key=GRAPH_KEY, partition=w.key, metadata=_numeric_metadata(metrics))
            )
            context.log.info(
                f"window {w.key}: {int(metrics.get('events_processed', 0))} events, "
                f"stitch rate {metrics.get('stitch_rate', float('nan')):.3f}, "
                f"{metrics.get('duration_seconds', 0):.2f}s"
            )
        last = all_metrics[-1] if all_metrics else {}
        meta: dict = dict(_numeric_metadata(last))
        meta["windows"] = len(windows)
        meta["last_window"] = windows[-1].key if windows else ""
        if all_metrics:
            meta["window_metrics"] = dg.MetadataValue.md(
                _metrics_markdown(all_metrics, [w.key for w in windows])
            )
        yield dg.MaterializeResult(asset_key=GRAPH_KEY, metadata=meta)
        for key in PUBLISHED_KEYS:
            yield dg.MaterializeResult(asset_key=key, metadata={"dagster/table_name": f"main.{key.path[-1]}"})

    job = dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.groups(GROUP) - dg.AssetSelection.keys(*[s.key for s in model_specs]),
        description="Event Stitching: stage events, extract observations, stitch and publish, window by "
        "window.",
    )
    schedule = dg.build_schedule_from_partitioned_job(job, name=SCHEDULE_NAME)

    return dg.Definitions(
        assets=[*model_specs, stage_event_windows, event_stitching_graph],
        asset_checks=build_event_stitching_checks(config),
        jobs=[job],
        schedules=[schedule],
    )


def newest_complete_window(config: PipelineConfig, now: datetime | None = None) -> str | None:
    """Key of the newest complete window (what the schedule requests at `now`)."""
    es = config.event_stitching
    assert es is not None
    windows = store.config_windows(es, until=now)
    return windows[-1].key if windows else None
