"""Staging a window: its events in processing order and its observations (rules 1-2), integer-coded.

`stage_window` reads the window's rows of every configured model once (DuckDB -> Arrow), orders the events by
(event_ts, model, event_id) (`seq`), standardizes each identifier column with its type's standardizer (the
shared `core/standardize.py`, on Arrow-backed strings), flags blocked values, and turns every distinct
(identifier_type, value) into its id in the value dictionary (`dictionary.value_keys`, `ids_of_keys`). It
writes `es_stage.events` (seq, model, event_id, event_ts) and `es_stage.observations` (seq, vid, blocked,
tie), both replaced per window in one transaction. `stage_frames` does the same from frames of already
standardized observations (what the engine tests build).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from identity_pipeline.config.errors import ConfigError
from identity_pipeline.core.event_stitching.rules.blocked import blocked_mask
from identity_pipeline.core.event_stitching.store.dictionary import ids_of_keys, type_codes, value_keys
from identity_pipeline.core.event_stitching.store.tables import STAGE, WindowOrderError, on_arrow, sql_text
from identity_pipeline.core.event_stitching.store.windows import Window
from identity_pipeline.core.source_io import describe_source, quote_ident, source_select_sql
from identity_pipeline.core.standardize import standardize
from identity_pipeline.core.storage import first_row, transaction

if TYPE_CHECKING:  # the index imports numba: only long staging runs load it
    from identity_pipeline.core.event_stitching.store.dictionary_index import DictionaryIndex

# staging this many windows in one call looks values up in memory (`stage_windows`): loading a dictionary
# of 10.75M keys costs about ten of the joins it saves (1.6 s against 0.15-0.18 s a window)
INDEX_MIN_WINDOWS = 10

_OFFSET_RE = r"\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|z|UTC|[+-]\d\d(:?\d\d)?)$"


def _ts_expr(col: str, col_type: str) -> str:
    """Event timestamp as naive UTC TIMESTAMP, whatever the source type."""
    q = quote_ident(col)
    t = col_type.upper()
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return f"timezone('UTC', {q})"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return f"cast({q} as TIMESTAMP)"
    v = f"cast({q} as VARCHAR)"
    return (
        f"(case when regexp_matches({v}, '{_OFFSET_RE}') "
        f"then timezone('UTC', try_cast({v} as TIMESTAMPTZ)) else try_cast({v} as TIMESTAMP) end)"
    )


def _model_columns(con: duckdb.DuckDBPyConnection, model: Any, base_dir: Path) -> dict[str, str]:
    what = f"event_stitching.models.{model.name}"
    names = describe_source(con, model, base_dir, what=what)
    rel = con.sql(f"select * from {source_select_sql(model, base_dir)} limit 0")
    types = dict(zip(rel.columns, [str(t) for t in rel.types], strict=True))
    needed = {"event_id": model.event_id, "timestamp": model.timestamp}
    needed.update({f"identifiers.{c}": c for c in model.identifiers})
    for place, col in needed.items():
        if col not in names:
            raise ConfigError(
                f"{what}.{place}: column {col!r} not found in model {model.name!r} "
                f"(columns: {', '.join(names)})"
            )
    return types


def _model_select(con: duckdb.DuckDBPyConnection, model: Any, base_dir: Path) -> tuple[str, list[str]]:
    """(SQL selecting event_id, event_ts, id_0..id_k, the identifier types of id_0..id_k)."""
    types = _model_columns(con, model, base_dir)
    ts = _ts_expr(model.timestamp, types[model.timestamp])
    cols = list(model.identifiers.items())
    idents = ", ".join(f"cast({quote_ident(c)} as VARCHAR) as id_{i}" for i, (c, _) in enumerate(cols))
    sql = (
        f"select cast({quote_ident(model.event_id)} as VARCHAR) as event_id, "
        f"{ts} as event_ts{', ' + idents if idents else ''} "
        f"from {source_select_sql(model, base_dir)}"
    )
    return sql, [str(t) for _, t in cols]


def validate_models(con: duckdb.DuckDBPyConnection, config: Any, base_dir: Path) -> None:
    """Every mapped column exists; every event has an id and a parseable timestamp. One scan per model."""
    for model in config.models:
        sql, _ = _model_select(con, model, base_dir)
        bad = first_row(
            con.execute(
                f"select count(*) filter (where event_ts is null), count(*) filter (where event_id is null), "
                f"any_value(event_id) filter (where event_ts is null) from ({sql})"
            )
        )
        assert bad is not None
        if bad[0]:
            raise ConfigError(
                f"event_stitching.models.{model.name}.timestamp: column {model.timestamp!r} has {bad[0]} "
                f"null or unparseable timestamp(s) (e.g. event {bad[2]!r}); expected a timestamp (UTC)"
            )
        if bad[1]:
            raise ConfigError(
                f"event_stitching.models.{model.name}.event_id: column {model.event_id!r} has {bad[1]} "
                f"null event id(s)"
            )


@dataclass
class RawWindow:
    """A window's rows as read from the models: events (model, event_id, event_ts µs) and, per identifier
    type, the raw values of every column mapped to it with the row of their event."""

    model: pa.Array
    event_id: pa.Array
    event_ts: np.ndarray
    raw: dict[str, list[tuple[np.ndarray, pa.Array]]]


def read_window(
    con: duckdb.DuckDBPyConnection, config: Any, window: Window, base_dir: Path | str
) -> RawWindow:
    base_dir = Path(base_dir)
    params = {"window_start": window.start, "window_end": window.end}
    models, eids, tss = [], [], []
    raw: dict[str, list[tuple[np.ndarray, pa.Array]]] = {}
    offset = 0
    for model in config.models:
        sql, id_types = _model_select(con, model, base_dir)
        t = con.sql(
            f"select * from ({sql}) where event_ts >= $window_start and event_ts < $window_end", params=params
        ).to_arrow_table()
        n = t.num_rows
        one = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([model.name]))
        models.append(one.cast(pa.string()))
        eids.append(t.column("event_id").combine_chunks().cast(pa.string()))
        tss.append(_micros(t.column("event_ts")))
        rows = np.arange(offset, offset + n, dtype=np.int64)
        for i, typ in enumerate(id_types):
            col = t.column(f"id_{i}").combine_chunks().cast(pa.string())
            raw.setdefault(typ, []).append((rows, col))
        offset += n
    return RawWindow(
        model=pa.concat_arrays(models) if models else pa.array([], pa.string()),
        event_id=pa.concat_arrays(eids) if eids else pa.array([], pa.string()),
        event_ts=np.concatenate(tss) if tss else np.zeros(0, np.int64),
        raw=raw,
    )


def _micros(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    arr = arr.cast(pa.timestamp("us"))
    return np.asarray(arr.to_numpy(zero_copy_only=False)).astype("datetime64[us]").view(np.int64)


@dataclass
class Observed:
    """Standardized observations of one identifier type: event row, value, blocked flag."""

    rows: np.ndarray
    values: pa.Array
    blocked: np.ndarray


def standardize_raw(config: Any, raw: dict[str, list[tuple[np.ndarray, pa.Array]]]) -> dict[str, Observed]:
    """Rules 1-2 per identifier type: standardize (null or empty afterwards is no observation), flag blocked
    values. Types the config does not know are dropped (`validate_models` rejects unknown mappings)."""
    out: dict[str, Observed] = {}
    for typ, parts in raw.items():
        if typ not in config.identifiers:
            continue
        pol = config.identifiers[typ]
        rows = np.concatenate([r for r, _ in parts])
        vals = pa.concat_arrays([v for _, v in parts])
        present = np.asarray(pc.is_valid(vals).to_numpy(zero_copy_only=False), dtype=bool)
        rows, vals = rows[present], vals.filter(pa.array(present))
        std = standardize(pd.Series(pd.arrays.ArrowStringArray(vals)), pol.standardize)
        keep = std.notna().to_numpy()
        std = std[keep]
        out[typ] = Observed(
            rows=rows[keep],
            values=pa.array(std, from_pandas=True, type=pa.string()),
            blocked=_blocked(std, pol),
        )
    return out


def _blocked(std: pd.Series, pol: Any) -> np.ndarray:
    if not pol.blocked_values and not pol.blocked_patterns:
        return np.zeros(len(std), dtype=bool)
    return blocked_mask(std.reset_index(drop=True), pol).to_numpy(dtype=bool)


def _processing_order(model: pa.Array, event_id: pa.Array, event_ts: np.ndarray) -> np.ndarray:
    """seq of every event row: its position in (event_ts, model, event_id) order (strings as code points)."""
    t = pa.table({"ts": pa.array(event_ts), "m": model, "e": event_id})
    order = pc.sort_indices(t, sort_keys=[("ts", "ascending"), ("m", "ascending"), ("e", "ascending")])
    seq = np.empty(len(event_ts), dtype=np.int64)
    seq[order.to_numpy()] = np.arange(len(event_ts), dtype=np.int64)
    return seq


def _check_unique(
    con: duckdb.DuckDBPyConnection, model: pa.Array, event_id: pa.Array, window: Window
) -> None:
    """A (model, event_id) twice in one window is a data error (one hash pass; the slow query only runs to
    name the duplicate when the hashes meet)."""
    ids = pa.table({"m": model, "e": event_id})
    h = on_arrow(con, "__es_ids", ids, "select hash(m, e) as h from __es_ids").to_arrow_table()
    if not pd.Index(h.column("h").to_numpy()).has_duplicates:
        return
    found = on_arrow(
        con,
        "__es_ids",
        ids,
        "select m, e, count(*) from __es_ids group by all having count(*) > 1 order by m, e limit 1",
    ).fetchall()
    if found:
        dup = found[0]
        raise ConfigError(
            f"event_stitching.models.{dup[0]}.event_id: event id {dup[1]!r} appears {dup[2]} times in window "
            f"{window.key}; event ids must be unique per model"
        )


@dataclass
class PreparedWindow:
    """A staged window before it gets value ids: its event rows in processing order and its distinct
    observations in (seq, identifier type name, tie) order, each pointing (`local`) at a distinct
    (type, value) of `values` (types `names[kind]`, keys `keys`), per type in first-sighting order."""

    events: pa.Table
    names: list[str]
    o_seq: np.ndarray
    o_kind: np.ndarray
    o_local: np.ndarray
    o_blocked: np.ndarray
    o_tie: np.ndarray
    values: pa.Array
    kind: np.ndarray
    keys: pa.Table


def prepare_window(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    model: pa.Array,
    event_id: pa.Array,
    event_ts: np.ndarray,
    observed: dict[str, Observed],
) -> PreparedWindow:
    """Everything of staging that needs nothing from other windows: event ids checked, events ordered,
    observations ordered and de-duplicated, value keys."""
    _check_unique(con, model, event_id, window)
    seq = _processing_order(model, event_id, event_ts)
    order_e = np.argsort(seq)
    events = pa.table(
        {
            "seq": pa.array(np.arange(len(seq), dtype=np.int32)),
            "model": model.take(pa.array(order_e)),
            "event_id": event_id.take(pa.array(order_e)),
            "event_ts": pa.array(event_ts[order_e].astype("datetime64[us]")),
        }
    )
    names = [t for t in sorted(observed) if len(observed[t].rows)]
    parts_seq, parts_kind, parts_local, parts_blocked, parts_vals, dicts = [], [], [], [], [], []
    start = 0
    for k, typ in enumerate(names):
        ob = observed[typ]
        enc = pc.dictionary_encode(ob.values)
        parts_local.append(np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64) + start)
        start += len(enc.dictionary)
        dicts.append(enc.dictionary)
        parts_seq.append(seq[ob.rows])
        parts_kind.append(np.full(len(ob.rows), k, dtype=np.int64))
        parts_blocked.append(ob.blocked)
        parts_vals.append(ob.values)
    if not names:
        z = np.zeros(0, np.int64)
        empty = pa.array([], pa.string())
        return PreparedWindow(
            events, [], z, z, z, np.zeros(0, bool), z, empty, z, value_keys(con, [], z, empty)
        )
    o_seq, o_kind = np.concatenate(parts_seq), np.concatenate(parts_kind)
    o_local, o_blocked = np.concatenate(parts_local), np.concatenate(parts_blocked)
    o_tie = _ties(o_seq, o_kind, pa.concat_arrays(parts_vals))
    # an event's values in (identifier_type, value) order: the order the reference reads them in (it decides
    # the order of an event's audit rows); `names` is sorted, so `kind` is the type's rank
    order = np.lexsort((o_tie, o_kind, o_seq))
    o_seq, o_kind, o_local = o_seq[order], o_kind[order], o_local[order]
    o_blocked, o_tie = o_blocked[order], o_tie[order]
    # one observation per (event, value): two columns can carry the same value
    if len(o_seq) > 1:
        keep = np.ones(len(o_seq), dtype=bool)
        keep[1:] = (o_seq[1:] != o_seq[:-1]) | (o_local[1:] != o_local[:-1])
        o_seq, o_kind, o_local = o_seq[keep], o_kind[keep], o_local[keep]
        o_blocked, o_tie = o_blocked[keep], o_tie[keep]
    values = pa.concat_arrays([d.cast(pa.string()) for d in dicts])
    kind = np.repeat(np.arange(len(names), dtype=np.int32), [len(d) for d in dicts])
    keys = value_keys(con, names, kind, values)
    return PreparedWindow(events, names, o_seq, o_kind, o_local, o_blocked, o_tie, values, kind, keys)


def stage_observed(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window: Window,
    model: pa.Array,
    event_id: pa.Array,
    event_ts: np.ndarray,
    observed: dict[str, Observed],
) -> dict[str, int]:
    """Write one window's staged events and observations (replacing that window's rows)."""
    return write_prepared(con, window, prepare_window(con, window, model, event_id, event_ts, observed))


def write_prepared(
    con: duckdb.DuckDBPyConnection, window: Window, pw: PreparedWindow, index: DictionaryIndex | None = None
) -> dict[str, int]:
    """The ordered part of staging: value ids from the dictionary (new values get the next ids; looked up in
    `index` when given), then the window's rows, in one transaction."""
    with transaction(con):
        codes = type_codes(con, pw.names)
        code_of_kind = np.array([codes[t] for t in pw.names], dtype=np.int64)
        vid = ids_of_keys(con, code_of_kind[pw.kind], pw.values, pw.keys, index)
        obs = pa.table(
            {
                "seq": pa.array(pw.o_seq.astype(np.int32)),
                "vid": pa.array(vid[pw.o_local].astype(np.int32)),
                "type_code": pa.array(code_of_kind[pw.o_kind].astype(np.int16)),
                "blocked": pa.array(pw.o_blocked),
                "tie": pa.array(pw.o_tie.astype(np.int16)),
            }
        )
        con.execute(f"delete from {STAGE}.events where window_key = ?", [window.key]).fetchall()
        con.execute(f"delete from {STAGE}.observations where window_key = ?", [window.key]).fetchall()
        key = sql_text(window.key)
        on_arrow(
            con, "__es_events", pw.events, f"insert into {STAGE}.events select {key}, * from __es_events"
        )
        on_arrow(con, "__es_obs", obs, f"insert into {STAGE}.observations select {key}, * from __es_obs")
        _log_stage(con, window.key, "window_events", pw.events.num_rows)
        _log_stage(con, window.key, "identifier_observations", len(pw.o_seq))
    return {"events": pw.events.num_rows, "observations": len(pw.o_seq), "blocked": int(pw.o_blocked.sum())}


def _ties(o_seq: np.ndarray, o_code: np.ndarray, o_vals: pa.Array) -> np.ndarray:
    """Rank of each value among the values of its type on its event, as strings sort (0 when it is alone;
    equal values, two columns carrying one value, share a rank)."""
    tie = np.zeros(len(o_seq), dtype=np.int64)
    if len(o_seq) < 2:
        return tie
    group = o_seq * (int(o_code.max()) + 1) + o_code
    counts = np.bincount(group)
    multi = np.flatnonzero(counts[group] > 1)
    if len(multi) == 0:
        return tie
    t = pa.table({"g": pa.array(group[multi]), "v": o_vals.take(pa.array(multi))})
    o = pc.sort_indices(t, sort_keys=[("g", "ascending"), ("v", "ascending")]).to_numpy()
    rows = multi[o]
    g = group[rows]
    vals = o_vals.take(pa.array(rows))
    start = np.ones(len(g), dtype=bool)
    start[1:] = g[1:] != g[:-1]
    new_val = start.copy()
    if len(rows) > 1:  # Arrow compares the strings (no Python objects); a null differs from everything
        nxt, prev = vals.slice(1), vals.slice(0, len(vals) - 1)
        both_null = pc.and_(pc.is_null(nxt), pc.is_null(prev))
        differs = pc.and_(pc.fill_null(pc.not_equal(nxt, prev), True), pc.invert(both_null))
        new_val[1:] |= np.asarray(differs.to_numpy(zero_copy_only=False), dtype=bool)
    dense = np.cumsum(new_val) - 1
    first = np.maximum.accumulate(np.where(start, np.arange(len(g)), 0))
    tie[rows] = dense - dense[first]
    return tie


def stage_window(
    con: duckdb.DuckDBPyConnection, config: Any, window: Window, base_dir: Path | str = "."
) -> dict[str, int]:
    """Read one window from every model and stage it (events + observations)."""
    return write_prepared(con, window, _read_and_prepare(con, config, window, base_dir))


def _read_and_prepare(
    con: duckdb.DuckDBPyConnection, config: Any, window: Window, base_dir: Path | str
) -> PreparedWindow:
    """The part of staging a window that needs nothing from other windows: read, standardize, then
    `prepare_window`."""
    raw = read_window(con, config, window, base_dir)
    observed = standardize_raw(config, raw.raw)
    return prepare_window(con, window, raw.model, raw.event_id, raw.event_ts, observed)


def stage_windows(
    con: duckdb.DuckDBPyConnection, config: Any, windows: list[Window], base_dir: Path | str = "."
) -> Iterator[tuple[Window, dict[str, int]]]:
    """Stage several windows in order, yielding each window's counts once it is committed.

    The same rows as `stage_window` on each window in turn, faster: the next window is read, standardized,
    ordered and keyed on a second thread (its own cursor; DuckDB and Arrow run without the GIL) while the
    current one gets its value ids and is written. Value ids are still given window after window, so they
    do not depend on the thread timing. From `INDEX_MIN_WINDOWS` windows on, the ids are looked up in the
    dictionary's keys held in memory (`dictionary_index.py`: the same ids, without a join against the whole
    dictionary per window; loading it costs about what ten such joins do). A failing window raises when its
    turn comes: the windows before it are staged, no later one is."""
    if not windows:
        return
    reader = con.cursor()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="es-stage-reader")
    try:
        nxt: Future = pool.submit(_read_and_prepare, reader, config, windows[0], base_dir)
        index = None
        if len(windows) >= INDEX_MIN_WINDOWS:  # loaded while the first window is read
            from identity_pipeline.core.event_stitching.store.dictionary_index import DictionaryIndex

            index = DictionaryIndex.load(con)
        for i, window in enumerate(windows):
            prepared = nxt.result()
            if i + 1 < len(windows):
                nxt = pool.submit(_read_and_prepare, reader, config, windows[i + 1], base_dir)
            yield window, write_prepared(con, window, prepared, index)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        reader.close()


def stage_frames(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window: Window,
    events: pd.DataFrame,
    observations: pd.DataFrame,
) -> dict[str, int]:
    """Stage a window from frames: events (model, event_id, event_ts) and standardized observations (model,
    event_id, event_ts, identifier_type, value, blocked), as `observations.extract_observations` builds them.
    An event only in `observations` is added (first row's timestamp), as the engine does."""
    ev = pd.DataFrame(
        {
            "model": events["model"].astype(str).to_numpy(dtype=object),
            "event_id": events["event_id"].astype(str).to_numpy(dtype=object),
            "ts": pd.to_datetime(events["event_ts"]).astype("datetime64[us]").to_numpy().view(np.int64),
        }
    )
    ev = ev.sort_values("ts", kind="mergesort").drop_duplicates(["model", "event_id"], keep="first")
    obs = observations
    if obs is not None and len(obs):
        o = pd.DataFrame(
            {
                "model": obs["model"].astype(str).to_numpy(dtype=object),
                "event_id": obs["event_id"].astype(str).to_numpy(dtype=object),
                "ts": pd.to_datetime(obs["event_ts"]).astype("datetime64[us]").to_numpy().view(np.int64),
            }
        ).drop_duplicates(["model", "event_id"], keep="first")
        known = pd.MultiIndex.from_frame(ev[["model", "event_id"]])
        extra = o[~pd.MultiIndex.from_frame(o[["model", "event_id"]]).isin(known)]
        ev = pd.concat([ev, extra], ignore_index=True)
    ev = ev.reset_index(drop=True)
    row_of = {k: i for i, k in enumerate(zip(ev["model"].tolist(), ev["event_id"].tolist(), strict=True))}
    observed: dict[str, Observed] = {}
    if obs is not None and len(obs):
        rows = np.array(
            [
                row_of[k]
                for k in zip(
                    obs["model"].astype(str).tolist(), obs["event_id"].astype(str).tolist(), strict=True
                )
            ],
            dtype=np.int64,
        )
        types = obs["identifier_type"].astype(str).to_numpy(dtype=object)
        values = obs["value"].astype(str).to_numpy(dtype=object)
        blocked = obs["blocked"].to_numpy(dtype=bool)
        for typ in sorted(set(types.tolist())):
            sel = types == typ
            observed[typ] = Observed(
                rows=rows[sel], values=pa.array(values[sel], type=pa.string()), blocked=blocked[sel]
            )
    return stage_observed(
        con,
        config,
        window,
        pa.array(ev["model"].to_numpy(dtype=object), pa.string()),
        pa.array(ev["event_id"].to_numpy(dtype=object), pa.string()),
        ev["ts"].to_numpy(dtype=np.int64),
        observed,
    )


def _log_stage(con: duckdb.DuckDBPyConnection, window_key: str, step: str, rows: int) -> None:
    con.execute(
        f"delete from {STAGE}.stage_log where window_key = ? and step = ?", [window_key, step]
    ).fetchall()
    con.execute(
        f"insert into {STAGE}.stage_log values (?, ?, ?, now()::TIMESTAMP)", [window_key, step, rows]
    ).fetchall()


def require_staged(con: duckdb.DuckDBPyConnection, window_key: str, step: str) -> None:
    """Fail clearly when a step's input for the window was never staged (vs. a window with no events)."""
    row = first_row(
        con.execute(
            f"select count(*) from {STAGE}.stage_log where window_key = ? and step = ?", [window_key, step]
        )
    )
    if not row or not row[0]:
        raise WindowOrderError(
            f"event stitching window {window_key}: `{step}` has not been materialized for this window; "
            f"materialize it first (the whole `event_stitching` group runs the steps in order)."
        )


def read_window_events(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    window_start: Any,
    window_end: Any,
    base_dir: Path | str = ".",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, events_long) of one window as frames, ordered like the engine orders them (for inspection and
    tests): events (model, event_id, event_ts) and long raw identifiers (model, event_id, event_ts,
    identifier_type, raw_value)."""
    from identity_pipeline.core.event_stitching.store.windows import Window as _W

    raw = read_window(con, config, _W("", window_start, window_end), base_dir)
    seq = _processing_order(raw.model, raw.event_id, raw.event_ts)
    order = np.argsort(seq)
    m = np.asarray(raw.model.to_pylist(), dtype=object)
    e = np.asarray(raw.event_id.to_pylist(), dtype=object)
    ts = raw.event_ts.astype("datetime64[us]")
    events = pd.DataFrame({"model": m[order], "event_id": e[order], "event_ts": ts[order]})
    long_rows = []
    for typ, parts in raw.raw.items():
        for rows, vals in parts:
            v = np.asarray(vals.to_pylist(), dtype=object)
            ok = np.array([x is not None for x in v], dtype=bool)
            long_rows.append(
                pd.DataFrame(
                    {
                        "seq": seq[rows[ok]],
                        "model": m[rows[ok]],
                        "event_id": e[rows[ok]],
                        "event_ts": ts[rows[ok]],
                        "identifier_type": typ,
                        "raw_value": v[ok],
                    }
                )
            )
    cols = ["model", "event_id", "event_ts", "identifier_type", "raw_value"]
    if long_rows:
        long = pd.concat(long_rows, ignore_index=True)
        long = long.sort_values(["seq", "identifier_type", "raw_value"], kind="mergesort")[cols]
    else:
        long = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    for df in (events, long):
        df["event_ts"] = pd.to_datetime(df["event_ts"]).astype("datetime64[us]")
    return events.reset_index(drop=True), long.reset_index(drop=True)
