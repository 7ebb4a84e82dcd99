"""Anchored candidate pairs (DuckDB self-join on the rule's exact fields) + vectorised rapidfuzz scoring.

A pair is recorded once, with the first rule (config order) it satisfies. Later rules never re-score a pair
an earlier rule already matched (anti-join), so the work per rule only covers the still-unmatched pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd
from rapidfuzz import distance, fuzz, process

from identity_pipeline.config.profile_resolution import ProfileResolutionConfig
from identity_pipeline.core.profile_resolution.identifiers import usable_wide_sql
from identity_pipeline.core.source_io import quote_ident

SCHEMA = "pr_stage"
# float32 scores from rapidfuzz: a score equal to the threshold must pass (0.9 is 0.89999998 in float32)
SCORE_TOLERANCE = 1e-6
CHUNK = 2_000_000

SCORERS: dict[str, Callable[..., float]] = {
    "ratio": fuzz.ratio,
    "partial_ratio": fuzz.partial_ratio,
    "token_sort_ratio": fuzz.token_sort_ratio,
    "token_set_ratio": fuzz.token_set_ratio,
    "WRatio": fuzz.WRatio,
    "QRatio": fuzz.QRatio,
    "jaro_winkler": distance.JaroWinkler.normalized_similarity,
    "jaro": distance.Jaro.normalized_similarity,
    "normalized_levenshtein": distance.Levenshtein.normalized_similarity,
    "normalized_indel": distance.Indel.normalized_similarity,
}


def score_pairs(left: pd.Series, right: pd.Series, scorer: str) -> np.ndarray:
    """Scores of aligned value pairs (one vectorised rapidfuzz call); a null on either side scores NaN."""
    null = (left.isna() | right.isna()).to_numpy()
    a = left.fillna("").astype(str).tolist()
    b = right.fillna("").astype(str).tolist()
    if not a:
        return np.zeros(0, dtype=np.float64)
    scores = process.cpdist(a, b, scorer=SCORERS[scorer], workers=-1).astype(np.float64)
    scores[null] = np.nan
    return scores


def _scores_json(df: pd.DataFrame, fields: list[str]) -> pd.Series:
    if not fields:
        return pd.Series("{}", index=df.index, dtype="string")
    out = pd.Series("{", index=df.index, dtype="string")
    for i, f in enumerate(fields):
        sep = ", " if i else ""
        out = out + f'{sep}"{f}": ' + df[f"score_{i}"].round(4).astype(str).astype("string")
    return out + "}"


def build_match_pairs(con: duckdb.DuckDBPyConnection, pr: ProfileResolutionConfig) -> dict[str, int]:
    """pr_stage._pairs (rid_a < rid_b, rule, rule_rank, anchor_field, anchor_value, scores)."""
    idents = list(pr.identifiers)
    con.execute(f"create or replace table {SCHEMA}._usable as {usable_wide_sql(pr, idents)}")
    con.execute(
        f"""create or replace table {SCHEMA}._pairs (rid_a integer, rid_b integer, rule varchar,
            rule_rank integer, anchor_field varchar, anchor_value varchar, scores varchar)"""
    )
    metrics: dict[str, int] = {}
    for rank, rule in enumerate(pr.rules, start=1):
        anchors = rule.anchor_fields
        fuzzies = rule.fuzzy_conditions
        on = " and ".join(f"l.{quote_ident(a)} = r.{quote_ident(a)}" for a in anchors)
        anchor_value = " || '|' || ".join(f"l.{quote_ident(a)}" for a in anchors)
        fuzzy_cols = "".join(
            f", l.{quote_ident(c.field)} as fa_{i}, r.{quote_ident(c.field)} as fb_{i}"
            for i, c in enumerate(fuzzies)
        )
        candidates = f"""
            select l.rid as rid_a, r.rid as rid_b, {anchor_value} as anchor_value{fuzzy_cols}
            from {SCHEMA}._usable l join {SCHEMA}._usable r on {on} and l.rid < r.rid
            where not exists (select 1 from {SCHEMA}._pairs p where p.rid_a = l.rid and p.rid_b = r.rid)
        """
        meta = f"'{rule.name}', {rank}, '{','.join(anchors)}'"
        if not fuzzies:
            n0 = con.execute(f"select count(*) from {SCHEMA}._pairs").fetchone()[0]
            con.execute(
                f"insert into {SCHEMA}._pairs "
                f"select rid_a, rid_b, {meta}, anchor_value, '{{}}' from ({candidates})"
            )
            n1 = con.execute(f"select count(*) from {SCHEMA}._pairs").fetchone()[0]
            metrics[f"pairs_{rule.name}"] = int(n1 - n0)
            metrics[f"candidates_{rule.name}"] = int(n1 - n0)
            continue
        con.execute(f"create or replace temp table _pr_cand as {candidates}")
        total = con.execute("select count(*) from _pr_cand").fetchone()[0]
        matched = 0
        for offset in range(0, total, CHUNK):
            df = con.execute(
                f"select * from _pr_cand order by rid_a, rid_b limit {CHUNK} offset {offset}"
            ).df()
            keep = np.ones(len(df), dtype=bool)
            for i, c in enumerate(fuzzies):
                s = score_pairs(df[f"fa_{i}"], df[f"fb_{i}"], c.scorer)
                df[f"score_{i}"] = s
                keep &= ~np.isnan(s) & (s >= c.threshold - SCORE_TOLERANCE)
            df = df[keep]
            if df.empty:
                continue
            out = pd.DataFrame(
                {
                    "rid_a": df["rid_a"].astype("int32"),
                    "rid_b": df["rid_b"].astype("int32"),
                    "anchor_value": df["anchor_value"].astype("string"),
                    "scores": _scores_json(df, [c.field for c in fuzzies]),
                }
            )
            con.register("_pr_scored", out)
            con.execute(
                f"insert into {SCHEMA}._pairs "
                f"select rid_a, rid_b, {meta}, anchor_value, scores from _pr_scored"
            )
            con.unregister("_pr_scored")
            matched += len(out)
        con.execute("drop table if exists _pr_cand")
        metrics[f"candidates_{rule.name}"] = int(total)
        metrics[f"pairs_{rule.name}"] = int(matched)
    metrics["match_pairs"] = int(con.execute(f"select count(*) from {SCHEMA}._pairs").fetchone()[0])
    write_match_pairs(con, status_sql="cast(null as varchar)")
    return metrics


def write_match_pairs(con: duckdb.DuckDBPyConnection, *, status_sql: str, status_join: str = "") -> None:
    """pr_stage.match_pairs from pr_stage._pairs with record keys instead of internal rids."""
    con.execute(
        f"""
        create or replace table {SCHEMA}.match_pairs as
        select a.source as source_a, a.record_id as record_id_a,
               b.source as source_b, b.record_id as record_id_b,
               p.rule, p.rule_rank, p.anchor_field, p.anchor_value, p.scores, {status_sql} as status
        from {SCHEMA}._pairs p
        join {SCHEMA}.source_records a on a.rid = p.rid_a
        join {SCHEMA}.source_records b on b.rid = p.rid_b
        {status_join}
        order by source_a, record_id_a, source_b, record_id_b
        """
    )
