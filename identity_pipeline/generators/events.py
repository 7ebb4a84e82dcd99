"""Deterministic synthetic event streams for Event Stitching, with a ground-truth `person_id` column.

    python -m identity_pipeline.generators.events --events 10000000 --days 30 --out /tmp/es --seed 7

writes `web_events.parquet`, `app_events.parquet` and `config.yaml` (an `event_stitching:` section reading
them) into `--out`. Everything is vectorised numpy + pyarrow; the same arguments give the same bytes.

The mix: people with 1-3 devices (browsers or phones), cookies that reset every 1-4 weeks, short sessions,
anonymous browsing with occasional logins (user id, sometimes an email), households sharing one browser,
and a small share of placeholder emails (`test@test.com`) that the config blocks.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

MAX_DEVICES = 3
WEB_SHARE = 0.7
LOGIN_RATE = 0.3
EMAIL_ON_LOGIN = 0.5
PLACEHOLDER_EMAIL_RATE = 0.01
HOUSEHOLD_SHARE = 0.04
REGISTERED_SHARE = 0.6
ROW_GROUP = 131_072


def _strs(prefix: str, ints: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """`prefix + str(int)` for every element, null where `mask` is True (vectorised in Arrow)."""
    arr = pa.array(ints, mask=mask)
    return pc.binary_join_element_wise(pa.scalar(prefix), pc.cast(arr, pa.string()), "")


def generate(n_events: int, days: int, seed: int = 0, start: date = date(2026, 11, 1)) -> dict[str, pa.Table]:
    """{model name: Arrow table} for `n_events` events over `days` daily windows."""
    rng = np.random.default_rng(seed)
    n_people = max(2, n_events // 25)

    # People: activity (heavy tailed), registration, devices, cookie reset period, household pairs.
    registered = rng.random(n_people) < REGISTERED_SHARE
    n_devices = rng.integers(1, MAX_DEVICES + 1, n_people)
    reset_days = rng.choice(np.array([7, 14, 21, 28]), n_people)
    reset_offset = rng.integers(0, 28, n_people)
    household = (rng.random(n_people) < HOUSEHOLD_SHARE) & (np.arange(n_people) % 2 == 0)
    household[-1] = False  # the pair of p is p + 1

    # Events: who, when, on which device.
    # Heavy-tailed activity: rank r gets ~ 1/sqrt(r) of the events; ranks shuffled over people.
    rank = (n_people * rng.random(n_events) ** 2).astype(np.int64)
    person = rng.permutation(n_people)[rank]
    # Times are drawn independently of people, so sorting them alone keeps the stream in time order.
    t = np.sort(rng.integers(0, days * 86_400, n_events))
    day, second = t // 86_400, t % 86_400
    dev_idx = (rng.random(n_events) * n_devices[person]).astype(np.int64)

    # Device 0 of a household pair is the same browser for both people.
    owner = person.copy()
    pair_second = (person % 2 == 1) & household[np.maximum(person - 1, 0)] & (dev_idx == 0)
    owner[pair_second] = person[pair_second] - 1
    device_gid = owner.astype(np.int64) * MAX_DEVICES + np.where(pair_second, 0, dev_idx)

    epoch = (day + reset_offset[owner]) // reset_days[owner]
    cookie_num = device_gid * 100 + epoch
    session_num = (device_gid * 10_000 + day) * 48 + second // 1800

    logged_in = registered[person] & (rng.random(n_events) < LOGIN_RATE)
    with_email = logged_in & (rng.random(n_events) < EMAIL_ON_LOGIN)
    placeholder = ~logged_in & (rng.random(n_events) < PLACEHOLDER_EMAIL_RATE)
    is_web = rng.random(n_events) < WEB_SHARE

    start_us = int(np.datetime64(start.isoformat(), "us").astype(np.int64))
    ts_us = start_us + t * 1_000_000
    ts = pa.array(ts_us, type=pa.timestamp("us"))

    email_ok = _strs("person", person, ~with_email)
    email_ok = pc.binary_join_element_wise(email_ok, pa.scalar("@example.com"), "")
    email = pc.if_else(pa.array(placeholder), pa.scalar("test@test.com"), email_ok)

    tables: dict[str, pa.Table] = {}
    idx = np.arange(n_events, dtype=np.int64)
    for model, sel in (("web_events", is_web), ("app_events", ~is_web)):
        w = np.flatnonzero(sel)
        if model == "web_events":
            cols = {
                "event_id": _strs("w", idx[w]),
                "event_ts": ts.take(pa.array(w)),
                "cookie_id": _strs("ck_", cookie_num[w]),
                "session_id": _strs("s_", session_num[w]),
                "user_id": _strs("u_", person[w], ~logged_in[w]),
                "email": email.take(pa.array(w)),
                "person_id": _strs("p", person[w]),
            }
        else:
            cols = {
                "id": _strs("a", idx[w]),
                "ts": ts.take(pa.array(w)),
                "device": _strs("dev_", device_gid[w]),
                "install_id": _strs("inst_", device_gid[w] * 10 + epoch[w] // 4),
                "uid": _strs("u_", person[w], ~logged_in[w]),
                "mail": email.take(pa.array(w)),
                "person_id": _strs("p", person[w]),
            }
        tables[model] = pa.table(cols)
    return tables


def config_dict(days: int, start: date = date(2026, 11, 1), duckdb_path: str = "identity.duckdb") -> dict:
    end = start + timedelta(days=days)
    return {
        "duckdb_path": duckdb_path,
        # DuckDB spills above this: at 10M events the pipeline then peaks at ~3.1 GB RSS, at 2GB ~4.3 GB
        # (docs/benchmarks.md); the Dagster resource and the benchmark apply it
        "duckdb_memory_limit": "1GB",
        # a window writes ~14 MB of WAL at 333k events: one checkpoint per ~4 windows instead of every second
        # one (about half the checkpoint time on 12 windows, docs/benchmarks.md)
        "duckdb_checkpoint_threshold": "64MB",
        "event_stitching": {
            "window": "daily",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "models": [
                {
                    "name": "web_events",
                    "path": "web_events.parquet",
                    "event_id": "event_id",
                    "timestamp": "event_ts",
                    "identifiers": {
                        "user_id": "user_id",
                        "email": "email",
                        "cookie_id": "cookie_id",
                        "session_id": "session_id",
                    },
                },
                {
                    "name": "app_events",
                    "path": "app_events.parquet",
                    "event_id": "id",
                    "timestamp": "ts",
                    "identifiers": {
                        "uid": "user_id",
                        "mail": "email",
                        "install_id": "anonymous_id",
                        "device": "device_id",
                    },
                },
            ],
            "identifiers": {
                "user_id": {"priority": 1, "anchor": True, "standardize": "trim"},
                "email": {
                    "priority": 2,
                    "anchor": True,
                    "standardize": "email",
                    "blocked_values": ["test@test.com"],
                },
                "anonymous_id": {"priority": 3, "standardize": "trim", "lifetime": "90d"},
                "session_id": {"priority": 4, "standardize": "trim", "lifetime": "30m"},
                "cookie_id": {"priority": 5, "standardize": "trim", "max_profiles_per_value": 1},
                "device_id": {"priority": 6, "standardize": "trim", "max_unique_values_per_profile": 3},
            },
        },
    }


def write(out: Path, n_events: int, days: int, seed: int = 0, start: date = date(2026, 11, 1)) -> Path:
    """Write the Parquet files and `config.yaml` into `out`; returns the config path."""
    out.mkdir(parents=True, exist_ok=True)
    for model, table in generate(n_events, days, seed, start).items():
        pq.write_table(table, out / f"{model}.parquet", row_group_size=ROW_GROUP, compression="snappy")
    cfg = out / "config.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(days, start), sort_keys=False))
    return cfg


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 1))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cfg = write(args.out, args.events, args.days, args.seed, args.start)
    print(f"wrote {args.events} events over {args.days} days to {args.out} ({time.perf_counter() - t0:.1f}s)")
    print(f"config: {cfg}")


if __name__ == "__main__":
    main()
