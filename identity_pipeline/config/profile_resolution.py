"""Profile Resolution config: sources, identifiers, ordered matching rules, guardrails, golden record.

Validated up front (see docs/configuration.md). Checks that need the real source columns (unknown column,
SQL expression that does not bind, missing primary key column, missing file) run in
`identity_pipeline.core.profile_resolution.sources.validate_sources`, still before anything is written.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from identity_pipeline.config.sources import SourceLocation, StrictModel

# scorer name -> top of its scale (0-100 or 0-1)
SCORER_SCALES: dict[str, float] = {
    "ratio": 100.0,
    "partial_ratio": 100.0,
    "token_sort_ratio": 100.0,
    "token_set_ratio": 100.0,
    "WRatio": 100.0,
    "QRatio": 100.0,
    "jaro_winkler": 1.0,
    "jaro": 1.0,
    "normalized_levenshtein": 1.0,
    "normalized_indel": 1.0,
}
IDENTIFIER_STANDARDIZERS = ("email", "phone", "name", "postal_code", "domain", "exact")
STRATEGIES = ("source_priority", "most_recent", "most_frequent", "longest", "first_non_null")
Strategy = Literal["source_priority", "most_recent", "most_frequent", "longest", "first_non_null"]
# Column names the engine's tables use next to the canonical fields: a canonical field may not take them.
RESERVED_FIELD_NAMES = frozenset(
    {
        "rid",
        "source",
        "record_id",
        "source_priority",
        "order_ts",
        "dinmo_id",
        "record_count",
        "source_count",
        "sources",
        "first_seen",
        "last_updated",
        "representative_source",
        "representative_entity_key_name",
        "representative_entity_key_value",
    }
)
_NAME_RE = re.compile(r"^[a-z0-9_]+$")


class SqlField(StrictModel):
    """A canonical field computed by a DuckDB SQL expression over the source's own columns."""

    sql: str = Field(min_length=1)


class ProfileSourceConfig(SourceLocation):
    """One profile-like source model: where it lives, its key, priority and canonical field mapping."""

    name: str
    primary_key: str = Field(min_length=1)
    priority: int = Field(ge=1)
    order_by: str | None = None
    fields: dict[str, str | SqlField] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"source name {v!r} must match [a-z0-9_]+")
        return v

    @field_validator("fields")
    @classmethod
    def _field_names(cls, v: dict[str, str | SqlField]) -> dict[str, str | SqlField]:
        for key, spec in v.items():
            if not _NAME_RE.match(key):
                raise ValueError(f"canonical field name {key!r} must match [a-z0-9_]+")
            if key in RESERVED_FIELD_NAMES:
                raise ValueError(
                    f"canonical field name {key!r} is reserved by the output tables; "
                    f"reserved: {', '.join(sorted(RESERVED_FIELD_NAMES))}"
                )
            if isinstance(spec, str) and not spec.strip():
                raise ValueError(f"field {key!r}: empty source column name")
        return v

    @model_validator(mode="after")
    def _order_by_is_a_field(self) -> ProfileSourceConfig:
        if self.order_by is not None and self.order_by not in self.fields:
            raise ValueError(
                f"source {self.name!r}: order_by {self.order_by!r} is not one of its canonical fields "
                f"({', '.join(self.fields)})"
            )
        return self


class IdentifierConfig(StrictModel):
    """A canonical field used for matching: how to standardize it and which values never match."""

    standardizer: Literal["email", "phone", "name", "postal_code", "domain", "exact"]
    default_region: str | None = None
    gmail_dots: bool = False
    blocked_values: list[str] = Field(default_factory=list)
    blocked_patterns: list[str] = Field(default_factory=list)
    max_records_per_value: int | None = Field(default=None, ge=1)
    max_values_per_profile: int | None = Field(default=None, ge=1)

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        for i, pat in enumerate(v):
            try:
                re.compile(pat)
            except re.error as err:
                raise ValueError(
                    f"blocked_patterns[{i}] {pat!r} is not a valid regular expression: {err}"
                ) from None
        return v

    @model_validator(mode="after")
    def _options_fit_standardizer(self) -> IdentifierConfig:
        if self.default_region is not None and self.standardizer != "phone":
            raise ValueError("default_region only applies to standardizer 'phone'")
        if self.gmail_dots and self.standardizer != "email":
            raise ValueError("gmail_dots only applies to standardizer 'email'")
        return self


class FuzzyCondition(StrictModel):
    field: str
    scorer: str
    threshold: float

    @model_validator(mode="after")
    def _scorer_and_scale(self) -> FuzzyCondition:
        if self.scorer not in SCORER_SCALES:
            raise ValueError(f"unknown scorer {self.scorer!r}; valid scorers: {', '.join(SCORER_SCALES)}")
        top = SCORER_SCALES[self.scorer]
        if not 0 <= self.threshold <= top:
            raise ValueError(
                f"threshold {self.threshold} is off the scale of scorer {self.scorer!r} (expected 0..{top:g})"
            )
        return self


class Condition(StrictModel):
    """Exactly one of `exact: field` or `fuzzy: {field, scorer, threshold}`."""

    exact: str | None = None
    fuzzy: FuzzyCondition | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        if (self.exact is None) == (self.fuzzy is None):
            raise ValueError(
                "a condition is exactly one of 'exact: <field>' or 'fuzzy: {field, scorer, threshold}'"
            )
        return self

    @property
    def field(self) -> str:
        return self.exact if self.exact is not None else self.fuzzy.field  # type: ignore[union-attr]


class RuleConfig(StrictModel):
    name: str
    conditions: list[Condition] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v) or v == "singleton":
            raise ValueError(f"rule name {v!r} must match [a-z0-9_]+ and not be 'singleton'")
        return v

    @model_validator(mode="after")
    def _has_anchor(self) -> RuleConfig:
        if not self.anchor_fields:
            raise ValueError(
                f"rule {self.name!r} has no exact condition: every rule needs at least one "
                "'exact: <field>' condition (the anchor); fuzzy conditions are only evaluated between "
                "records sharing the anchor"
            )
        fields = [c.field for c in self.conditions]
        dup = sorted({f for f in fields if fields.count(f) > 1})
        if dup:
            raise ValueError(f"rule {self.name!r} uses field(s) {', '.join(dup)} in more than one condition")
        return self

    @property
    def anchor_fields(self) -> list[str]:
        return [c.exact for c in self.conditions if c.exact is not None]

    @property
    def fuzzy_conditions(self) -> list[FuzzyCondition]:
        return [c.fuzzy for c in self.conditions if c.fuzzy is not None]


class GoldenRecordConfig(StrictModel):
    default_strategy: Strategy = "source_priority"
    fields: dict[str, Strategy] = Field(default_factory=dict)


class ProfileResolutionConfig(StrictModel):
    sources: list[ProfileSourceConfig] = Field(min_length=1)
    identifiers: dict[str, IdentifierConfig] = Field(min_length=1)
    rules: list[RuleConfig] = Field(min_length=1)
    max_cluster_size: int | None = Field(default=None, ge=2)
    golden_record: GoldenRecordConfig = Field(default_factory=GoldenRecordConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> ProfileResolutionConfig:
        problems: list[str] = []
        for attr in ("name", "priority"):
            seen: dict[object, int] = {}
            for i, s in enumerate(self.sources):
                key = getattr(s, attr)
                if key in seen:
                    problems.append(
                        f"sources.{i}.{attr}: {key!r} is already used by sources.{seen[key]}; "
                        f"source {attr}s must be unique"
                    )
                seen.setdefault(key, i)
        fields = self.canonical_fields()
        for ident in self.identifiers:
            if ident not in fields:
                problems.append(
                    f"identifiers.{ident}: no source maps a canonical field {ident!r} "
                    f"(canonical fields: {', '.join(fields)})"
                )
        names: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.name in names:
                problems.append(f"rules.{i}.name: {rule.name!r} is already used by rules.{names[rule.name]}")
            names.setdefault(rule.name, i)
            for j, cond in enumerate(rule.conditions):
                kind = "exact" if cond.exact is not None else "fuzzy.field"
                if cond.field not in self.identifiers:
                    problems.append(
                        f"rules.{i}.conditions.{j}.{kind}: {cond.field!r} (rule {rule.name!r}) "
                        "is not a configured "
                        f"identifier; identifiers: {', '.join(self.identifiers)}"
                    )
        for name in self.golden_record.fields:
            if name not in fields:
                problems.append(
                    f"golden_record.fields.{name}: not a canonical field; "
                    f"canonical fields: {', '.join(fields)}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- helpers used by the engine -------------------------------------------------------------------
    def canonical_fields(self) -> list[str]:
        """Every canonical field, in order of first appearance across sources."""
        out: list[str] = []
        for s in self.sources:
            for f in s.fields:
                if f not in out:
                    out.append(f)
        return out

    def order_fields(self) -> list[str]:
        return sorted({s.order_by for s in self.sources if s.order_by is not None})

    def golden_fields(self) -> list[str]:
        """Canonical fields carried into identity_golden (order fields become first_seen/last_updated)."""
        order = set(self.order_fields())
        return [f for f in self.canonical_fields() if f not in order]

    def strategy_for(self, field: str) -> str:
        return self.golden_record.fields.get(field, self.golden_record.default_strategy)

    def source(self, name: str) -> ProfileSourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)
