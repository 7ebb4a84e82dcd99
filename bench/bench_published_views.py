"""Read cost of the Event Stitching published views on a processed database.

    .venv/bin/python bench/bench_published_views.py DB CONFIG [--runs 3] [--memory-limit 2GB]

DB is a DuckDB file the stitching wrote (e.g. `bench_event_stitching.py --keep-db PATH`; the script works on a
copy, so DB is left as it is), CONFIG its config (`bench/.data/es_<events>_<days>_s<seed>/config.yaml`). The
views are re-created with the code of this checkout (`publish_views`), then each query below runs `--runs`
times; the median seconds are printed. What the views read (the live tables or the version history) is
printed first: see docs/event-stitching-storage.md, "What the published views read".
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from identity_pipeline.config import load_config
from identity_pipeline.core.event_stitching import store

QUERIES = {
    "count identifier values": f"select count(*) from {store.VALUES_VIEW}",
    "identifier values by status": f"select status, count(*) from {store.VALUES_VIEW} group by 1",
    "count profiles": f"select count(*) from {store.PROFILES_VIEW}",
    "count attribution rows": f"select count(*) from {store.ATTRIBUTION_VIEW}",
    "one profile's values": f"select * from {store.VALUES_VIEW} where dinmo_stitched_profile_id = $pid",
    "one profile": f"select * from {store.PROFILES_VIEW} where resolved_dinmo_stitched_profile_id = $pid",
    "one profile's events": (
        f"select count(*) from {store.ATTRIBUTION_VIEW} where resolved_dinmo_stitched_profile_id = $pid"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("db", type=Path)
    parser.add_argument("config", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-limit", default="2GB")
    args = parser.parse_args()
    config = load_config(args.config).event_stitching
    with tempfile.TemporaryDirectory(dir=args.db.parent) as tmp:
        db = Path(tmp) / "views.duckdb"
        shutil.copy(args.db, db)
        con = duckdb.connect(str(db))
        con.execute(f"set memory_limit = '{args.memory_limit}'")
        con.execute("begin")
        store.publish_views(con, config)
        con.execute("commit")
        (view_sql,) = con.execute(
            "select sql from duckdb_views() where schema_name = ? and view_name = 'current_profile_values'",
            [store.STATE],
        ).fetchone()
        source = "live tables" if "live_profile_values" in view_sql else "version history"
        row = con.execute(
            f"select dinmo_stitched_profile_id from {store.STATE}.current_profile_values "
            "where identifier_type = (select min(identifier_type) from "
            f"{store.STATE}.current_profile_values) order by all limit 1"
        ).fetchone()
        params = {"pid": row[0] if row else ""}
        print(f"views read the {source}; one profile = {params['pid']}")
        for name, sql in QUERIES.items():
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                con.execute(sql, params if "$pid" in sql else None).fetchall()
                times.append(time.perf_counter() - started)
            runs = ", ".join(f"{t:.2f}" for t in times)
            print(f"{name:30s} median {statistics.median(times):7.2f} s  (runs: {runs})")
        con.close()


if __name__ == "__main__":
    main()
