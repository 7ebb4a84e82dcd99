"""Long identifier rows of a window -> standardized observations with a `blocked` flag (spec rules 1-2).

Both rules depend only on (identifier_type, raw value), so they run once per *distinct* pair
(`standardize_values`): `extract_observations` joins the result back onto the rows of a frame, the store
(`store.stage_window`) onto the window's rows as Arrow arrays, without moving the rows through pandas.
"""

from __future__ import annotations

import pandas as pd

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.rules.blocked import blocked_mask
from identity_pipeline.core.standardize import standardize

OBSERVATION_COLUMNS = ["model", "event_id", "event_ts", "identifier_type", "value", "blocked"]
STANDARDIZED_COLUMNS = ["identifier_type", "raw_value", "value", "blocked"]


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


def standardize_values(pairs: pd.DataFrame, config: EventStitchingConfig) -> pd.DataFrame:
    """Rule 1 (standardize; null/empty is no observation) and rule 2's flag (blocked literal or pattern) for
    (identifier_type, raw_value) pairs.

    Output: identifier_type, raw_value, value, blocked, one row per input pair whose type the config knows
    and whose value is not empty after standardization (object columns, `blocked` bool).
    """
    parts = []
    if pairs is not None and len(pairs):
        for t, sub in pairs.groupby("identifier_type", sort=True):
            t = str(t)
            if t not in config.identifiers:
                continue
            pol = config.identifiers[t]
            values = standardize(sub["raw_value"], pol.standardize)
            keep = values.notna().to_numpy()
            if not keep.any():
                continue
            values = values[keep]
            parts.append(
                pd.DataFrame(
                    {
                        "identifier_type": pd.Series([t] * int(keep.sum()), dtype=object),
                        "raw_value": pd.Series(sub["raw_value"].to_numpy(dtype=object)[keep], dtype=object),
                        "value": pd.Series(values.astype(str).to_numpy(dtype=object), dtype=object),
                        "blocked": blocked_mask(values, pol).to_numpy(dtype=bool),
                    }
                )
            )
    if not parts:
        return pd.DataFrame(
            {c: pd.Series([], dtype=bool if c == "blocked" else object) for c in STANDARDIZED_COLUMNS}
        )
    return pd.concat(parts, ignore_index=True)


def extract_observations(events_long: pd.DataFrame, config: EventStitchingConfig) -> pd.DataFrame:
    """Observations of long identifier rows: `standardize_values` of their distinct pairs, joined back.

    Input: model, event_id, event_ts, identifier_type, raw_value. Rows of identifier types the config does
    not know, and rows whose value is empty after standardization, are dropped. Output: model, event_id,
    event_ts, identifier_type, value, blocked (grouped by identifier type, input order within a type).
    """
    if events_long is None or len(events_long) == 0:
        return empty_observations()
    rows = pd.DataFrame(
        {
            "model": events_long["model"].astype(str).to_numpy(dtype=object),
            "event_id": events_long["event_id"].astype(str).to_numpy(dtype=object),
            "event_ts": pd.to_datetime(events_long["event_ts"]).astype("datetime64[us]").to_numpy(),
            "identifier_type": events_long["identifier_type"].astype(str).to_numpy(dtype=object),
            "raw_value": events_long["raw_value"].to_numpy(dtype=object),
        }
    )
    rows = rows[rows["raw_value"].notna()]
    std = standardize_values(rows[["identifier_type", "raw_value"]].drop_duplicates(), config)
    if len(std) == 0:
        return empty_observations()
    out = rows.merge(std, on=["identifier_type", "raw_value"], how="inner", sort=False)
    out = out.sort_values("identifier_type", kind="stable").reset_index(drop=True)
    for c in ("model", "event_id", "identifier_type", "value"):
        out[c] = pd.Series(out[c].to_numpy(dtype=object), dtype=object)
    out["blocked"] = out["blocked"].astype(bool)
    return out[OBSERVATION_COLUMNS]
