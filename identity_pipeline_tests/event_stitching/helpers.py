"""Small builders for engine tests: configs, events as dicts, running windows, compact graph views."""

from __future__ import annotations

from typing import Any

import pandas as pd

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.engine import WindowResult, stitch_window
from identity_pipeline.core.event_stitching.observations import extract_observations
from identity_pipeline.core.event_stitching.reference import profile_id_for
from identity_pipeline.core.event_stitching.state import GraphState

T0 = pd.Timestamp("2026-11-01 00:00:00")

BASE_IDENTIFIERS: dict[str, dict[str, Any]] = {
    "user_id": {"priority": 1, "anchor": True, "standardize": "trim"},
    "email": {"priority": 2, "anchor": True, "standardize": "email", "blocked_values": ["test@test.com"]},
    "anonymous_id": {"priority": 3, "standardize": "trim"},
    "device_id": {"priority": 4, "standardize": "trim"},
    "cookie_id": {"priority": 5, "standardize": "trim", "max_profiles_per_value": 1},
    "session_id": {"priority": 6, "standardize": "trim", "lifetime": "30m"},
    "ip_address": {"priority": 7, "standardize": "trim"},
}


def make_config(
    released: list[dict] | None = None, models: list[str] | None = None, **overrides: dict[str, Any]
) -> EventStitchingConfig:
    idents = {k: dict(v) for k, v in BASE_IDENTIFIERS.items()}
    for t, opts in overrides.items():
        idents.setdefault(t, {}).update(opts)
    cols = {t: t for t in idents}
    return EventStitchingConfig.model_validate(
        {
            "window": "daily",
            "start": "2026-11-01",
            "models": [
                {
                    "name": m,
                    "path": f"{m}.csv",
                    "event_id": "event_id",
                    "timestamp": "event_ts",
                    "identifiers": cols,
                }
                for m in (models or ["web", "app"])
            ],
            "identifiers": idents,
            "released_values": released or [],
        }
    )


def config_with_models(
    models: list[dict[str, Any]], base: EventStitchingConfig | None = None
) -> EventStitchingConfig:
    """`base`'s identifiers (default `make_config()`) with these event models (source kinds, column names)."""
    data = (base or make_config()).model_dump()
    return EventStitchingConfig.model_validate(
        {"window": "daily", "start": "2026-11-01", "identifiers": data["identifiers"], "models": models}
    )


def ev(eid: str, minute: float, model: str = "web", **ids: str | None) -> dict[str, Any]:
    """An event `minute` minutes after T0 with identifier values keyed by type."""
    return {"model": model, "event_id": eid, "event_ts": T0 + pd.Timedelta(minutes=minute), **ids}


def frames(events: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events frame, long identifier frame) as the store hands them to the engine."""
    ev_rows, long_rows = [], []
    for e in events:
        ev_rows.append((e["model"], str(e["event_id"]), e["event_ts"]))
        for k, v in e.items():
            if k in ("model", "event_id", "event_ts"):
                continue
            for one in v if isinstance(v, list) else [v]:
                long_rows.append((e["model"], str(e["event_id"]), e["event_ts"], k, one))
    events_df = pd.DataFrame(ev_rows, columns=["model", "event_id", "event_ts"])
    events_df["event_ts"] = events_df["event_ts"].astype("datetime64[us]")
    long = pd.DataFrame(long_rows, columns=["model", "event_id", "event_ts", "identifier_type", "raw_value"])
    long["event_ts"] = long["event_ts"].astype("datetime64[us]")
    return events_df, long


def stitch(
    state: GraphState, events: list[dict], config: EventStitchingConfig, key: str = "w0"
) -> WindowResult:
    events_df, long = frames(events)
    obs = extract_observations(long, config)
    return stitch_window(state, events_df, obs, config, key)


def run_windows(
    config: EventStitchingConfig, windows: list[list[dict]]
) -> tuple[GraphState, list[WindowResult]]:
    state = GraphState.empty()
    results = []
    for i, w in enumerate(windows):
        r = stitch(state, w, config, f"w{i}")
        state = r.state
        results.append(r)
    return state, results


def run(config: EventStitchingConfig, events: list[dict]) -> tuple[GraphState, WindowResult]:
    state, results = run_windows(config, [events])
    return state, results[0]


def pid(eid: str, model: str = "web") -> str:
    return profile_id_for(model, eid)


def graph(state: GraphState) -> dict[str, dict[str, Any]]:
    """pid -> {"status", "merged_to", "known", "values": {(type, value): membership status}}."""
    out: dict[str, dict[str, Any]] = {}
    for r in state.profiles.to_dict("records"):
        out[r["dinmo_stitched_profile_id"]] = {
            "status": r["status"],
            "merged_to": r["merged_to_dinmo_stitched_profile_id"],
            "known": bool(r["is_known"]),
            "values": {},
        }
    for r in state.profile_values.to_dict("records"):
        out[r["dinmo_stitched_profile_id"]]["values"][(r["identifier_type"], r["value"])] = r["status"]
    return out


def values_of(state: GraphState, profile: str) -> dict[tuple[str, str], str]:
    return graph(state)[profile]["values"]


def active_profiles(state: GraphState) -> set[str]:
    p = state.profiles
    return set(p.loc[p["status"] == "active", "dinmo_stitched_profile_id"])


def redirects(state: GraphState) -> dict[str, str]:
    return dict(zip(state.redirects["from_id"], state.redirects["to_id"], strict=True))


def quarantined(state: GraphState) -> set[tuple[str, str]]:
    r = state.value_registry
    return set(zip(r.loc[r["quarantined"], "identifier_type"], r.loc[r["quarantined"], "value"], strict=True))


def attribution(*results: WindowResult) -> dict[str, tuple[Any, str, Any]]:
    """event_id -> (profile id | None, status, reason | None)."""
    out = {}
    for res in results:
        for r in res.attribution.to_dict("records"):
            out[r["event_id"]] = (r["dinmo_stitched_profile_id"], r["status"], r["reason"])
    return out


def audits(result: WindowResult, kind: str) -> list[dict[str, Any]]:
    a = result.audit_events
    return a[a["audit_type"] == kind].to_dict("records")
