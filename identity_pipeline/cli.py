"""`identity-pipeline run|validate`: the same Dagster definitions as the UI and schedules, run in-process.

    identity-pipeline validate [--config PATH]
    identity-pipeline run [--config PATH] [--only profile_resolution|event_stitching]

Both load the YAML config (`--config`, else `$IDENTITY_PIPELINE_CONFIG`, else `data/config.yaml`) and build
`identity_pipeline.defs.build_definitions(config)`; `run` materializes through `dagster.materialize` with
`DagsterInstance.get()` when `DAGSTER_HOME` is set (runs show up in the UI) or an ephemeral instance.
Exit codes: 0 ok, 1 run failed (a step or a blocking check), 2 bad config (message on stderr, no traceback).
"""

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from identity_pipeline.config import ConfigError, PipelineConfig, load_config

CAPABILITIES = ("profile_resolution", "event_stitching")
# Dagster's console logger at WARNING: step errors still show, per-step DEBUG events do not.
# (The run's full event log is in the instance: `DAGSTER_HOME` makes it visible in the UI.)
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _instance():
    import dagster as dg

    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _validate_sources(config: PipelineConfig) -> None:
    """Bind every configured column / expression / key against the real sources (raises ConfigError):
    profile sources, and event models (columns exist, every event has an id and a parseable timestamp)."""
    pr, es = config.profile_resolution, config.event_stitching
    if pr is None and es is None:
        return
    uses_tables = any(s.table is not None for s in (pr.sources if pr is not None else [])) or any(
        m.table is not None for m in (es.models if es is not None else [])
    )
    db = config.database_path()
    # sources that are DuckDB tables live in the pipeline file (read-only); files need no database
    con = duckdb.connect(str(db), read_only=True) if uses_tables and db.exists() else duckdb.connect()
    try:
        if pr is not None:
            from identity_pipeline.core.profile_resolution.pipeline import validate_sources

            validate_sources(con, config)
        if es is not None:
            from identity_pipeline.core.event_stitching.store import validate_models

            validate_models(con, es, config.base_path())
    finally:
        con.close()


def _describe(config: PipelineConfig) -> str:
    parts = []
    pr = config.profile_resolution
    if pr is not None:
        parts.append(
            f"profile_resolution: {len(pr.sources)} source(s) ({', '.join(s.name for s in pr.sources)}), "
            f"{len(pr.identifiers)} identifier(s), {len(pr.rules)} rule(s)"
        )
    es = config.event_stitching
    if es is not None:
        models = getattr(es, "models", None) or []
        parts.append(f"event_stitching: {len(models)} model(s)")
    return "; ".join(parts)


def cmd_validate(config_path: str | None) -> int:
    from identity_pipeline.defs import build_definitions

    config = load_config(config_path)
    _validate_sources(config)
    defs = build_definitions(config)
    defs.resolve_asset_graph()  # wiring errors surface here, like `dagster definitions validate`
    print(f"config OK: {_describe(config)}; database: {config.database_path()}")
    return 0


def _failure_report(result) -> str:
    lines = []
    for ev in result.get_step_failure_events():
        err = ev.event_specific_data.error if ev.event_specific_data else None
        msg = err.message.strip().splitlines()[0] if err and err.message else "failed"
        lines.append(f"  step {ev.step_key}: {msg}")
    for ev in result.get_asset_check_evaluations():
        if not ev.passed:
            desc = f" ({ev.description})" if getattr(ev, "description", None) else ""
            lines.append(f"  check {ev.asset_key.to_user_string()}:{ev.check_name} failed{desc}")
    return "\n".join(lines) or "  (no failure details)"


def _run_profile_resolution(defs, config: PipelineConfig, instance) -> bool:
    import dagster as dg

    from identity_pipeline.defs.profile_resolution import GROUP

    resources = dict(defs.resources or {})
    assets = list(defs.assets or [])
    checks = list(defs.asset_checks or [])
    result = dg.materialize(
        [*assets, *checks],
        selection=dg.AssetSelection.groups(GROUP),
        resources=resources,
        instance=instance,
        raise_on_error=False,
        tags={"identity_pipeline/trigger": "cli"},
        run_config=QUIET_RUN_CONFIG,
    )
    if not result.success:
        _err(f"profile_resolution run {result.run_id} failed:\n{_failure_report(result)}")
        return False
    print(profile_resolution_summary(config.database_path()))
    return True


def profile_resolution_summary(db_path: Path) -> str:
    """Short summary read from the published tables in `main`."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        lookup, profiles, merged = con.execute(
            "select count(*), count(distinct dinmo_id), count(*) - count(distinct dinmo_id) "
            "from main.identity_lookup"
        ).fetchone()
        reasons = con.execute(
            "select reason, count(*) from main.identity_unresolved_records group by reason order by reason"
        ).fetchall()
        golden = con.execute("select count(*) from main.identity_golden").fetchone()[0]
    finally:
        con.close()
    unresolved = sum(n for _, n in reasons)
    records_in = lookup + unresolved
    rate = lookup / records_in if records_in else 0.0
    lines = [
        "profile_resolution:",
        f"  records in:          {records_in}",
        f"  profiles out:        {golden}",
        f"  duplicates merged:   {merged} (records folded into another record's profile)",
        f"  resolution rate:     {rate:.1%}",
        f"  unresolved:          {unresolved}",
    ]
    lines += [f"    {reason}: {n}" for reason, n in reasons]
    lines.append(f"  tables in {db_path} (schema main)")
    return "\n".join(lines)


def _run_event_stitching(defs, config: PipelineConfig, instance) -> bool:
    """Materialize every complete window of the config, oldest first, in ONE run; print per-window metrics."""
    from identity_pipeline.core.event_stitching import store
    from identity_pipeline.defs.event_stitching import JOB_NAME

    es = config.event_stitching
    assert es is not None
    windows = store.config_windows(es)
    if not windows:
        print("event_stitching: no complete window yet (start is in the future)")
        return True
    tags = {
        "dagster/asset_partition_range_start": windows[0].key,
        "dagster/asset_partition_range_end": windows[-1].key,
        "identity_pipeline/trigger": "cli",
    }
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(
        instance=instance, tags=tags, raise_on_error=False, run_config=QUIET_RUN_CONFIG
    )
    if not result.success:
        _err(f"event_stitching run {result.run_id} failed:\n{_failure_report(result)}")
        return False
    print(event_stitching_summary(config.database_path(), [w.key for w in windows]))
    warnings = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for ev in warnings:
        print(f"  warning: check {ev.asset_key.to_user_string()}:{ev.check_name} did not pass")
    return True


ES_SUMMARY_COLUMNS = (
    ("events_processed", "events", "{:.0f}"),
    ("events_stitched", "stitched", "{:.0f}"),
    ("events_excluded", "excluded", "{:.0f}"),
    ("stitch_rate", "stitch_rate", "{:.1%}"),
    ("profiles_created", "created", "{:.0f}"),
    ("profiles_merged", "merged", "{:.0f}"),
    ("known_profile_share", "known_share", "{:.1%}"),
    ("values_quarantined", "conflicted", "{:.0f}"),
    ("active_conflicts", "active_conflicts", "{:.0f}"),
    ("values_demoted", "demoted", "{:.0f}"),
    ("duration_seconds", "seconds", "{:.2f}"),
)


def event_stitching_summary(db_path: Path, window_keys: list[str]) -> str:
    """One line of stitching metrics per window, read from identity_event_profile_run_metrics."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        rows = con.execute(
            "select window_key, metric, value from main.identity_event_profile_run_metrics "
            "where breakdown = 'window' order by window_key, metric"
        ).fetchall()
        reasons = con.execute(
            "select coalesce(reason, '-'), count(*) from main.identity_event_profile_attribution "
            "where status = 'excluded' group by all order by 1"
        ).fetchall()
    finally:
        con.close()
    metrics: dict[str, dict[str, float]] = {}
    for key, metric, value in rows:
        metrics.setdefault(key, {})[metric] = value
    cols = [c for c in ES_SUMMARY_COLUMNS if any(c[0] in m for m in metrics.values())]
    width = max([len("window"), *(len(k) for k in window_keys)])
    header = "  " + "window".ljust(width) + "".join(f"  {label:>12}" for _, label, _ in cols)
    lines = ["event_stitching:", header]
    for key in window_keys:
        m = metrics.get(key, {})
        cells = "".join(f"  {(fmt.format(m[name]) if name in m else '-'):>12}" for name, _, fmt in cols)
        lines.append("  " + key.ljust(width) + cells)
    if reasons:
        lines.append("  excluded events by reason: " + ", ".join(f"{r}: {n}" for r, n in reasons))
    lines.append(f"  tables in {db_path} (schema main, identity_event_profile_*)")
    return "\n".join(lines)


def cmd_run(config_path: str | None, only: str | None) -> int:
    from identity_pipeline.defs import build_definitions

    config = load_config(config_path)
    if only is not None and getattr(config, only) is None:
        raise ConfigError(f"--only {only}: the config has no '{only}' section")
    _validate_sources(config)  # before anything is written
    defs = build_definitions(config)
    instance = _instance()
    ok = True
    if config.profile_resolution is not None and only in (None, "profile_resolution"):
        ok = _run_profile_resolution(defs, config, instance) and ok
    if ok and config.event_stitching is not None and only in (None, "event_stitching"):
        ok = _run_event_stitching(defs, config, instance) and ok
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="identity-pipeline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="materialize the pipeline in-process, then print a summary")
    p_run.add_argument(
        "--config", help="YAML config (default: $IDENTITY_PIPELINE_CONFIG or data/config.yaml)"
    )
    p_run.add_argument("--only", choices=CAPABILITIES, help="run one capability only")
    p_val = sub.add_parser("validate", help="validate the config against the real sources; writes nothing")
    p_val.add_argument(
        "--config", help="YAML config (default: $IDENTITY_PIPELINE_CONFIG or data/config.yaml)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            return cmd_validate(args.config)
        return cmd_run(args.config, args.only)
    except ConfigError as err:
        _err(str(err))
        return 2


if __name__ == "__main__":
    sys.exit(main())
