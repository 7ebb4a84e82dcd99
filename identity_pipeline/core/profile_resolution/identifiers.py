"""Standardize identifiers; mark blocked values and values over `max_records_per_value`.

Standardizers (core/standardize.py) run once per distinct raw value in pandas; everything else is SQL.
"""

from __future__ import annotations

import re

import duckdb
import pandas as pd

from identity_pipeline.config.profile_resolution import IdentifierConfig, ProfileResolutionConfig
from identity_pipeline.core.source_io import quote_ident
from identity_pipeline.core.standardize import standardize

SCHEMA = "pr_stage"


def standardize_identifier(values: pd.Series, cfg: IdentifierConfig) -> pd.Series:
    opts: dict[str, object] = {}
    if cfg.standardizer == "phone":
        opts["default_region"] = cfg.default_region
    if cfg.standardizer == "email":
        opts["gmail_dots"] = cfg.gmail_dots
    return standardize(values, cfg.standardizer, **opts)


def blocked_mask(values: pd.Series, cfg: IdentifierConfig) -> pd.Series:
    """True where a standardized value is a blocked literal (standardized first) or matches a pattern."""
    mask = pd.Series(False, index=values.index)
    if cfg.blocked_values:
        lits = standardize_identifier(pd.Series(cfg.blocked_values, dtype="string"), cfg)
        literal_set = set(lits.dropna()) | set(cfg.blocked_values)
        mask |= values.isin(literal_set).fillna(False).astype(bool)
    for pat in cfg.blocked_patterns:
        rx = re.compile(pat)
        mask |= values.map(lambda v, rx=rx: bool(rx.search(v)) if isinstance(v, str) else False).astype(bool)
    return mask


def build_identifier_values(con: duckdb.DuckDBPyConnection, pr: ProfileResolutionConfig) -> None:
    """pr_stage.identifier_values (source, record_id, identifier, raw_value, value, status) + internal rid.

    Raw values that standardize to nothing (e.g. an invalid email) are not observations and are left out.
    status: `blocked` (blocked literal/pattern), `over_shared` (more than max_records_per_value records hold
    the value; blocked values are not counted), else `usable`.
    """
    parts = []
    for ident, cfg in pr.identifiers.items():
        col = quote_ident(ident)
        distinct = con.execute(
            f"select distinct {col} as raw_value from {SCHEMA}.source_records where {col} is not null"
        ).df()
        raw = distinct["raw_value"].astype("string")
        std = standardize_identifier(raw, cfg)
        mapping = pd.DataFrame({"raw_value": raw, "value": std})
        mapping = mapping[mapping["value"].notna()].copy()
        # Blocked is decided per distinct standardized value.
        uniq = pd.Series(mapping["value"].unique(), dtype="string")
        blocked = set(uniq[blocked_mask(uniq, cfg).to_numpy()])
        mapping["blocked"] = mapping["value"].isin(blocked)
        mapping = mapping.astype({"raw_value": "string", "value": "string", "blocked": "bool"})
        name = f"_pr_map_{len(parts)}"
        con.register(name, mapping)
        limit = "null" if cfg.max_records_per_value is None else str(cfg.max_records_per_value)
        con.execute(
            f"""
            create or replace temp table _pr_iv_{len(parts)} as
            with v as (
                select r.rid, r.source, r.record_id, '{ident}' as identifier,
                       r.{col} as raw_value, m.value, m.blocked
                from {SCHEMA}.source_records r join {name} m on r.{col} = m.raw_value
            ), c as (
                select *, count(*) filter (where not blocked) over (partition by value) as n from v
            )
            select rid, source, record_id, identifier, raw_value, value,
                   case when blocked then 'blocked'
                        when {limit} is not null and n > {limit} then 'over_shared'
                        else 'usable' end as status
            from c
            """
        )
        con.unregister(name)
        parts.append(f"select * from _pr_iv_{len(parts)}")
    con.execute(
        f"create or replace table {SCHEMA}.identifier_values as "
        f"select * from ({' union all '.join(parts)}) order by identifier, rid"
    )
    for i in range(len(parts)):
        con.execute(f"drop table if exists _pr_iv_{i}")


def usable_wide_sql(pr: ProfileResolutionConfig, identifiers: list[str]) -> str:
    """SELECT rid + one column per identifier holding the record's usable value (null otherwise)."""
    cols = ", ".join(
        f"max(value) filter (where identifier = '{i}' and status = 'usable') as {quote_ident(i)}"
        for i in identifiers
    )
    names = ", ".join(f"'{i}'" for i in identifiers)
    return (
        f"select rid, {cols} from {SCHEMA}.identifier_values "
        f"where status = 'usable' and identifier in ({names}) group by rid"
    )
