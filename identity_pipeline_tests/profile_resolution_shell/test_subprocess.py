"""`identity-pipeline run` and `identity_pipeline.definitions` in real subprocesses (started early by the
`background` fixture, so they overlap with the in-process tests)."""

from __future__ import annotations


def test_cli_run_prints_summary(background):
    out, err = background.cli_run.communicate(timeout=180)
    assert background.cli_run.returncode == 0, err[-3000:]
    assert "records in:          47" in out
    assert "profiles out:        24" in out
    assert "duplicates merged:   17" in out
    assert "duplicate_primary_key: 2" in out and "only_blocked_values: 1" in out
    assert background.cli_db.is_file()
    assert not (background.root / "sample.duckdb").exists()  # IDENTITY_PIPELINE_DB wins over duckdb_path
    assert "STEP_START" not in err  # the CLI keeps Dagster's console quiet


def test_definitions_module_loads(background):
    out, err = background.definitions.communicate(timeout=180)
    assert background.definitions.returncode == 0, err[-3000:]
    assert "'profile_resolution_published'" in out
    assert "profile_resolution_job" in out
    assert not background.probe_db.exists()  # no connection opened at import time
