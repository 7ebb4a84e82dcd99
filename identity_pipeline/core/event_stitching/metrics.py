"""Run metrics of one window (overall, per model, per identifier type) and global graph metrics for tests.

The store computes the global metrics in SQL on the whole persisted graph; `active_conflicts` and
`known_profile_share` here are the same definitions on an in-memory `GraphState`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from identity_pipeline.core.event_stitching.state import GraphState

REASONS = ("no_matchable_identifier", "conflicted_identifier_value", "limit_conflict")
AUDIT_METRICS = {
    "blocked_value": "values_blocked",
    "expired_value": "values_expired",
    "quarantined_value": "values_quarantined",
    "released_value": "values_released",
    "demoted_value": "values_demoted",
    "reactivated_value": "values_reactivated",
    "limit_conflict": "limit_conflicts",
}


def _event_counts(statuses: np.ndarray, reasons: np.ndarray) -> dict[str, float]:
    n = len(statuses)
    stitched = int((statuses == "stitched").sum()) if n else 0
    out: dict[str, float] = {"events_processed": n, "events_stitched": stitched}
    out["events_excluded"] = n - stitched
    for r in REASONS:
        out[f"events_excluded_{r}"] = int((reasons == r).sum()) if n else 0
    out["stitch_rate"] = stitched / n if n else 0.0
    return out


def _objects(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=object, na_value=None) if len(s) else np.empty(0, dtype=object)


def window_metrics(
    attribution: pd.DataFrame,
    audit: pd.DataFrame,
    observations: pd.DataFrame,
    profiles_created: int,
    profiles_merged: int,
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """(metrics, metrics_by_model, metrics_by_identifier_type) for one window's outputs.

    Audit-based counts are distinct values (per type: distinct values of that type), except
    `limit_conflicts`, which counts audit rows. Counting is vectorised per model / per type (a handful):
    a window holds hundreds of thousands of events and observations.
    """
    models = _objects(attribution["model"])
    statuses = _objects(attribution["status"])
    reasons = _objects(attribution["reason"])
    metrics = _event_counts(statuses, reasons)
    metrics["profiles_created"] = profiles_created
    metrics["profiles_merged"] = profiles_merged
    metrics["observations"] = len(observations)
    a_rows = list(
        zip(
            audit["audit_type"].tolist(),
            audit["identifier_type"].tolist(),
            audit["value"].tolist(),
            strict=True,
        )
    )
    distinct: dict[str, set] = {k: set() for k in AUDIT_METRICS}
    rows_by_kind: Counter = Counter()
    by_type_distinct: dict[tuple[str, str], set] = {}
    by_type_rows: Counter = Counter()
    for kind, t, v in a_rows:
        if kind not in AUDIT_METRICS:
            continue
        distinct[kind].add((t, v))
        rows_by_kind[kind] += 1
        by_type_distinct.setdefault((t, kind), set()).add(v)
        by_type_rows[(t, kind)] += 1
    for kind, name in AUDIT_METRICS.items():
        metrics[name] = rows_by_kind[kind] if kind == "limit_conflict" else len(distinct[kind])

    model_names = sorted(set(pd.unique(models).tolist())) if len(models) else []
    by_model = pd.DataFrame(
        [{"model": m, **_event_counts(statuses[models == m], reasons[models == m])} for m in model_names],
        columns=["model", "events_processed", "events_stitched", "events_excluded"]
        + [f"events_excluded_{r}" for r in REASONS]
        + ["stitch_rate"],
    )

    type_cols = [
        "identifier_type",
        "observations",
        "distinct_values",
        "blocked_observations",
        "events_decided",
    ]
    type_cols += list(AUDIT_METRICS.values())
    o_types = _objects(observations["identifier_type"])
    o_values = _objects(observations["value"])
    o_blocked = observations["blocked"].to_numpy(dtype=bool) if len(observations) else np.zeros(0, bool)
    n_obs: dict[str, int] = {}
    n_blocked: dict[str, int] = {}
    values: dict[str, int] = {}
    for t in pd.unique(o_types).tolist() if len(o_types) else []:
        sel = o_types == t
        n_obs[t] = int(sel.sum())
        n_blocked[t] = int((sel & o_blocked).sum())
        values[t] = len(pd.unique(o_values[sel]))
    decided_types = _objects(attribution["decided_by_identifier_type"])[statuses == "stitched"]
    decided = pd.Series(decided_types, dtype=object).dropna().value_counts().to_dict()
    types = sorted(set(n_obs) | {t for _, t, _ in a_rows if t is not None})
    rows = []
    for t in types:
        row = {
            "identifier_type": t,
            "observations": n_obs.get(t, 0),
            "distinct_values": values.get(t, 0),
            "blocked_observations": n_blocked.get(t, 0),
            "events_decided": decided.get(t, 0),
        }
        for kind, name in AUDIT_METRICS.items():
            row[name] = (
                by_type_rows[(t, kind)]
                if kind == "limit_conflict"
                else len(by_type_distinct.get((t, kind), ()))
            )
        rows.append(row)
    by_type = pd.DataFrame(rows, columns=type_cols)
    return metrics, by_model, by_type


def active_conflicts(state: GraphState) -> int:
    """Non-quarantined values active on more than one active profile (should be 0 after protections)."""
    pv = state.profile_values
    if len(pv) == 0:
        return 0
    active_pids = set(state.profiles.loc[state.profiles["status"] == "active", "dinmo_stitched_profile_id"])
    act = pv[(pv["status"] == "active") & pv["dinmo_stitched_profile_id"].isin(active_pids)]
    counts = act.groupby(["identifier_type", "value"])["dinmo_stitched_profile_id"].nunique()
    counts = counts[counts > 1]
    if len(counts) == 0:
        return 0
    reg = state.value_registry.set_index(["identifier_type", "value"])["quarantined"]
    quarantined = reg.reindex(counts.index).fillna(False).astype(bool)
    return int((~quarantined).sum())


def known_profile_share(state: GraphState) -> float:
    """Share of active profiles that are Known (hold at least one active anchor value)."""
    p = state.profiles[state.profiles["status"] == "active"]
    return float(p["is_known"].mean()) if len(p) else 0.0


def coded_window_metrics(
    *,
    a_status: np.ndarray,
    a_reason: np.ndarray,
    a_type: np.ndarray,
    e_model: np.ndarray,
    model_names: list[str],
    au_kind: np.ndarray,
    au_type: np.ndarray,
    au_value: np.ndarray,
    audit_kinds: tuple[str, ...],
    o_type: np.ndarray,
    o_value: np.ndarray,
    o_blocked: np.ndarray,
    type_names: tuple[str, ...],
    profiles_created: int,
    profiles_merged: int,
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """`window_metrics` on integer codes (what the store holds): the same metrics and breakdowns.

    Codes: `a_status` 0 stitched / 1 excluded, `a_reason` 1 + index into REASONS (0 none), types index
    `type_names`, models index `model_names`, audit kinds index `audit_kinds`; values are any integer ids.
    """
    a_status = np.asarray(a_status, dtype=np.int64)
    a_reason = np.asarray(a_reason, dtype=np.int64)

    n_reasons = len(REASONS) + 1

    def event_counts(n: int, stitched: int, by_reason: np.ndarray) -> dict[str, float]:
        n, stitched = int(n), int(stitched)
        out: dict[str, float] = {"events_processed": n, "events_stitched": stitched}
        out["events_excluded"] = n - stitched
        for i, r in enumerate(REASONS, start=1):
            out[f"events_excluded_{r}"] = int(by_reason[i])
        out["stitch_rate"] = stitched / n if n else 0.0
        return out

    metrics = event_counts(len(a_status), (a_status == 0).sum(), np.bincount(a_reason, minlength=n_reasons))
    metrics["profiles_created"] = profiles_created
    metrics["profiles_merged"] = profiles_merged
    metrics["observations"] = len(o_type)
    kinds = np.asarray(audit_kinds, dtype=object)[np.asarray(au_kind, dtype=np.int64)] if len(au_kind) else []
    kinds = np.asarray(kinds, dtype=object)
    au_type = np.asarray(au_type, dtype=np.int64)
    au_value = np.asarray(au_value, dtype=np.int64)
    for kind, name in AUDIT_METRICS.items():
        sel = kinds == kind
        if kind == "limit_conflict":
            metrics[name] = int(sel.sum())
        else:
            metrics[name] = len(np.unique(au_value[sel])) if sel.any() else 0

    e_model = np.asarray(e_model, dtype=np.int64)
    n_models = len(model_names)
    per_model = np.bincount(e_model, minlength=n_models)
    stitched_by_model = np.bincount(e_model[a_status == 0], minlength=n_models)
    reason_by_model = np.bincount(e_model * n_reasons + a_reason, minlength=n_models * n_reasons)
    reason_by_model = reason_by_model.reshape(n_models, n_reasons)
    present = sorted(np.flatnonzero(per_model).tolist(), key=lambda m: model_names[m])
    by_model = pd.DataFrame(
        [
            {
                "model": model_names[m],
                **event_counts(per_model[m], stitched_by_model[m], reason_by_model[m]),
            }
            for m in present
        ],
        columns=["model", "events_processed", "events_stitched", "events_excluded"]
        + [f"events_excluded_{r}" for r in REASONS]
        + ["stitch_rate"],
    )

    o_type = np.asarray(o_type, dtype=np.int64)
    o_value = np.asarray(o_value, dtype=np.int64)
    o_blocked = np.asarray(o_blocked, dtype=bool)
    n_types = len(type_names)
    n_obs = np.bincount(o_type, minlength=n_types)
    n_blocked = np.bincount(o_type[o_blocked], minlength=n_types)
    # distinct values per type (value ids are small non-negative integers: a mask, no sort)
    if len(o_value):
        seen = np.zeros(int(o_value.max()) + 1, dtype=bool)
        seen[o_value] = True
        type_of = np.zeros(len(seen), dtype=np.int64)
        type_of[o_value] = o_type
        distinct = np.bincount(type_of[seen], minlength=n_types)
    else:
        distinct = np.zeros(n_types, dtype=np.int64)
    a_type = np.asarray(a_type, dtype=np.int64)
    stitched_types = a_type[(np.asarray(a_status) == 0) & (a_type >= 0)]
    decided = np.bincount(stitched_types, minlength=n_types)
    used = set(np.flatnonzero(n_obs).tolist()) | set(au_type[au_type >= 0].tolist())
    rows = []
    for t in sorted(used, key=lambda i: type_names[i]):
        row = {
            "identifier_type": type_names[t],
            "observations": int(n_obs[t]),
            "distinct_values": int(distinct[t]),
            "blocked_observations": int(n_blocked[t]),
            "events_decided": int(decided[t]),
        }
        for kind, name in AUDIT_METRICS.items():
            sel = (kinds == kind) & (au_type == t) if len(kinds) else np.zeros(0, bool)
            if kind == "limit_conflict":
                row[name] = int(sel.sum())
            else:
                row[name] = len(np.unique(au_value[sel])) if sel.any() else 0
        rows.append(row)
    type_cols = [
        "identifier_type",
        "observations",
        "distinct_values",
        "blocked_observations",
        "events_decided",
    ]
    by_type = pd.DataFrame(rows, columns=type_cols + list(AUDIT_METRICS.values()))
    return metrics, by_model, by_type
