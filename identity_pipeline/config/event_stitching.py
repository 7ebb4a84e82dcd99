"""Event Stitching config: windows, event models, identifier policies, released values.

See docs/configuration.md (`event_stitching:`) and docs/event-stitching.md for the semantics. Everything that
can be checked without reading the data is checked here, with messages naming the place and what was expected.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from identity_pipeline.config.sources import SourceLocation, StrictModel

ES_STANDARDIZERS = ("none", "trim", "lowercase", "email", "phone")
LIFETIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LIFETIME_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_lifetime(text: str | None) -> timedelta | None:
    """'30m' -> 30 minutes; None / '' -> None (forever). Raises ValueError on anything else."""
    if text is None or str(text).strip() == "":
        return None
    m = _LIFETIME_RE.match(str(text))
    if not m:
        raise ValueError(
            f"lifetime {text!r} is not a duration; expected <n><unit> with unit one of s, m, h, d, w "
            "(e.g. '30m', '90d'), or empty for forever"
        )
    return timedelta(seconds=int(m.group(1)) * LIFETIME_UNITS[m.group(2)])


class IdentifierPolicy(StrictModel):
    """How one identifier type is standardized, trusted and protected."""

    priority: int = Field(ge=1)
    anchor: bool = False
    standardize: Literal["none", "trim", "lowercase", "email", "phone"] = "trim"
    blocked_values: list[str] = Field(default_factory=list)
    blocked_patterns: list[str] = Field(default_factory=list)
    lifetime: str | None = None
    lifetime_from: Literal["first_seen", "last_seen"] = "first_seen"
    max_profiles_per_value: int | None = Field(default=None, ge=1)
    # default filled by _defaults: 1 for anchors, None (no limit) for weak types
    max_unique_values_per_profile: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "standardize" in data and data["standardize"] not in ES_STANDARDIZERS:
                raise ValueError(
                    f"unknown standardize {data['standardize']!r}; "
                    f"expected one of {', '.join(ES_STANDARDIZERS)}"
                )
            if "lifetime_from" in data and data["lifetime_from"] not in ("first_seen", "last_seen"):
                raise ValueError(
                    f"lifetime_from {data['lifetime_from']!r} is not valid; "
                    "expected 'first_seen' or 'last_seen'"
                )
            if "max_unique_values_per_profile" not in data:
                data["max_unique_values_per_profile"] = 1 if data.get("anchor") else None
            if data.get("lifetime") is not None and not isinstance(data["lifetime"], str):
                data["lifetime"] = str(data["lifetime"])
        return data

    @field_validator("lifetime")
    @classmethod
    def _lifetime(cls, v: str | None) -> str | None:
        parse_lifetime(v)
        return None if v is None or v.strip() == "" else v.strip()

    @field_validator("max_unique_values_per_profile")
    @classmethod
    def _max_unique(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"max_unique_values_per_profile must be >= 1 or empty (no limit), got {v}")
        return v

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as err:
                raise ValueError(
                    f"blocked_patterns: {p!r} is not a valid regular expression ({err})"
                ) from None
        return v

    def lifetime_delta(self) -> timedelta | None:
        return parse_lifetime(self.lifetime)


class EventModelConfig(SourceLocation):
    """One event model: where it lives, its event id and timestamp columns, and column -> identifier type."""

    name: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    timestamp: str = Field(min_length=1)
    identifiers: dict[str, str] = Field(min_length=1)


class ReleasedValue(StrictModel):
    """An explicit release of a quarantined value (audited). `released_at` (optional) limits the release to
    quarantines that happened at or before it; without it the value is exempt from quarantine while listed."""

    identifier: str
    value: str
    released_at: datetime | None = None


class EventStitchingConfig(StrictModel):
    window: Literal["daily", "hourly"] = "daily"
    start: datetime
    end: datetime | None = None
    models: list[EventModelConfig] = Field(min_length=1)
    identifiers: dict[str, IdentifierPolicy] = Field(min_length=1)
    released_values: list[ReleasedValue] = Field(default_factory=list)
    # a run over many windows (a backfill) commits every N windows: bounded memory for DuckDB's open
    # transaction, and a failure keeps the windows committed before it (docs/event-stitching-storage.md)
    commit_every_windows: int = Field(default=10, ge=1)
    # glibc and numpy keep freed memory mapped during a stitching run (store/allocator.py; measured ~10 % of
    # a backfill on 2-vCPU VMs); false leaves the process's allocator settings alone
    tune_allocator: bool = True

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> Any:
        if v not in ("daily", "hourly"):
            raise ValueError(f"window {v!r} is not valid; expected 'daily' or 'hourly'")
        return v

    @field_validator("start", "end", mode="after")
    @classmethod
    def _naive_utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is not None:
            from datetime import UTC

            v = v.astimezone(UTC).replace(tzinfo=None)
        return v

    @model_validator(mode="after")
    def _check(self) -> EventStitchingConfig:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        by_priority: dict[int, list[str]] = {}
        for name, pol in self.identifiers.items():
            by_priority.setdefault(pol.priority, []).append(name)
        dups = {p: names for p, names in by_priority.items() if len(names) > 1}
        if dups:
            txt = "; ".join(f"priority {p}: {', '.join(sorted(n))}" for p, n in sorted(dups.items()))
            raise ValueError(f"identifier priorities must be unique ({txt})")
        known = sorted(self.identifiers)
        names: set[str] = set()
        for m in self.models:
            if m.name in names:
                raise ValueError(f"model name {m.name!r} is used more than once")
            names.add(m.name)
            for col, t in m.identifiers.items():
                if t not in self.identifiers:
                    raise ValueError(
                        f"model {m.name!r}: column {col!r} maps to unknown identifier type {t!r}; "
                        f"known types: {', '.join(known)}"
                    )
        for r in self.released_values:
            if r.identifier not in self.identifiers:
                raise ValueError(
                    f"released_values: unknown identifier type {r.identifier!r} (value {r.value!r}); "
                    f"known types: {', '.join(known)}"
                )
        return self

    # ---- helpers used by the engine and the shell -------------------------------------------------------
    def window_delta(self) -> timedelta:
        return timedelta(hours=1) if self.window == "hourly" else timedelta(days=1)

    def identifier_order(self) -> list[str]:
        """Identifier types strongest first (priority, then name)."""
        return sorted(self.identifiers, key=lambda t: (self.identifiers[t].priority, t))

    def anchor_types(self) -> list[str]:
        return [t for t in self.identifier_order() if self.identifiers[t].anchor]

    def policy(self, identifier_type: str) -> IdentifierPolicy:
        return self.identifiers[identifier_type]

    def model(self, name: str) -> EventModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)
