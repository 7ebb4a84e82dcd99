"""Profile Resolution benchmark: the full engine (`run_all`) on generated data, with accuracy vs ground truth.

    .venv/bin/python bench/bench_profile_resolution.py [--records 1000000] [--runs 3] [--seed 7]

* Data: `identity_pipeline.generators.profiles` (3 sources, Parquet), cached in `bench/.data/` (git-ignored).
* Each run is a child process on a fresh DuckDB file, so its peak RSS (ru_maxrss of the child, which holds
  DuckDB's native memory too, plus any grandchildren) is measured alone.
* Accuracy: pairwise precision / recall / F1 of identity_lookup against the generator's truth, computed in SQL
  from group sizes (sum of n*(n-1)/2), never by enumerating pairs. Evaluated records: every truth record with
  a non-blank key that is unique in its source (rejected keys cannot be resolved by design); records the
  engine leaves unresolved count as singletons (they lower recall).
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

EVAL_SQL = """
with t as (
    select source, record_id, person_id from read_csv('{truth}', header = true, all_varchar = true)
    where nullif(trim(record_id), '') is not null
    qualify count(*) over (partition by source, record_id) = 1
),
j as (
    select t.source, t.record_id, t.person_id,
           coalesce(l.dinmo_id, 'unresolved:' || t.source || ':' || t.record_id) as dinmo_id
    from t left join main.identity_lookup l using (source, record_id)
),
truth_pairs as (select sum(n * (n - 1) / 2) as v from (select count(*) as n from j group by person_id)),
pred_pairs as (select sum(n * (n - 1) / 2) as v from (select count(*) as n from j group by dinmo_id)),
tp as (select sum(n * (n - 1) / 2) as v from (select count(*) as n from j group by person_id, dinmo_id))
select (select count(*) from j), (select count(distinct person_id) from j),
       (select v from truth_pairs), (select v from pred_pairs), (select v from tp)
"""


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: KiB


def child(args: argparse.Namespace) -> None:
    """One timed run in this (fresh) process; prints one JSON line."""
    import duckdb

    from identity_pipeline.config import load_config
    from identity_pipeline.core.profile_resolution.pipeline import run_all

    config = load_config(args.config)
    db = Path(args.db)
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    if args.memory_limit:
        con.execute(f"set memory_limit = '{args.memory_limit}'")
    t0 = time.perf_counter()
    metrics = run_all(con, config)
    wall = time.perf_counter() - t0
    rss = max(_maxrss_mb(resource.RUSAGE_SELF), _maxrss_mb(resource.RUSAGE_CHILDREN))
    truth = Path(args.config).parent / "truth.csv"
    n_eval, persons, truth_pairs, pred_pairs, tp = con.execute(
        EVAL_SQL.format(truth=str(truth).replace("'", "''"))
    ).fetchone()
    lookup, profiles = con.execute(
        "select count(*), count(distinct dinmo_id) from main.identity_lookup"
    ).fetchone()
    unresolved = con.execute("select count(*) from main.identity_unresolved_records").fetchone()[0]
    con.close()
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / truth_pairs if truth_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_mb": rss,
                "stage_s": {k: v.get("seconds") for k, v in metrics.items() if "seconds" in v},
                "lookup_records": int(lookup),
                "profiles": int(profiles),
                "unresolved": int(unresolved),
                "evaluated_records": int(n_eval),
                "true_persons": int(persons),
                "truth_pairs": int(truth_pairs or 0),
                "predicted_pairs": int(pred_pairs or 0),
                "true_positive_pairs": int(tp or 0),
                "precision": precision,
                "recall": recall,
                "f1": f1,
            }
        )
    )


def ensure_data(records: int, seed: int) -> Path:
    from identity_pipeline.generators.profiles import write

    out = DATA / f"profiles_{records}_s{seed}"
    if (out / "config.yaml").is_file() and (out / "truth.csv").is_file():
        print(f"data: cached {out}")
        return out
    t0 = time.perf_counter()
    write(records, out, seed=seed, fmt="parquet")
    print(f"data: generated {records:,} records in {time.perf_counter() - t0:.1f}s -> {out}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--memory-limit", default=None, help="DuckDB memory_limit, e.g. 3GB (default: DuckDB's)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    warn_if_uncompiled()
    out = ensure_data(args.records, args.seed)
    db = DATA / "bench_profile_resolution.duckdb"
    results = []
    for i in range(1, args.runs + 1):
        cmd = [sys.executable, __file__, "--child", "--config", str(out / "config.yaml"), "--db", str(db)]
        if args.memory_limit:
            cmd += ["--memory-limit", args.memory_limit]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ.copy())
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in res["stage_s"].items() if v is not None)
        print(
            f"run {i}: {res['wall_s']:.1f}s, {args.records / res['wall_s']:,.0f} records/s, "
            f"peak RSS {res['peak_rss_mb']:,.0f} MB, P {res['precision']:.4f} R {res['recall']:.4f} "
            f"F1 {res['f1']:.4f}\n        stages: {stages}"
        )
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    last = results[-1]
    peak_max = max(r["peak_rss_mb"] for r in results)
    print(
        f"\nmedian over {len(results)} run(s) of {args.records:,} records:\n"
        f"  wall time      {med('wall_s'):.1f} s\n"
        f"  throughput     {args.records / med('wall_s'):,.0f} records/s\n"
        f"  peak RSS       {med('peak_rss_mb'):,.0f} MB (max {peak_max:,.0f} MB)\n"
        f"  precision      {med('precision'):.4f}\n"
        f"  recall         {med('recall'):.4f}\n"
        f"  F1             {med('f1'):.4f}\n"
        f"  profiles       {last['profiles']:,} (true persons {last['true_persons']:,}), "
        f"unresolved {last['unresolved']:,}\n"
        f"  pairs          truth {last['truth_pairs']:,}, predicted {last['predicted_pairs']:,}, "
        f"true positive {last['true_positive_pairs']:,}"
    )
    (DATA / f"results_{args.records}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
