"""One YAML file configures the pipeline; this package validates it up front.

`load_config(path)` returns a `PipelineConfig` or raises one `ConfigError` naming the file, the place in it
and what was expected. Paths: `IDENTITY_PIPELINE_CONFIG` picks the file, `IDENTITY_PIPELINE_DB` overrides
`duckdb_path`; relative paths inside the file are resolved against the file's folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from pydantic import ValidationError, ValidationInfo, field_validator

from identity_pipeline.config.errors import ConfigError
from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.config.profile_resolution import ProfileResolutionConfig
from identity_pipeline.config.sources import SourceLocation, StrictModel

CONFIG_ENV = "IDENTITY_PIPELINE_CONFIG"
DB_ENV = "IDENTITY_PIPELINE_DB"
DEFAULT_CONFIG = "data/config.yaml"

__all__ = [
    "CONFIG_ENV",
    "DB_ENV",
    "ConfigError",
    "EventStitchingConfig",
    "PipelineConfig",
    "ProfileResolutionConfig",
    "SourceLocation",
    "config_path_from_env",
    "load_config",
    "parse_config",
]


class PipelineConfig(StrictModel):
    """Top level of the YAML file. Each capability is optional; at least one must be present."""

    duckdb_path: str = "identity.duckdb"
    # DuckDB `memory_limit` of the pipeline's connection (e.g. "2GB"); empty = DuckDB's default (80% of RAM).
    # DuckDB spills to disk above it, so a long Event Stitching backfill stays within a known footprint.
    duckdb_memory_limit: str | None = None
    # DuckDB `checkpoint_threshold`: the WAL size that triggers a checkpoint (DuckDB's default is 16MB). A
    # checkpoint rewrites every row group a window's updates touched in the large state tables, so a larger
    # threshold (e.g. "64MB") merges several windows' checkpoints into one (docs/benchmarks.md).
    duckdb_checkpoint_threshold: str | None = None
    profile_resolution: ProfileResolutionConfig | None = None
    event_stitching: EventStitchingConfig | None = None
    # Folder the config file lives in; relative source paths resolve against it. Set by the loader.
    base_dir: str = "."

    @field_validator("duckdb_memory_limit", "duckdb_checkpoint_threshold")
    @classmethod
    def _size(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v in (None, ""):
            return None
        if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", str(v)):
            raise ValueError(f"{info.field_name} must be a size such as '2GB' or '512MB'")
        return str(v).strip()

    def duckdb_settings(self) -> dict[str, str]:
        """The DuckDB settings of the pipeline's connections (Dagster resource and benchmarks alike)."""
        out = {}
        if self.duckdb_memory_limit:
            out["memory_limit"] = self.duckdb_memory_limit
        if self.duckdb_checkpoint_threshold:
            out["checkpoint_threshold"] = self.duckdb_checkpoint_threshold
        return out

    def base_path(self) -> Path:
        return Path(self.base_dir)

    def database_path(self) -> Path:
        """`IDENTITY_PIPELINE_DB` wins over the file's `duckdb_path` (relative to the config folder)."""
        env = os.environ.get(DB_ENV)
        p = Path(env).expanduser() if env else Path(self.duckdb_path).expanduser()
        return p if p.is_absolute() else (self.base_path() / p).resolve()


def _format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid configuration ({err.error_count()} problem(s)):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<top level>"
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        got_txt = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        lines.append(f"  - at '{where}': {msg}{got_txt}")
    return "\n".join(lines)


def parse_config(data: dict, *, source: str = "<config>", base_dir: Path | None = None) -> PipelineConfig:
    """Validate an already-parsed YAML mapping. `source` names it in error messages."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}")
    data = dict(data)
    data["base_dir"] = str((base_dir or Path.cwd()).resolve())
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(source, err)) from None
    if cfg.profile_resolution is None and cfg.event_stitching is None:
        raise ConfigError(f"{source}: configure at least one of 'profile_resolution' or 'event_stitching'")
    return cfg


def config_path_from_env() -> Path:
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG)).expanduser().resolve()


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and validate the YAML config (default: `$IDENTITY_PIPELINE_CONFIG`, else `data/config.yaml`)."""
    p = Path(path).expanduser().resolve() if path else config_path_from_env()
    if not p.is_file():
        raise ConfigError(f"config file not found: {p} (set {CONFIG_ENV} or pass --config)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    return parse_config(data, source=str(p), base_dir=p.parent)
