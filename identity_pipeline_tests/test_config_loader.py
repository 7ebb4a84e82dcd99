"""Top-level config loading: file/env resolution and one clear error before anything is written."""

from pathlib import Path

import pytest

from identity_pipeline.config import (
    CONFIG_ENV,
    DB_ENV,
    ConfigError,
    PipelineConfig,
    load_config,
    parse_config,
)


def test_missing_file_names_the_path_and_the_env_var(tmp_path: Path):
    with pytest.raises(ConfigError, match=rf"config file not found: .*nope\.yaml .*{CONFIG_ENV}"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("profile_resolution: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML"):
        load_config(p)


def test_top_level_must_be_a_mapping_with_a_capability(tmp_path: Path):
    with pytest.raises(ConfigError, match="expected a YAML mapping"):
        parse_config(["a"], source="x.yaml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="configure at least one of"):
        parse_config({"duckdb_path": "a.duckdb"}, source="x.yaml")


def test_unknown_top_level_key_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"(?s)x\.yaml: .*at 'profile_resolutoin': Extra inputs"):
        parse_config({"profile_resolutoin": {}}, source="x.yaml")


def test_database_path_relative_to_config_folder_and_env_override(tmp_path: Path, monkeypatch):
    cfg = PipelineConfig(duckdb_path="out/db.duckdb", base_dir=str(tmp_path))
    monkeypatch.delenv(DB_ENV, raising=False)
    assert cfg.database_path() == tmp_path / "out" / "db.duckdb"
    monkeypatch.setenv(DB_ENV, str(tmp_path / "elsewhere.duckdb"))
    assert cfg.database_path() == tmp_path / "elsewhere.duckdb"


def test_config_env_var_picks_the_file(tmp_path: Path, monkeypatch):
    p = tmp_path / "mine.yaml"
    monkeypatch.setenv(CONFIG_ENV, str(p))
    with pytest.raises(ConfigError, match="mine.yaml"):
        load_config()


def test_duckdb_memory_limit_is_validated_and_applied_to_the_pipeline_connection(tmp_path: Path, monkeypatch):
    from identity_pipeline.defs.resources import duckdb_resource

    with pytest.raises(ConfigError, match=r"at 'duckdb_memory_limit': .*such as '2GB'.*\(got 'lots'\)"):
        parse_config({"duckdb_memory_limit": "lots"}, source="x.yaml")
    monkeypatch.delenv(DB_ENV, raising=False)
    cfg = PipelineConfig(duckdb_path="db.duckdb", duckdb_memory_limit="512MB", base_dir=str(tmp_path))
    with duckdb_resource(cfg).get_connection() as con:
        limit = con.execute("select current_setting('memory_limit')").fetchall()[0][0]
    assert limit.replace(" ", "") in ("512.0MiB", "488.2MiB", "512MB", "488.2MB"), limit
    default = PipelineConfig(duckdb_path="db2.duckdb", base_dir=str(tmp_path))
    assert duckdb_resource(default).connection_config == {}


def test_duckdb_checkpoint_threshold_is_validated_and_applied_to_the_pipeline_connection(
    tmp_path: Path, monkeypatch
):
    from identity_pipeline.defs.resources import duckdb_resource

    with pytest.raises(ConfigError, match=r"at 'duckdb_checkpoint_threshold': .*such as '2GB'.*\(got '5'\)"):
        parse_config({"duckdb_checkpoint_threshold": "5"}, source="x.yaml")
    monkeypatch.delenv(DB_ENV, raising=False)
    cfg = PipelineConfig(duckdb_path="db.duckdb", duckdb_checkpoint_threshold="64MB", base_dir=str(tmp_path))
    assert cfg.duckdb_settings() == {"checkpoint_threshold": "64MB"}
    with duckdb_resource(cfg).get_connection() as con:
        threshold = con.execute("select current_setting('checkpoint_threshold')").fetchall()[0][0]
    assert threshold.replace(" ", "") in ("64.0MiB", "61.0MiB", "64MB", "61.0MB"), threshold
