"""`store.stage_observations` (rules 1-2 per distinct raw value, joined in DuckDB) gives the rows of
`extract_observations` on the same staged identifiers."""

from __future__ import annotations

import duckdb

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching import store
from identity_pipeline.core.event_stitching.observations import extract_observations
from identity_pipeline_tests.event_stitching.helpers import config_with_models, make_config

ROWS = [
    # id, ts, mail, anon, usr
    ("e1", "2026-11-01 10:00:00", " Alice@Example.COM ", "A1", "U1"),
    ("e2", "2026-11-01 10:05:00", "alice@example.com", "undefined", "  "),  # blocked pattern, empty user
    ("e3", "2026-11-01 10:10:00", "test@test.com", None, "U1"),  # blocked literal
    ("e4", "2026-11-01 10:15:00", "not-an-email", "U1", None),  # invalid email; U1 also as anonymous_id
    ("e5", "2026-11-02 09:00:00", "bob@example.com", "A2", "U2"),  # next window
]


def _setup() -> tuple[duckdb.DuckDBPyConnection, EventStitchingConfig]:
    con = duckdb.connect()
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else f"'{v}'" for v in (i, ts, m, a, u)) + ")"
        for i, ts, m, a, u in ROWS
    )
    con.execute(
        f"create table src as select id, ts::TIMESTAMP ts, mail, anon, usr from (values {values}) "
        "t(id, ts, mail, anon, usr)"
    )
    cfg = config_with_models(
        [
            {
                "name": "crm",
                "table": "src",
                "event_id": "id",
                "timestamp": "ts",
                "identifiers": {"mail": "email", "anon": "anonymous_id", "usr": "user_id"},
            }
        ],
        make_config(anonymous_id={"blocked_patterns": ["^undefined$"]}),
    )
    store.ensure_schema(con)
    return con, cfg


def _records(df) -> list[tuple]:
    return sorted(
        (str(r.model), str(r.event_id), str(r.identifier_type), str(r.value), bool(r.blocked))
        for r in df.itertuples()
    )


def test_stage_observations_equals_extract_observations_on_the_staged_rows():
    con, cfg = _setup()
    for key in ("2026-11-01", "2026-11-02"):
        w = store.window_for_key(cfg, key)
        store.stage_window(con, cfg, w, ".")
        counts = store.stage_observations(con, cfg, key)
        staged = store.staged_observations(con, key)
        _, long = store.read_window_events(con, cfg, w.start, w.end, ".")
        assert _records(staged) == _records(extract_observations(long, cfg))
        assert counts == {"observations": len(staged), "blocked": int(staged["blocked"].sum())}
    assert _records(store.staged_observations(con, "2026-11-01")) == [
        ("crm", "e1", "anonymous_id", "A1", False),
        ("crm", "e1", "email", "alice@example.com", False),
        ("crm", "e1", "user_id", "U1", False),
        ("crm", "e2", "anonymous_id", "undefined", True),
        ("crm", "e2", "email", "alice@example.com", False),
        ("crm", "e3", "email", "test@test.com", True),
        ("crm", "e3", "user_id", "U1", False),
        ("crm", "e4", "anonymous_id", "U1", False),
    ]


def test_stage_observations_replaces_only_its_window():
    con, cfg = _setup()
    for key in ("2026-11-01", "2026-11-02"):
        store.stage_window(con, cfg, store.window_for_key(cfg, key), ".")
        store.stage_observations(con, cfg, key)
    before = _records(store.staged_observations(con, "2026-11-02"))
    store.stage_observations(con, cfg, "2026-11-01")
    store.stage_observations(con, cfg, "2026-11-01")
    assert len(store.staged_observations(con, "2026-11-01")) == 8
    assert _records(store.staged_observations(con, "2026-11-02")) == before
