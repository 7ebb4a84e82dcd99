"""pandera schemas of the Profile Resolution output tables (checked in `pr_stage`, before publishing).

Integer columns accept any integer width (DuckDB `integer` arrives as int32, `bigint` as int64): the
contract is "an integer", not a storage width. `identity_golden` depends on the config (one column per
canonical field), so its schema is built from it.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from identity_pipeline.config.profile_resolution import ProfileResolutionConfig

_STR = pa.String
_TS = pa.DateTime

UNRESOLVED_REASONS = [
    "missing_primary_key",
    "duplicate_primary_key",
    "no_usable_identifier",
    "only_blocked_values",
    "cluster_too_large",
]
PAIR_STATUSES = ["applied", "rejected_conflict_limit", "rejected_cluster_too_large"]
HISTORY_CHANGES = ["merged", "split"]
REPORT_SECTIONS = ["totals", "source", "rule", "identifier", "dinmo_ids"]
DINMO_ID_PATTERN = r"^dm_[0-9a-f]{16}$"


def _int(*checks: pa.Check, nullable: bool = False) -> pa.Column:
    is_int = pa.Check(
        lambda s: pd.api.types.is_integer_dtype(s.dtype) or len(s) == 0,
        element_wise=False,
        name="integer_dtype",
        error="column must hold integers",
    )
    return pa.Column(None, [is_int, *checks], nullable=nullable)


def _nonempty() -> pa.Check:
    return pa.Check.str_length(min_value=1)


def _dinmo_id(**kw) -> pa.Column:
    return pa.Column(_STR, pa.Check.str_matches(DINMO_ID_PATTERN), **kw)


def lookup_schema(pr: ProfileResolutionConfig) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        name="identity_lookup",
        columns={
            "source": pa.Column(_STR, pa.Check.isin([s.name for s in pr.sources])),
            "record_id": pa.Column(_STR, _nonempty()),
            "dinmo_id": _dinmo_id(),
            "entered_by": pa.Column(_STR, pa.Check.isin(["singleton", *[r.name for r in pr.rules]])),
            "cluster_size": _int(pa.Check.ge(1)),
        },
        checks=[
            pa.Check(
                lambda df: (df["entered_by"] == "singleton") == (df["cluster_size"] == 1),
                name="singleton_iff_cluster_size_1",
                error="a record enters as 'singleton' exactly when its cluster has one record",
            ),
            pa.Check(
                lambda df: df.groupby("dinmo_id")["cluster_size"].transform("size") == df["cluster_size"],
                name="cluster_size_matches_rows",
                error="cluster_size equals the number of lookup rows holding the dinmo_id",
            ),
        ],
        unique=["source", "record_id"],
    )


def unresolved_schema(pr: ProfileResolutionConfig) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        name="identity_unresolved_records",
        columns={
            "source": pa.Column(_STR, pa.Check.isin([s.name for s in pr.sources])),
            "record_id": pa.Column(_STR, nullable=True),
            "reason": pa.Column(_STR, pa.Check.isin(UNRESOLVED_REASONS)),
            "detail": pa.Column(_STR, nullable=True),
        },
        checks=[
            pa.Check(
                lambda df: df["record_id"].notna() | (df["reason"] == "missing_primary_key"),
                name="record_id_only_null_for_missing_key",
            )
        ],
    )


def match_pairs_schema(pr: ProfileResolutionConfig, *, final: bool) -> pa.DataFrameSchema:
    """`final=False` is the match_pairs stage (status not decided yet); `final=True` after clustering."""
    sources = [s.name for s in pr.sources]
    status = (
        pa.Column(_STR, pa.Check.isin(PAIR_STATUSES))
        if final
        else pa.Column(_STR, pa.Check.isin(PAIR_STATUSES), nullable=True)
    )
    return pa.DataFrameSchema(
        name="match_pairs",
        columns={
            "source_a": pa.Column(_STR, pa.Check.isin(sources)),
            "record_id_a": pa.Column(_STR, _nonempty()),
            "source_b": pa.Column(_STR, pa.Check.isin(sources)),
            "record_id_b": pa.Column(_STR, _nonempty()),
            "rule": pa.Column(_STR, pa.Check.isin([r.name for r in pr.rules])),
            "rule_rank": _int(pa.Check.in_range(1, len(pr.rules))),
            "anchor_field": pa.Column(_STR),
            "anchor_value": pa.Column(_STR, _nonempty()),
            "scores": pa.Column(_STR, pa.Check.str_startswith("{")),
            "status": status,
        },
        checks=[
            pa.Check(
                lambda df: (df["source_a"] != df["source_b"]) | (df["record_id_a"] != df["record_id_b"]),
                name="no_self_pair",
            )
        ],
        unique=["source_a", "record_id_a", "source_b", "record_id_b"],
    )


def golden_schema(pr: ProfileResolutionConfig) -> pa.DataFrameSchema:
    columns: dict[str, pa.Column] = {"dinmo_id": _dinmo_id(unique=True)}
    for f in pr.golden_fields():
        columns[f] = pa.Column(_STR, nullable=True)
    columns.update(
        {
            "record_count": _int(pa.Check.ge(1)),
            "source_count": _int(pa.Check.in_range(1, len(pr.sources))),
            "sources": pa.Column(_STR, _nonempty()),
            "first_seen": pa.Column(_TS, nullable=True),
            "last_updated": pa.Column(_TS, nullable=True),
            "representative_source": pa.Column(_STR, pa.Check.isin([s.name for s in pr.sources])),
            "representative_entity_key_name": pa.Column(_STR, _nonempty()),
            "representative_entity_key_value": pa.Column(_STR, _nonempty()),
        }
    )
    return pa.DataFrameSchema(
        name="identity_golden",
        columns=columns,
        checks=[
            pa.Check(lambda df: df["source_count"] <= df["record_count"], name="sources_le_records"),
            pa.Check(
                lambda df: (
                    df["first_seen"].isna()
                    | df["last_updated"].isna()
                    | (df["first_seen"] <= df["last_updated"])
                ),
                name="first_seen_before_last_updated",
            ),
        ],
    )


def matched_ids_schema(pr: ProfileResolutionConfig) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        name="identity_matched_ids",
        columns={
            "dinmo_id": _dinmo_id(),
            "identifier_type": pa.Column(_STR, pa.Check.isin(list(pr.identifiers))),
            "value": pa.Column(_STR, _nonempty()),
            "record_count": _int(pa.Check.ge(1)),
            "sources": pa.Column(_STR, _nonempty()),
        },
        unique=["dinmo_id", "identifier_type", "value"],
    )


def report_schema(pr: ProfileResolutionConfig) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        name="identity_golden_report",
        columns={
            "section": pa.Column(_STR, pa.Check.isin(REPORT_SECTIONS)),
            "scope": pa.Column(_STR),
            "metric": pa.Column(_STR, _nonempty()),
            "value": pa.Column(float, nullable=True),
        },
        checks=[
            pa.Check(
                lambda df: (
                    ~df["metric"].str.endswith("_rate") | df["value"].isna() | df["value"].between(0, 1)
                ),
                name="rates_between_0_and_1",
            ),
        ],
        unique=["section", "scope", "metric"],
    )


def history_schema(pr: ProfileResolutionConfig) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        name="identity_dinmo_id_history",
        columns={
            "old_dinmo_id": pa.Column(_STR),
            "dinmo_id": pa.Column(_STR),
            "change": pa.Column(_STR, pa.Check.isin(HISTORY_CHANGES)),
            "run_number": _int(pa.Check.ge(1)),
            "detail": pa.Column(_STR, nullable=True),
        },
        checks=[pa.Check(lambda df: df["old_dinmo_id"] != df["dinmo_id"], name="old_id_differs")],
    )


# published table -> schema builder (the `match_pairs` entry is its final, post-clustering form)
SCHEMAS = {
    "identity_lookup": lookup_schema,
    "identity_unresolved_records": unresolved_schema,
    "identity_dinmo_id_history": history_schema,
    "match_pairs": lambda pr: match_pairs_schema(pr, final=True),
    "identity_golden": golden_schema,
    "identity_matched_ids": matched_ids_schema,
    "identity_golden_report": report_schema,
}
