"""Where a source or event model lives: a CSV/Parquet file or a DuckDB table.

Shared by both capabilities so the two read data the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceLocation(StrictModel):
    """Exactly one of `path` (CSV/Parquet, relative to the config) or `table` (in the pipeline DuckDB)."""

    path: str | None = None
    table: str | None = None
    format: Literal["csv", "parquet"] | None = None

    @model_validator(mode="after")
    def _one_location(self) -> SourceLocation:
        if (self.path is None) == (self.table is None):
            raise ValueError("give exactly one of 'path' (CSV/Parquet file) or 'table' (DuckDB table)")
        return self

    def file_format(self) -> Literal["csv", "parquet"]:
        if self.format:
            return self.format
        assert self.path is not None
        return "parquet" if self.path.lower().endswith((".parquet", ".pq")) else "csv"

    def resolved_path(self, base_dir: Path) -> Path:
        assert self.path is not None
        p = Path(self.path).expanduser()
        return p if p.is_absolute() else (base_dir / p).resolve()
