"""Long identifier rows of a window -> standardized observations with a `blocked` flag (spec rules 1-2).

Vectorised per identifier type: one `standardize` call per type, blocked literals/patterns evaluated once per
distinct value.
"""

from __future__ import annotations

import pandas as pd

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.rules.blocked import blocked_mask
from identity_pipeline.core.standardize import standardize

OBSERVATION_COLUMNS = ["model", "event_id", "event_ts", "identifier_type", "value", "blocked"]


def empty_observations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": pd.Series([], dtype="object"),
            "event_id": pd.Series([], dtype="object"),
            "event_ts": pd.Series([], dtype="datetime64[us]"),
            "identifier_type": pd.Series([], dtype="object"),
            "value": pd.Series([], dtype="object"),
            "blocked": pd.Series([], dtype="bool"),
        }
    )


def extract_observations(events_long: pd.DataFrame, config: EventStitchingConfig) -> pd.DataFrame:
    """Rule 1 (standardize; null/empty is no observation) and rule 2's flag (blocked literal or pattern).

    Input: model, event_id, event_ts, identifier_type, raw_value. Rows of identifier types the config does
    not know are ignored. Output: model, event_id, event_ts, identifier_type, value, blocked.
    """
    if events_long is None or len(events_long) == 0:
        return empty_observations()
    parts = []
    for t, sub in events_long.groupby("identifier_type", sort=True):
        t = str(t)
        if t not in config.identifiers:
            continue
        pol = config.identifiers[t]
        values = standardize(sub["raw_value"], pol.standardize)
        keep = values.notna().to_numpy()
        if not keep.any():
            continue
        sub = sub.loc[keep]
        values = values[keep]
        parts.append(
            pd.DataFrame(
                {
                    "model": sub["model"].astype(str).to_numpy(dtype=object),
                    "event_id": sub["event_id"].astype(str).to_numpy(dtype=object),
                    "event_ts": pd.to_datetime(sub["event_ts"]).astype("datetime64[us]").to_numpy(),
                    "identifier_type": t,
                    "value": values.astype(str).to_numpy(dtype=object),
                    "blocked": blocked_mask(values, pol).to_numpy(dtype=bool),
                }
            )
        )
    if not parts:
        return empty_observations()
    out = pd.concat(parts, ignore_index=True)
    out["identifier_type"] = out["identifier_type"].astype(object)
    return out[OBSERVATION_COLUMNS]
