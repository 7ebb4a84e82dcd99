"""Time windows (keys, bounds) from the config, and the bookkeeping of processed windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from identity_pipeline.config.errors import ConfigError
from identity_pipeline.core.event_stitching.store.tables import STATE, WindowOrderError, ensure_schema
from identity_pipeline.core.storage import first_row, read_frame


@dataclass(frozen=True)
class Window:
    key: str
    start: datetime
    end: datetime


def _to_datetime(value: Any) -> datetime:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def window_length(config: Any) -> timedelta:
    return timedelta(hours=1) if str(config.window) == "hourly" else timedelta(days=1)


def window_key_for(config: Any, start: datetime) -> str:
    """Dagster's partition key format: `YYYY-MM-DD` (daily) or `YYYY-MM-DD-HH:MM` (hourly)."""
    return start.strftime("%Y-%m-%d-%H:%M" if str(config.window) == "hourly" else "%Y-%m-%d")


def window_for_key(config: Any, key: str) -> Window:
    fmt = "%Y-%m-%d-%H:%M" if str(config.window) == "hourly" else "%Y-%m-%d"
    try:
        start = datetime.strptime(key, fmt)
    except ValueError:
        raise ConfigError(f"event_stitching: window key {key!r} does not match format {fmt!r}") from None
    return Window(key, start, start + window_length(config))


def config_start(config: Any) -> datetime:
    return _to_datetime(config.start)


def config_end(config: Any) -> datetime | None:
    return None if getattr(config, "end", None) in (None, "") else _to_datetime(config.end)


def config_windows(config: Any, until: datetime | None = None) -> list[Window]:
    """Every complete window of the config, oldest first (until `end`, else until `until`/now)."""
    step = window_length(config)
    start = config_start(config)
    end = config_end(config) or until or datetime.utcnow()
    out: list[Window] = []
    cur = start
    while cur + step <= end:
        out.append(Window(window_key_for(config, cur), cur, cur + step))
        cur += step
    return out


def processed_windows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    ensure_schema(con)
    return read_frame(con, f"select * from {STATE}.windows order by window_start")


def check_predecessor(con: duckdb.DuckDBPyConnection, config: Any, window: Window) -> None:
    """Window N may run only when N is the config's first window or N-1 is recorded as processed."""
    first = config_start(config)
    if window.start < first:
        raise WindowOrderError(f"window {window.key} starts before event_stitching.start ({first:%Y-%m-%d})")
    if window.start == first:
        return
    prev = window_key_for(config, window.start - window_length(config))
    row = first_row(con.execute(f"select status from {STATE}.windows where window_key = ?", [prev]))
    if row is None:
        raise WindowOrderError(
            f"cannot process event stitching window {window.key}: the previous window {prev} has not been "
            f"processed. Windows are processed in order; materialize {prev} first (or a range ending at "
            f"{window.key})."
        )
    if row[0] != "processed":
        raise WindowOrderError(
            f"cannot process event stitching window {window.key}: the previous window {prev} is {row[0]} "
            "(an earlier window was re-processed with a different result). Re-run the windows after the "
            f"re-processed one in order, up to {prev}, before {window.key}."
        )


def _next_sequence_before(con: duckdb.DuckDBPyConnection, window: Window, default: int) -> int:
    row = first_row(
        con.execute(
            f"select next_sequence from {STATE}.windows where window_start < ? "
            "order by window_start desc limit 1",
            [window.start],
        )
    )
    return int(row[0]) if row and row[0] is not None else default
