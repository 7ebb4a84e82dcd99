"""Store + Dagster shell of Event Stitching on the bundled sample (data/events, 7 daily windows)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from identity_pipeline.config import ConfigError, parse_config
from identity_pipeline.core.event_stitching import store
from identity_pipeline.defs import build_definitions
from identity_pipeline.defs.event_stitching import JOB_NAME

from .conftest import DATA, SAMPLE_WINDOWS, make_config, run_windows, sample_section, snapshot


def _read(config, sql: str) -> pd.DataFrame:
    with DuckDBResource(database=str(config.database_path())).get_connection() as con:
        return con.execute(sql).df()


def _source_event_count() -> int:
    con = duckdb.connect()
    n = 0
    for f in ("web_events", "app_events", "logins"):
        n += con.execute(
            f"select count(*) from read_csv('{DATA / 'events' / f}.csv', header=true)"
        ).fetchall()[0][0]
    return n


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    config = make_config(tmp_path_factory.mktemp("full") / "es.duckdb")
    defs = build_definitions(config)
    result = run_windows(defs, SAMPLE_WINDOWS[0], SAMPLE_WINDOWS[-1])
    assert result.success
    return config, defs, result


def test_sample_run_every_event_exactly_one_attribution_row(full_run):
    config, _, _ = full_run
    attr = _read(config, f"select * from {store.ATTRIBUTION_VIEW}")
    assert len(attr) == _source_event_count()
    assert not attr.duplicated(["model", "event_id"]).any()
    assert set(attr["window_key"]) == set(SAMPLE_WINDOWS)
    assert set(attr["status"]) <= {"stitched", "excluded"}
    windows = _read(config, f"select * from {store.STATE}.windows order by window_start")
    assert list(windows["window_key"]) == SAMPLE_WINDOWS
    assert (windows["status"] == "processed").all()
    # resolved id: always an active profile for stitched events
    bad = _read(
        config,
        f"""select a.* from {store.ATTRIBUTION_VIEW} a left join {store.PROFILES_VIEW} p
            on p.dinmo_stitched_profile_id = a.resolved_dinmo_stitched_profile_id
            where a.status = 'stitched' and p.status is distinct from 'active'""",
    )
    assert bad.empty


def test_checks_pass_on_sample(full_run):
    _, _, result = full_run
    evaluations = result.get_asset_check_evaluations()
    names = {e.check_name for e in evaluations}
    assert {
        "attribution_one_row_per_event",
        "redirects_one_hop_to_active_profile",
        "resolved_profile_id_is_current",
        "no_active_conflicts",
        "identity_event_profile_attribution_schema",
        "identity_event_profiles_schema",
        "identity_event_profile_identifier_values_schema",
        "identity_event_profile_redirects_schema",
        "identity_event_profile_audit_events_schema",
        "identity_event_profile_run_metrics_schema",
    } <= names
    failed = {e.check_name: e.metadata for e in evaluations if not e.passed}
    assert not failed


def test_window_metrics_are_numeric_metadata(full_run):
    config, _, result = full_run
    mats = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("event_stitching_graph")
    ]
    assert mats
    meta = mats[-1].materialization.metadata
    for key in ("stitch_rate", "known_profile_share", "active_conflicts", "events_processed"):
        assert key in meta
        assert isinstance(meta[key].value, float | int)
    metrics = _read(config, "select * from identity_event_profile_run_metrics")
    assert set(metrics["breakdown"]) >= {"window", "model"}
    window_rows = metrics[metrics["breakdown"] == "window"]
    assert set(window_rows["window_key"]) == set(SAMPLE_WINDOWS)
    assert {"known_profile_share", "active_conflicts", "duration_seconds"} <= set(window_rows["metric"])


def test_rematerializing_a_window_replaces_only_its_rows(full_run):
    # the newest window again: the same rows, nothing duplicated, every other table as it was
    config, defs, _ = full_run
    before = snapshot(config)
    counts = "select window_key, count(*) n from es_output.attribution group by all order by 1"
    counts_before = _read(config, counts)
    assert run_windows(defs, SAMPLE_WINDOWS[-1]).success
    after = snapshot(config)
    pd.testing.assert_frame_equal(counts_before, _read(config, counts))
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    windows = _read(config, f"select status from {store.STATE}.windows")
    assert (windows["status"] == "processed").all()


def test_rematerializing_an_earlier_window_keeps_the_other_windows_rows_and_outdates_the_later_ones(full_run):
    # an earlier window again: its rows are replaced, the other windows' output rows stay, the graph goes back
    # to that window (later windows are `outdated` until re-run in order, which the next test covers)
    config, defs, _ = full_run
    outputs = "select * from es_output.attribution where window_key <> '2026-11-04' order by window_key, seq"
    before = _read(config, outputs)
    assert run_windows(defs, "2026-11-04").success
    pd.testing.assert_frame_equal(before, _read(config, outputs))
    status = _read(config, f"select window_key, status from {store.STATE}.windows order by 1")
    assert dict(zip(status["window_key"], status["status"], strict=True)) == {
        k: "processed" if k <= "2026-11-04" else "outdated" for k in SAMPLE_WINDOWS
    }
    result = run_windows(defs, "2026-11-06", raise_on_error=False)
    assert not result.success  # 2026-11-05 is outdated: the order is enforced
    assert run_windows(defs, "2026-11-05", SAMPLE_WINDOWS[-1]).success


def test_rerun_earlier_window_then_later_equals_one_in_order_run(tmp_path: Path):
    one = make_config(tmp_path / "one.duckdb")
    assert run_windows(build_definitions(one), SAMPLE_WINDOWS[0], SAMPLE_WINDOWS[-1]).success

    section = sample_section()
    section["commit_every_windows"] = 2  # the range runs commit every 2 windows: same tables
    two = make_config(tmp_path / "two.duckdb", section)
    defs = build_definitions(two)
    assert run_windows(defs, SAMPLE_WINDOWS[0], "2026-11-03").success
    for key in ("2026-11-04", "2026-11-05"):  # window by window, as the daily schedule would
        assert run_windows(defs, key).success
    assert run_windows(defs, "2026-11-02").success  # re-run an earlier window ...
    assert run_windows(defs, "2026-11-03", SAMPLE_WINDOWS[-1]).success  # ... then the later ones in order

    # the undo logs differ by design (one per commit, and these runs committed other groups of windows);
    # that they roll back correctly is what the re-runs above and the store's property tests check
    a, b = snapshot(one, undo=False), snapshot(two, undo=False)
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


def test_window_whose_predecessor_was_not_processed_fails_clearly(config):
    defs = build_definitions(config)
    result = run_windows(defs, "2026-11-03", raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    message = "\n".join(
        str(f.step_failure_data.error.cause.message if f.step_failure_data.error.cause else "")
        + f.step_failure_data.error.message
        for f in failures
    )
    assert "2026-11-03" in message and "2026-11-02" in message
    assert "has not been processed" in message
    # nothing was written for the window
    assert _read(config, "select count(*) n from es_output.attribution")["n"][0] == 0


def test_first_window_then_gap_fails_but_first_window_alone_is_fine(config):
    defs = build_definitions(config)
    assert run_windows(defs, "2026-11-01").success
    assert not run_windows(defs, "2026-11-05", raise_on_error=False).success
    assert run_windows(defs, "2026-11-02").success


def test_schedule_targets_newest_complete_window(config):
    defs = build_definitions(config)
    schedule = defs.resolve_schedule_def("event_stitching_schedule")
    assert schedule.cron_schedule == "0 0 * * *"
    assert schedule.job_name == "event_stitching_job"
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 5, 0, 0, tzinfo=UTC)
        )
        data = schedule.evaluate_tick(ctx)
    assert [r.partition_key for r in data.run_requests] == ["2026-11-04"]


def test_missing_model_column_is_a_config_error(tmp_path: Path):
    section = sample_section()
    section["models"][0]["timestamp"] = "no_such_column"
    config = make_config(tmp_path / "bad.duckdb", section)
    con = duckdb.connect()
    with pytest.raises(ConfigError, match=r"no_such_column.*" + section["models"][0]["name"]):
        store.read_window_events(
            con, config.event_stitching, datetime(2026, 11, 1), datetime(2026, 11, 2), DATA
        )


def test_commit_every_windows_must_be_positive(tmp_path: Path):
    section = sample_section()
    section["commit_every_windows"] = 0
    with pytest.raises(ConfigError, match=r"commit_every_windows.*greater than or equal to 1"):
        make_config(tmp_path / "bad.duckdb", section)


def _staged_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {
        t: con.execute(f"select * from {t} order by all").fetchall()
        for t in ("es_stage.events", "es_stage.observations", "es_state.value_dictionary")
    }


def test_stage_windows_writes_the_rows_of_staging_each_window_alone(tmp_path: Path):
    es = make_config(tmp_path / "x.duckdb").event_stitching
    windows = store.config_windows(es)
    one, many = duckdb.connect(str(tmp_path / "one.duckdb")), duckdb.connect(str(tmp_path / "many.duckdb"))
    for con in (one, many):
        store.ensure_schema(con)
    for w in windows:
        store.stage_window(one, es, w, DATA)
    staged = [(w.key, counts["events"]) for w, counts in store.stage_windows(many, es, windows, DATA)]
    assert [k for k, _ in staged] == [w.key for w in windows]
    assert sum(n for _, n in staged) == one.execute("select count(*) from es_stage.events").fetchone()[0] > 0
    assert _staged_rows(many) == _staged_rows(one)


def test_stage_windows_stops_at_a_failing_window_with_the_windows_before_it_staged(tmp_path: Path):
    events = tmp_path / "events"
    events.mkdir()
    for f in (DATA / "events").iterdir():
        (events / f.name).write_text(f.read_text())
    web = events / "web_events.csv"
    rows = web.read_text().splitlines()
    # w010 is an event of 2026-11-04: a second row with its id in that window
    rows.append(next(r for r in rows if r.startswith("w010,")).replace(" 18:00", " 19:00", 1))
    web.write_text("\n".join(rows) + "\n")
    section = sample_section()
    config = parse_config(
        {"duckdb_path": str(tmp_path / "es.duckdb"), "event_stitching": section}, base_dir=tmp_path
    )
    es = config.event_stitching
    con = duckdb.connect(str(tmp_path / "es.duckdb"))
    store.ensure_schema(con)
    done = []
    with pytest.raises(
        ConfigError, match=r"web_events\.event_id: event id 'w010' appears 2 times in window 2026-11-04"
    ):
        for w, _ in store.stage_windows(con, es, store.config_windows(es), tmp_path):
            done.append(w.key)
    assert done == ["2026-11-01", "2026-11-02", "2026-11-03"]
    staged = [
        r[0] for r in con.execute("select distinct window_key from es_stage.events order by 1").fetchall()
    ]
    assert staged == done


def test_read_window_events_order_and_utc(config):
    con = duckdb.connect()
    events, long = store.read_window_events(
        con, config.event_stitching, datetime(2026, 11, 2), datetime(2026, 11, 3), DATA
    )
    assert list(events.columns) == ["model", "event_id", "event_ts"]
    assert list(long.columns) == ["model", "event_id", "event_ts", "identifier_type", "raw_value"]
    keys = list(zip(events["event_ts"], events["model"], events["event_id"], strict=True))
    assert keys == sorted(keys)
    # app events carry ISO timestamps with a Z suffix: read as UTC
    a001 = events[events["event_id"] == "a001"]["event_ts"].iloc[0]
    assert a001 == pd.Timestamp("2026-11-02 08:00:00")
    assert set(long["identifier_type"]) <= set(config.event_stitching.identifiers)


def test_cli_run_prints_metrics_per_window(tmp_path: Path, capsys, monkeypatch):
    import yaml

    from identity_pipeline import cli

    section = sample_section()
    for m in section["models"]:
        m["path"] = str(DATA / m["path"])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"duckdb_path": "es.duckdb", "event_stitching": section}))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("IDENTITY_PIPELINE_DB", raising=False)
    assert cli.main(["run", "--config", str(cfg), "--only", "event_stitching"]) == 0
    out = capsys.readouterr().out
    assert "event_stitching:" in out and "stitch_rate" in out
    for key in SAMPLE_WINDOWS:
        assert f"  {key}  " in out
    assert (tmp_path / "es.duckdb").exists()


def test_cli_validate_checks_event_models_before_anything_is_written(tmp_path: Path, capsys):
    import yaml

    from identity_pipeline import cli

    section = sample_section()
    for m in section["models"]:
        m["path"] = str(DATA / m["path"])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"duckdb_path": "es.duckdb", "event_stitching": section}))
    assert cli.main(["validate", "--config", str(cfg)]) == 0
    assert f"event_stitching: {len(section['models'])} model(s)" in capsys.readouterr().out

    model = section["models"][0]
    model["timestamp"] = "no_such_column"
    cfg.write_text(yaml.safe_dump({"duckdb_path": "es.duckdb", "event_stitching": section}))
    for command in ("validate", "run"):
        assert cli.main([command, "--config", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert f"event_stitching.models.{model['name']}.timestamp" in err and "'no_such_column'" in err
        assert "Traceback" not in err
    assert not (tmp_path / "es.duckdb").exists()  # nothing written


def test_checks_filter_the_run_windows_by_a_quoted_literal_list():
    # the checks filter the per-window tables with the run's keys written into the SQL (so DuckDB prunes the
    # scans); a key is quoted as a string literal, whatever it holds
    from types import SimpleNamespace

    from identity_pipeline.defs.event_stitching_checks import _run_keys_sql

    con = duckdb.connect()
    con.execute("create table t (window_key varchar)")
    con.execute("insert into t values ('2026-11-01'), ('2026-11-02'), ('it''s'), ('x'') or (''1''=''1')")

    def run_keys(keys: list[str]) -> list[str]:
        context = SimpleNamespace(op_execution_context=SimpleNamespace(partition_keys=keys))
        sql = f"select window_key from t where window_key in {_run_keys_sql(con, context)} order by 1"
        return [r[0] for r in con.execute(sql).fetchall()]

    assert run_keys(["2026-11-02"]) == ["2026-11-02"]
    assert run_keys(["2026-11-01", "it's"]) == ["2026-11-01", "it's"]
    assert run_keys(["x') or ('1'='1"]) == ["x') or ('1'='1"]
    store.ensure_schema(con)  # not a partitioned run: every processed window (none here)
    assert run_keys([]) == []


def _run_check_only(defs, check: dg.AssetCheckKey, window: str) -> dg.AssetCheckEvaluation:
    """One asset check of the job, alone, for one window (what a re-executed check does in the UI)."""
    job = defs.resolve_job_def(JOB_NAME).get_subset(asset_selection=set(), asset_check_selection={check})
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), partition_key=window)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


@pytest.mark.parametrize(
    ("view", "state_table", "keys", "corrupt"),
    [
        (store.PROFILES_VIEW, "profiles", ["dinmo_stitched_profile_id"], "status = 7"),
        (
            store.VALUES_VIEW,
            "memberships",
            ["dinmo_stitched_profile_id", "identifier_type", "value"],
            "status = 7",
        ),
    ],
)
def test_current_state_schema_checks_validate_the_current_rows_their_windows_wrote(
    tmp_path: Path, view: str, state_table: str, keys: list[str], corrupt: str
):
    config = make_config(tmp_path / "es.duckdb")
    defs = build_definitions(config)
    assert run_windows(defs, SAMPLE_WINDOWS[0], SAMPLE_WINDOWS[-1]).success
    check = dg.AssetCheckKey(dg.AssetKey(view), f"{view}_schema")
    total = len(_read(config, f"select * from {view}"))
    select = (
        store.profiles_select
        if state_table == "profiles"
        else lambda w: store.identifier_values_select(config.event_stitching, w)
    )

    def written_by(window: str) -> pd.DataFrame:  # the published rows of the state rows the window wrote
        return _read(config, select(f"written_window = TIMESTAMP '{window}'"))

    for window in (SAMPLE_WINDOWS[2], SAMPLE_WINDOWS[-1]):
        expected = written_by(window)
        assert 0 < len(expected) < total
        evaluation = _run_check_only(defs, check, window)
        assert evaluation.passed
        assert evaluation.metadata["rows_validated"].value == len(expected)

    # a broken current row is reported by the check of the window that wrote it, not by another window's
    with DuckDBResource(database=str(config.database_path())).get_connection() as con:
        con.execute(
            f"update {store.STATE}.{state_table} set {corrupt} where rowid = (select min(rowid) from "
            f"{store.STATE}.{state_table} where written_window = TIMESTAMP '{SAMPLE_WINDOWS[-1]}')"
        )
    failed = _run_check_only(defs, check, SAMPLE_WINDOWS[-1])
    assert not failed.passed and "invalid" in failed.metadata["failure_cases"].value
    assert _run_check_only(defs, check, SAMPLE_WINDOWS[2]).passed
