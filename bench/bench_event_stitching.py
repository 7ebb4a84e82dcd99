"""Event Stitching benchmark: the whole window pipeline on generated events, with accuracy vs ground truth.

    .venv/bin/python bench/bench_event_stitching.py [--events 10000000] [--days 30] [--runs 3] [--seed 7]

* Data: `identity_pipeline.generators.events` (web + app events, Parquet, truth `person_id`), cached in
  `bench/.data/` (git-ignored).
* Each run is a child process on a fresh DuckDB file. Windows run oldest first through the same store calls
  the Dagster assets make (`window_events` -> `identifier_observations` -> `event_stitching_graph`):
  `stage_window`, `stage_observations`, `staged_events` +
  `staged_observations` + `process_window` (load subgraph -> `stitch_window` -> `save_window`).
* Peak RSS: ru_maxrss of the child (DuckDB's native memory included), read right after the last window, before
  the accuracy step.
* Accuracy: pairwise precision / recall of the resolved profile ids (excluded events count as singletons)
  against the truth `person_id`, from group sizes (sum of n*(n-1)/2), never by enumerating pairs; next to a
  naive stitching of the same events: every identifier value links (no blocking, lifetime, quarantine or
  limits), connected components with scipy.
* Prints every run, then medians over runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data"

PAIRS_SQL = """
with j as (select {pred} as pred, person_id from {src}),
tp as (select sum(n * (n - 1) / 2) v from (select count(*) n from j group by person_id, pred)),
pp as (select sum(n * (n - 1) / 2) v from (select count(*) n from j group by pred)),
tr as (select sum(n * (n - 1) / 2) v from (select count(*) n from j group by person_id))
select (select count(*) from j), (select count(distinct person_id) from j),
       (select count(distinct pred) from j),
       (select v from tr), (select v from pp), (select v from tp)
"""


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), to see whether memory follows the window or the history."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024.0 / 1024.0


def _truth_sql(base: Path) -> str:
    w = str(base / "web_events.parquet").replace("'", "''")
    a = str(base / "app_events.parquet").replace("'", "''")
    return (
        f"(select 'web_events' as model, event_id, person_id from read_parquet('{w}') "
        f"union all select 'app_events', id, person_id from read_parquet('{a}'))"
    )


def _pairs(con, pred: str, src: str) -> dict[str, float]:
    n, persons, profiles, truth, predicted, tp = con.execute(PAIRS_SQL.format(pred=pred, src=src)).fetchall()[
        0
    ]
    truth, predicted, tp = int(truth or 0), int(predicted or 0), int(tp or 0)
    return {
        "events": int(n),
        "persons": int(persons),
        "profiles": int(profiles),
        "truth_pairs": truth,
        "predicted_pairs": predicted,
        "true_positive_pairs": tp,
        "precision": tp / predicted if predicted else 1.0,
        "recall": tp / truth if truth else 1.0,
    }


def naive_components(con, base: Path) -> dict[str, float]:
    """Every identifier value links (no policy at all): connected components of events <-> values."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    t0 = time.perf_counter()
    w = str(base / "web_events.parquet").replace("'", "''")
    a = str(base / "app_events.parquet").replace("'", "''")
    con.execute(
        f"""create or replace temp table __naive_ev as
        select row_number() over () - 1 as idx, * from (
            select 'web_events' as model, event_id, person_id,
                   ['user_id:' || user_id, 'email:' || lower(trim(email)), 'cookie_id:' || cookie_id,
                    'session_id:' || session_id] as ids from read_parquet('{w}')
            union all
            select 'app_events', id, person_id,
                   ['user_id:' || uid, 'email:' || lower(trim(mail)), 'anonymous_id:' || install_id,
                    'device_id:' || device] from read_parquet('{a}'))"""
    ).fetchall()
    edges = con.execute(
        "select idx, k from (select idx, unnest(ids) as k from __naive_ev) where k is not null"
    ).df()
    n_ev = int(con.execute("select count(*) from __naive_ev").fetchall()[0][0])
    codes, _ = pd.factorize(edges["k"])
    rows = edges["idx"].to_numpy(dtype=np.int64)
    cols = n_ev + codes.astype(np.int64)
    n = n_ev + int(codes.max() + 1 if len(codes) else 0)
    g = sp.coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n)).tocsr()
    _, labels = connected_components(g, directed=False)
    comp = pd.DataFrame({"idx": np.arange(n_ev, dtype=np.int64), "comp": labels[:n_ev]})
    con.register("__naive_comp", comp)
    out = _pairs(con, "c.comp", "__naive_ev e join __naive_comp c using (idx)")
    con.unregister("__naive_comp")
    con.execute("drop table __naive_ev").fetchall()
    out["seconds"] = time.perf_counter() - t0
    return out


def child(args: argparse.Namespace) -> None:
    """One timed run in this (fresh) process; prints one JSON line."""
    import duckdb

    from identity_pipeline.config import load_config
    from identity_pipeline.core.event_stitching import store

    config = load_config(args.config)
    es = config.event_stitching
    base = config.base_path()
    db = Path(args.db)
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    settings = config.duckdb_settings()  # as the Dagster DuckDB resource sets them
    if args.memory_limit:
        settings["memory_limit"] = args.memory_limit
    for name, value in settings.items():
        con.execute(f"set {name} = '{value}'")
    memory_limit = settings.get("memory_limit")
    windows = store.config_windows(es)
    if args.windows:
        windows = windows[: args.windows]
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    per_window = []
    fast = 0
    t_all = time.perf_counter()
    store.ensure_schema(con)
    store.validate_models(con, es, base)
    for w in windows:
        t0 = time.perf_counter()
        # asset window_events
        counts = store.stage_window(con, es, w, base)
        t1 = time.perf_counter()
        # asset identifier_observations
        store.require_staged(con, w.key, "window_events")
        store.stage_observations(con, es, w.key)
        t2 = time.perf_counter()
        # asset event_stitching_graph
        store.require_staged(con, w.key, "identifier_observations")
        events = store.staged_events(con, w.key)
        obs = store.staged_observations(con, w.key)
        metrics = store.process_window(con, es, w, events, obs)
        t3 = time.perf_counter()
        fast += int(metrics.get("events_fast_path", 0) or 0)
        per_window.append(
            {
                "window": w.key,
                "events": counts["events"],
                "seconds": t3 - t0,
                "stage_s": t1 - t0,
                "observations_s": t2 - t1,
                "stitch_save_s": t3 - t2,
                "engine_s": float(metrics.get("duration_seconds", 0.0)),
                "rss_mb": _rss_mb(),
                **store.LAST_TIMINGS,
                "fast_path_events": int(metrics.get("events_fast_path", 0) or 0),
            }
        )
        print(
            f"  {w.key}: {counts['events']:>9,} events {t3 - t0:6.2f}s "
            f"(stage {t1 - t0:.2f} obs {t2 - t1:.2f} stitch+save {t3 - t2:.2f}) "
            f"RSS {per_window[-1]['rss_mb']:,.0f} MB | load {store.LAST_TIMINGS['load_s']:.2f} "
            f"engine {store.LAST_TIMINGS['stitch_s']:.2f} carry {store.LAST_TIMINGS['carry_s']:.2f} "
            f"save {store.LAST_TIMINGS['save_s']:.2f}, loaded {store.LAST_TIMINGS['loaded_profiles']:,.0f} "
            f"profiles / {store.LAST_TIMINGS['loaded_memberships']:,.0f} memberships, "
            f"reference {counts['events'] - per_window[-1]['fast_path_events']:,} events",
            file=sys.stderr,
            flush=True,
        )
    # the WAL the last windows left is written to the database file here (closing would do it): in the timing
    t_ck = time.perf_counter()
    con.execute("checkpoint").fetchall()
    final_checkpoint_s = time.perf_counter() - t_ck
    wall = time.perf_counter() - t_all
    rss = _maxrss_mb()
    if profiler is not None:
        import pstats

        profiler.disable()
        profiler.dump_stats(str(DATA / "bench_event_stitching.prof"))
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
    n_events = sum(p["events"] for p in per_window)
    stitched = _pairs(
        con,
        "coalesce(a.resolved_dinmo_stitched_profile_id, 'excluded:' || t.model || ':' || t.event_id)",
        f"{_truth_sql(base)} t join main.identity_event_profile_attribution a using (model, event_id)",
    )
    naive = naive_components(con, base) if not args.windows else {}
    last = con.execute(
        "select metric, value from main.identity_event_profile_run_metrics "
        "where breakdown = 'window' and window_key = ?",
        [windows[-1].key],
    ).fetchall()
    con.close()
    print(
        json.dumps(
            {
                "wall_s": wall,
                "duckdb_memory_limit": memory_limit,
                "duckdb_checkpoint_threshold": settings.get("checkpoint_threshold"),
                "final_checkpoint_s": final_checkpoint_s,
                "events": n_events,
                "events_per_s": n_events / wall if wall else 0.0,
                "peak_rss_mb": rss,
                "events_fast_path": fast,
                "windows": per_window,
                "window_ratio_last_first": per_window[-1]["seconds"] / per_window[0]["seconds"],
                # the same with the median of 5 windows at each end: a single window's time swings with
                # whether its commit triggers a DuckDB checkpoint (every second window here)
                "window_ratio_last5_first5": statistics.median(w["seconds"] for w in per_window[-5:])
                / statistics.median(w["seconds"] for w in per_window[:5]),
                "stitched": stitched,
                "naive": naive,
                "last_window_metrics": {k: v for k, v in last},
            }
        )
    )


def ensure_data(events: int, days: int, seed: int) -> Path:
    import yaml

    from identity_pipeline.generators.events import config_dict, write

    out = DATA / f"es_{events}_{days}_s{seed}"
    if (out / "config.yaml").is_file() and (out / "app_events.parquet").is_file():
        # the events are cached; the config is rewritten so it follows the generator's current settings
        (out / "config.yaml").write_text(yaml.safe_dump(config_dict(days), sort_keys=False))
        print(f"data: cached {out}")
        return out
    t0 = time.perf_counter()
    write(out, events, days, seed)
    print(f"data: generated {events:,} events over {days} days in {time.perf_counter() - t0:.1f}s -> {out}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=None, help="default 3 (1 for >= 10M events)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="DuckDB memory_limit, e.g. 2GB (default: the config's duckdb_memory_limit)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the child, print the top")
    parser.add_argument("--windows", type=int, default=0, help="only the first N windows (no naive)")
    parser.add_argument(
        "--keep-db", default=None, help="move the last run's DuckDB file here (to inspect or re-run a window)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    runs = args.runs if args.runs is not None else (1 if args.events >= 10_000_000 else 3)

    out = ensure_data(args.events, args.days, args.seed)
    db = DATA / "bench_event_stitching.duckdb"
    results = []
    for i in range(1, runs + 1):
        cmd = [sys.executable, __file__, "--child", "--config", str(out / "config.yaml"), "--db", str(db)]
        if args.memory_limit:
            cmd += ["--memory-limit", args.memory_limit]
        if args.profile:
            cmd += ["--profile"]
        if args.windows:
            cmd += ["--windows", str(args.windows)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ.copy())
        if proc.returncode != 0:
            return 1
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        s, nv = res["stitched"], res["naive"]
        times = [w["seconds"] for w in res["windows"]]
        print(
            f"run {i}: {res['wall_s']:.1f}s, {res['events_per_s']:,.0f} events/s, "
            f"peak RSS {res['peak_rss_mb']:,.0f} MB "
            f"(DuckDB memory_limit {res['duckdb_memory_limit'] or 'default'}, checkpoint_threshold "
            f"{res['duckdb_checkpoint_threshold'] or 'default'}; final checkpoint "
            f"{res['final_checkpoint_s']:.1f}s), "
            f"window last/first {res['window_ratio_last_first']:.2f} "
            f"(median of last 5 / first 5: {res['window_ratio_last5_first5']:.2f}) "
            f"(min {min(times):.2f}s, max {max(times):.2f}s), fast path {res['events_fast_path']:,} events\n"
            f"        stitched P {s['precision']:.4f} R {s['recall']:.4f} ({s['profiles']:,} profiles)"
            + (
                f" | naive P {nv['precision']:.4f} R {nv['recall']:.4f} ({nv['profiles']:,} components, "
                f"{nv['seconds']:.1f}s)"
                if nv
                else ""
            ),
            flush=True,
        )
    if args.keep_db:
        db.replace(args.keep_db)
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)

    def med(f) -> float:
        return statistics.median(f(r) for r in results)

    last = results[-1]
    print(
        f"\nmedian over {len(results)} run(s) of {last['events']:,} events, {len(last['windows'])} windows:\n"
        f"  wall time        {med(lambda r: r['wall_s']):.1f} s\n"
        f"  throughput       {med(lambda r: r['events_per_s']):,.0f} events/s\n"
        f"  peak RSS         {med(lambda r: r['peak_rss_mb']):,.0f} MB\n"
        f"  window last/1st  {med(lambda r: r['window_ratio_last_first']):.2f} "
        f"(median of last 5 / first 5: {med(lambda r: r['window_ratio_last5_first5']):.2f})\n"
        f"  fast path share  {med(lambda r: r['events_fast_path'] / r['events']):.4f}\n"
        f"  stitched         P {med(lambda r: r['stitched']['precision']):.4f} "
        f"R {med(lambda r: r['stitched']['recall']):.4f} "
        f"({last['stitched']['profiles']:,} profiles, {last['stitched']['persons']:,} persons)"
    )
    if last["naive"]:
        print(
            f"  naive CC         P {med(lambda r: r['naive']['precision']):.4f} "
            f"R {med(lambda r: r['naive']['recall']):.4f} ({last['naive']['profiles']:,} components)"
        )
    (DATA / f"results_es_{args.events}_{args.days}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
