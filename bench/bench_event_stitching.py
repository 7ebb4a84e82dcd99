"""Event Stitching benchmark: the whole window pipeline on generated events, with accuracy vs ground truth.

    .venv/bin/python bench/bench_event_stitching.py [--events 10000000] [--days 30] [--runs 3] [--seed 7]

* Data: `identity_pipeline.generators.events` (web + app events, Parquet, truth `person_id`), cached in
  `bench/.data/` (git-ignored).
* Each run is a child process on a fresh DuckDB file, through the same store calls the Dagster assets make:
  `validate_models`, `stage_windows` (assets `window_events` + `identifier_observations`), then
  `StitchRun` (asset `event_stitching_graph`): `--mode backfill` (default) stitches every window in one run,
  as `identity-pipeline run` and a Dagster range backfill do, committing every `--commit-every` windows (the
  config's `commit_every_windows`, default 10); `--mode daily` stages and stitches each window in its own run,
  as the daily schedule does. The final `CHECKPOINT` is timed too.
* A window's time is its staging (since the previous window was staged: the next window is read while one is
  written) plus its stitching (read, engine, apply, handing its rows to the writer thread; a window holding a
  commit point includes copying the changed state rows for the writer, which writes them and commits during
  the next window; in daily mode every window ends its run: its flush and commit). The end of a backfill run
  (last state rows, views, commit) is part of the wall time.
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

from bytecode_check import warn_if_uncompiled

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


def _cpu() -> tuple[float, float, float]:
    """(user, system) CPU seconds of this process so far, all its threads (DuckDB's included), and the wall
    clock."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime, time.perf_counter()


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
    for item in args.duckdb_set or []:
        name, _, value = item.partition("=")
        settings[name.strip()] = value.strip()
    for name, value in settings.items():
        con.execute(f"set {name} = '{value}'")
    windows = store.config_windows(es)
    if args.windows:
        windows = windows[: args.windows]
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    per_window: list[dict] = []
    fast = 0
    flush_s = 0.0
    t_all = time.perf_counter()
    cpu = [_cpu()]
    store.ensure_schema(con)
    store.validate_models(con, es, base)

    def stage(ws: list) -> list[dict]:
        """Assets window_events + identifier_observations over `ws` (one window's time: since the previous
        window was staged; the next window is read while one is written)."""
        recs, t0 = [], time.perf_counter()
        for w, counts in store.stage_windows(con, es, ws, base):
            t1 = time.perf_counter()
            recs.append({"window": w.key, "events": counts["events"], "stage_s": t1 - t0})
            t0 = t1
        return recs

    def stitched(rec: dict, metrics: dict, timing: dict) -> None:
        nonlocal fast
        fast += int(metrics.get("events_fast_path", 0) or 0)
        rec.update({f"stitch_{k}": v for k, v in timing.items()})
        rec["stitch_s"] = sum(timing[k] for k in ("read_s", "engine_s", "apply_s", "write_s"))
        rec["rss_mb"] = _rss_mb()
        rec["fast_path_events"] = int(metrics.get("events_fast_path", 0) or 0)
        per_window.append(rec)
        print(
            f"  {rec['window']}: {rec['events']:>9,} events stage {rec['stage_s']:.2f}s stitch "
            f"{rec['stitch_s']:.2f}s (read {timing['read_s']:.2f} engine {timing['engine_s']:.2f} apply "
            f"{timing['apply_s']:.2f} write {timing['write_s']:.2f}{rec.get('flush', '')}) RSS "
            f"{rec['rss_mb']:,.0f} MB | subgraph {timing['subgraph_values']:,.0f} values "
            f"{timing['subgraph_profiles']:,.0f} profiles {timing['subgraph_memberships']:,.0f} memberships, "
            f"reference {rec['events'] - rec['fast_path_events']:,} events",
            file=sys.stderr,
            flush=True,
        )

    if args.mode == "backfill":  # what `identity-pipeline run` and a Dagster range backfill do: one run
        recs = stage(windows)
        cpu.append(_cpu())
        t_run = time.perf_counter()
        run = store.StitchRun(con, es, windows, commit_every=args.commit_every)
        for w, rec in zip(windows, recs, strict=True):
            metrics = run.process(w)
            stitched(rec, metrics, run.timings[-1])
        run.finish()
        flush_s = run.flush_seconds
        run_s = time.perf_counter() - t_run
    else:  # the daily schedule: each window staged and stitched in its own run
        cpu.append(_cpu())  # staging and stitching interleave: their CPU is reported together
        run_s = 0.0
        for w in windows:
            rec = stage([w])[0]
            t_run = time.perf_counter()
            run = store.StitchRun(con, es, [w])
            metrics = run.process(w)
            run.finish()
            rec["flush_s"] = run.flush_seconds
            flush_s += run.flush_seconds
            rec["flush"] = f" flush {run.flush_seconds:.2f}"
            stitched(rec, metrics, run.timings[-1])
            rec["stitch_s"] += run.flush_seconds
            run_s += time.perf_counter() - t_run
    # the WAL the last windows left is written to the database file here (closing would do it): in the timing
    cpu.append(_cpu())
    t_ck = time.perf_counter()
    con.execute("checkpoint").fetchall()
    final_checkpoint_s = time.perf_counter() - t_ck
    wall = time.perf_counter() - t_all
    cpu.append(_cpu())
    rss = _maxrss_mb()
    if profiler is not None:
        import pstats

        profiler.disable()
        profiler.dump_stats(str(DATA / "bench_event_stitching.prof"))
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
    n_events = sum(p["events"] for p in per_window)
    # accuracy is not part of the timed pipeline: give DuckDB room for the 10M-row joins
    con.execute("set memory_limit = '6GB'")
    t_acc = time.perf_counter()
    resolved = (
        "(select a.model, a.event_id, coalesce(p.merged_to, a.pid) as rpid from es_output.attribution a "
        "left join es_state.profiles p on p.pid = a.pid)"
    )
    stitched_acc = _pairs(
        con,
        "coalesce(a.rpid::VARCHAR, 'excluded:' || t.model || ':' || t.event_id)",
        f"{_truth_sql(base)} t join {resolved} a using (model, event_id)",
    )
    stitched_acc["seconds"] = time.perf_counter() - t_acc
    naive = naive_components(con, base) if not args.windows else {}
    last = con.execute(
        "select metric, value from main.identity_event_profile_run_metrics "
        "where breakdown = 'window' and window_key = ?",
        [windows[-1].key],
    ).fetchall()
    con.close()
    seconds = [w["stage_s"] + w["stitch_s"] for w in per_window]
    for w, sec in zip(per_window, seconds, strict=True):
        w["seconds"] = sec
    print(
        json.dumps(
            {
                "mode": args.mode,
                "wall_s": wall,
                "duckdb_memory_limit": settings.get("memory_limit"),
                "duckdb_checkpoint_threshold": settings.get("checkpoint_threshold"),
                "duckdb_settings": settings,
                "stage_s": sum(w["stage_s"] for w in per_window),
                "stitch_s": run_s,
                "flush_s": flush_s,
                "final_checkpoint_s": final_checkpoint_s,
                # per phase: CPU seconds (user, system) of the process, all threads, and wall seconds
                "cpu_s": {
                    name: [b[0] - a[0], b[1] - a[1], b[2] - a[2]]
                    for name, a, b in zip(
                        ("stage", "stitch", "checkpoint")
                        if args.mode == "backfill"
                        else ("setup", "stage+stitch", "checkpoint"),
                        cpu[:-1],
                        cpu[1:],
                        strict=True,
                    )
                },
                "events": n_events,
                "events_per_s": n_events / wall if wall else 0.0,
                "peak_rss_mb": rss,
                "events_fast_path": fast,
                "windows": per_window,
                "window_ratio_last_first": seconds[-1] / seconds[0],
                "window_ratio_last5_first5": statistics.median(seconds[-5:]) / statistics.median(seconds[:5]),
                "stitched": stitched_acc,
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
    parser.add_argument(
        "--mode",
        choices=["backfill", "daily"],
        default="backfill",
        help="backfill: all windows in one run (identity-pipeline run, a Dagster range); "
        "daily: one run per window (the schedule)",
    )
    parser.add_argument(
        "--commit-every", type=int, default=10, help="backfill: commit every N windows (StitchRun)"
    )
    parser.add_argument(
        "--duckdb-set",
        action="append",
        metavar="NAME=VALUE",
        help="an extra DuckDB setting for the runs (repeatable), e.g. threads=2",
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

    warn_if_uncompiled()
    out = ensure_data(args.events, args.days, args.seed)
    db = DATA / "bench_event_stitching.duckdb"
    results = []
    for i in range(1, runs + 1):
        cmd = [sys.executable, __file__, "--child", "--config", str(out / "config.yaml"), "--db", str(db)]
        cmd += ["--mode", args.mode, "--commit-every", str(args.commit_every)]
        if args.memory_limit:
            cmd += ["--memory-limit", args.memory_limit]
        for item in args.duckdb_set or []:
            cmd += ["--duckdb-set", item]
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
            f"run {i} ({res['mode']}): {res['wall_s']:.1f}s (stage {res['stage_s']:.1f}s, stitch "
            f"{res['stitch_s']:.1f}s incl. flush {res['flush_s']:.1f}s), "
            f"{res['events_per_s']:,.0f} events/s, "
            f"peak RSS {res['peak_rss_mb']:,.0f} MB "
            f"(DuckDB memory_limit {res['duckdb_memory_limit'] or 'default'}, checkpoint_threshold "
            f"{res['duckdb_checkpoint_threshold'] or 'default'}; final checkpoint "
            f"{res['final_checkpoint_s']:.1f}s"
            + "".join(
                f", {k} {v}"
                for k, v in res["duckdb_settings"].items()
                if k not in ("memory_limit", "checkpoint_threshold")
            )
            + "), "
            f"window last/first {res['window_ratio_last_first']:.2f} "
            f"(median of last 5 / first 5: {res['window_ratio_last5_first5']:.2f}) "
            f"(min {min(times):.2f}s, max {max(times):.2f}s), fast path {res['events_fast_path']:,} events\n"
            f"        CPU user+sys: "
            + ", ".join(
                f"{k} {u:.1f}+{y:.1f}s ({(u + y) / max(w, 1e-9):.2f} cores)"
                for k, (u, y, w) in res["cpu_s"].items()
            )
            + "\n"
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
