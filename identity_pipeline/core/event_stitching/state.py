"""Graph state of Event Stitching.

`GraphState` is the exchange format with the store: four DataFrames with fixed columns plus `next_sequence`.
`Graph` is the mutable, dict-based form the engine works on during one window (built once per window from a
`GraphState`, turned back into one at the end). Timestamps inside `Graph` are int64 microseconds (UTC-naive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NAT = np.iinfo(np.int64).min  # int64 view of NaT

PROFILE_COLUMNS = [
    "dinmo_stitched_profile_id",
    "created_sequence",
    "created_at",
    "first_seen_at",
    "last_seen_at",
    "status",
    "merged_to_dinmo_stitched_profile_id",
    "event_count",
    "is_known",
]
PROFILE_VALUE_COLUMNS = [
    "dinmo_stitched_profile_id",
    "identifier_type",
    "value",
    "status",
    "first_seen_at",
    "last_seen_at",
    "event_count",
]
REGISTRY_COLUMNS = [
    "identifier_type",
    "value",
    "first_seen_at",
    "last_seen_at",
    "quarantined",
    "quarantined_at",
    "event_count",
]
REDIRECT_COLUMNS = ["from_id", "to_id", "merged_at", "evidence_model", "evidence_event_id", "window_key"]
# canonical row order of each state table (`GraphState.sorted`); the reference's `Graph.to_state` emits it
SORT_KEYS = {
    "profiles": ["created_sequence", "dinmo_stitched_profile_id"],
    "profile_values": ["dinmo_stitched_profile_id", "identifier_type", "value"],
    "value_registry": ["identifier_type", "value"],
    "redirects": ["from_id"],
}

_TS = {"created_at", "first_seen_at", "last_seen_at", "quarantined_at", "merged_at"}
_INT = {"created_sequence", "event_count"}
_BOOL = {"is_known", "quarantined"}

# membership status ranks when two memberships of one value meet in a merge (highest wins)
STATUS_RANK = {"active": 2, "demoted": 1, "blocked": 0}


def _frame(columns: list[str], data: dict[str, list] | None = None) -> pd.DataFrame:
    data = data or {c: [] for c in columns}
    out = {}
    for c in columns:
        vals = data[c]
        if c in _TS:
            arr = np.array([NAT if v is None else v for v in vals], dtype=np.int64).view("datetime64[us]")
            out[c] = pd.Series(arr, dtype="datetime64[us]")
        elif c in _INT:
            out[c] = pd.Series(np.array(vals, dtype=np.int64), dtype="int64")
        elif c in _BOOL:
            out[c] = pd.Series(np.array(vals, dtype=bool), dtype="bool")
        else:
            out[c] = pd.Series(vals, dtype="object")
    return pd.DataFrame(out, columns=columns)


def ts_to_us(series: pd.Series) -> list[int | None]:
    """Timestamps (any datetime64 unit, tz-naive) -> python ints of microseconds, None for NaT."""
    if len(series) == 0:
        return []
    arr = pd.to_datetime(series).astype("datetime64[us]").to_numpy().view(np.int64)
    return [None if v == NAT else int(v) for v in arr.tolist()]


def us_to_ts(value: int | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(np.int64(value).view("datetime64[us]"))


def _strs(series: pd.Series) -> list[str | None]:
    """Python strings (None for missing). String dtypes convert in one call: iterating an Arrow-backed
    pandas 3 `str` Series element by element is ~10x slower."""
    if len(series) == 0:
        return []
    if series.dtype != object and pd.api.types.is_string_dtype(series.dtype):
        return series.to_numpy(dtype=object, na_value=None).tolist()
    return [
        None if (v is None or v is pd.NA or (isinstance(v, float) and v != v)) else str(v) for v in series
    ]


@dataclass
class GraphState:
    profiles: pd.DataFrame
    profile_values: pd.DataFrame
    value_registry: pd.DataFrame
    redirects: pd.DataFrame
    next_sequence: int = 1

    @classmethod
    def empty(cls) -> GraphState:
        return cls(
            profiles=_frame(PROFILE_COLUMNS),
            profile_values=_frame(PROFILE_VALUE_COLUMNS),
            value_registry=_frame(REGISTRY_COLUMNS),
            redirects=_frame(REDIRECT_COLUMNS),
            next_sequence=1,
        )

    def sorted(self) -> GraphState:
        """The same state in canonical row order (profiles by creation, the others by key).

        Row order carries no meaning (the store diffs and persists sets of rows), so the fast path skips
        for sorting; compare states through this.
        """
        frames = {}
        for name, by in SORT_KEYS.items():
            df = getattr(self, name)
            frames[name] = df.sort_values(by, kind="mergesort").reset_index(drop=True) if len(df) > 1 else df
        return GraphState(**frames, next_sequence=self.next_sequence)

    def subgraph(
        self,
        values: pd.DataFrame,
        profile_wide: list[str] | None = None,
        created_ids: set[str] | frozenset[str] = frozenset(),
    ) -> GraphState:
        """The part of the state a window with these (identifier_type, value) pairs touches.

        Registry rows and memberships of the values, the profiles holding them, the memberships of those
        profiles, the redirects pointing to those profiles and the (merged) profiles those redirects come
        from; and the profiles whose id is in `created_ids` (the ids the window's events would create,
        `reference.profile_id_for`: an event id seen in an earlier window created one of them). The engine
        gives the same decisions on this subgraph as on the full state.

        With `profile_wide` (the rule-read subgraph the store loads): only the memberships of these types
        (see `profile_wide_types`) beside the window's values, and no redirects nor merged profiles, which
        no rule reads; they follow the window's merges through `carry_merged_memberships` and
        `carry_merged_redirects`, so the window's cost does not grow with its profiles' history.
        """
        keys = set(zip(_strs(values["identifier_type"]), _strs(values["value"]), strict=True))
        pv = self.profile_values
        pv_keys = pd.Series(list(zip(pv["identifier_type"], pv["value"], strict=True)), dtype="object")
        hit = pv_keys.isin(keys).to_numpy() if len(pv) else np.zeros(0, dtype=bool)
        pids = set(pv.loc[hit, "dinmo_stitched_profile_id"])
        pids |= set(self.profiles["dinmo_stitched_profile_id"]) & set(created_ids)
        if profile_wide is not None:
            wide = pv["identifier_type"].isin(profile_wide).to_numpy() if len(pv) else hit
            pv = pv[hit | wide]
        reg = self.value_registry
        reg_keys = pd.Series(list(zip(reg["identifier_type"], reg["value"], strict=True)), dtype="object")
        reg_hit = reg_keys.isin(keys).to_numpy() if len(reg) else np.zeros(0, dtype=bool)
        redirects = self.redirects[self.redirects["to_id"].isin(pids)]
        if profile_wide is not None:
            redirects = redirects.iloc[:0]
        prof_ids = pids | set(redirects["from_id"])
        return GraphState(
            profiles=self.profiles[self.profiles["dinmo_stitched_profile_id"].isin(prof_ids)].reset_index(
                drop=True
            ),
            profile_values=pv[pv["dinmo_stitched_profile_id"].isin(pids)].reset_index(drop=True),
            value_registry=reg[reg_hit].reset_index(drop=True),
            redirects=redirects.reset_index(drop=True),
            next_sequence=self.next_sequence,
        )


def profile_wide_types(config) -> list[str]:
    """Identifier types whose memberships the rules read across the whole profile, not only for the window's
    values: anchors (compatibility, Known) and weak types with `max_unique_values_per_profile` (LRU
    demotion). Other memberships of a profile are read only when the window sees their value, so a window
    need not load them (a returning visitor's old sessions): `carry_merged_memberships` moves them on merges.
    """
    return sorted(
        t for t, p in config.identifiers.items() if p.anchor or p.max_unique_values_per_profile is not None
    )


def carry_merged_memberships(unloaded: pd.DataFrame, merged_to: dict[str, str]) -> pd.DataFrame:
    """Memberships a window did not load, after its merges (`merged_to`: merged profile -> survivor).

    `unloaded` holds the not-loaded rows of the merged profiles and the survivor's rows of the same values.
    Each row moves to its profile's survivor and rows meeting on one value combine as `merge_profiles`
    combines loaded ones: the highest-ranked status, earliest first_seen, latest last_seen, summed counts.
    Returns the rows that replace `unloaded` (PROFILE_VALUE_COLUMNS).
    """
    if len(unloaded) == 0:
        return unloaded[PROFILE_VALUE_COLUMNS].reset_index(drop=True)
    df = unloaded[PROFILE_VALUE_COLUMNS].copy()
    pid = df["dinmo_stitched_profile_id"].astype(object)
    df["dinmo_stitched_profile_id"] = pid.map(merged_to).fillna(pid).astype(object)
    out = combine_memberships(df)
    return _frame(
        PROFILE_VALUE_COLUMNS,
        {
            c: (
                out[c].astype("datetime64[us]").to_numpy().view(np.int64).tolist()
                if c in _TS
                else out[c].tolist()
            )
            for c in PROFILE_VALUE_COLUMNS
        },
    )


def carry_merged_redirects(
    redirects: pd.DataFrame, profiles: pd.DataFrame, merged_to: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Redirects a window did not load, after its merges (`merged_to`: profile merged in the window -> its
    survivor), and the merged profiles they come from.

    As `merge_profiles` does for loaded ones: a redirect to a profile merged now points to the survivor
    (redirects stay one hop), and so does its source profile's `merged_to_dinmo_stitched_profile_id`.
    Returns the rows that replace (`redirects`, `profiles`).
    """
    redirects = redirects[REDIRECT_COLUMNS].reset_index(drop=True).copy()
    profiles = profiles[PROFILE_COLUMNS].reset_index(drop=True).copy()
    to_id = redirects["to_id"].astype(object)
    redirects["to_id"] = to_id.map(merged_to).fillna(to_id).astype(object)
    new_to = dict(zip(redirects["from_id"], redirects["to_id"], strict=True))
    pid = profiles["dinmo_stitched_profile_id"].astype(object)
    points = pid.map(new_to)
    col = "merged_to_dinmo_stitched_profile_id"
    profiles[col] = points.where(points.notna(), profiles[col].astype(object)).astype(object)
    return redirects, profiles


def combine_memberships(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (profile, identifier_type, value): rows meeting on a key combine as `merge_profiles`
    combines two memberships (highest-ranked status, earliest first_seen, latest last_seen, summed counts)."""
    df = rows[PROFILE_VALUE_COLUMNS].assign(rank=rows["status"].map(STATUS_RANK).astype("int64"))
    out = df.groupby(
        ["dinmo_stitched_profile_id", "identifier_type", "value"], sort=True, as_index=False
    ).agg(
        rank=("rank", "max"),
        first_seen_at=("first_seen_at", "min"),
        last_seen_at=("last_seen_at", "max"),
        event_count=("event_count", "sum"),
    )
    out["status"] = out["rank"].map({r: s for s, r in STATUS_RANK.items()})
    return out[PROFILE_VALUE_COLUMNS]


# ------------------------------------------------------------------------------------------------------------
# Mutable dict form used by the engine
# ------------------------------------------------------------------------------------------------------------

Key = tuple[str, str]  # (identifier_type, value)


class Profile:
    __slots__ = (
        "pid",
        "seq",
        "created_at",
        "first_seen",
        "last_seen",
        "status",
        "merged_to",
        "count",
        "known",
    )

    def __init__(self, pid, seq, created_at, first_seen, last_seen, status, merged_to, count, known):
        self.pid = pid
        self.seq = seq
        self.created_at = created_at
        self.first_seen = first_seen
        self.last_seen = last_seen
        self.status = status
        self.merged_to = merged_to
        self.count = count
        self.known = known


class Membership:
    __slots__ = ("status", "first_seen", "last_seen", "count")

    def __init__(self, status, first_seen, last_seen, count):
        self.status = status
        self.first_seen = first_seen
        self.last_seen = last_seen
        self.count = count


class RegistryEntry:
    __slots__ = ("first_seen", "last_seen", "quarantined", "quarantined_at", "count")

    def __init__(self, first_seen, last_seen, quarantined, quarantined_at, count):
        self.first_seen = first_seen
        self.last_seen = last_seen
        self.quarantined = quarantined
        self.quarantined_at = quarantined_at
        self.count = count


@dataclass
class Graph:
    """Dict form of a GraphState. Indexes are kept in sync by the engine's mutators."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    # pid -> {(type, value): Membership}
    members: dict[str, dict[Key, Membership]] = field(default_factory=dict)
    # (type, value) -> set of pids holding a membership (any status)
    holders: dict[Key, set[str]] = field(default_factory=dict)
    # pid -> {type: set(values)} of ACTIVE memberships
    active: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    registry: dict[Key, RegistryEntry] = field(default_factory=dict)
    # from_id -> [to_id, merged_at, evidence_model, evidence_event_id, window_key]
    redirects: dict[str, list] = field(default_factory=dict)
    # to_id -> set(from_id)
    redirected_to: dict[str, set[str]] = field(default_factory=dict)
    next_sequence: int = 1

    @classmethod
    def from_state(cls, state: GraphState) -> Graph:
        g = cls(next_sequence=int(state.next_sequence))
        p = state.profiles
        if len(p):
            cols = [
                _strs(p["dinmo_stitched_profile_id"]),
                p["created_sequence"].astype("int64").tolist(),
                ts_to_us(p["created_at"]),
                ts_to_us(p["first_seen_at"]),
                ts_to_us(p["last_seen_at"]),
                _strs(p["status"]),
                _strs(p["merged_to_dinmo_stitched_profile_id"]),
                p["event_count"].astype("int64").tolist(),
                p["is_known"].astype(bool).tolist(),
            ]
            for row in zip(*cols, strict=True):
                g.profiles[row[0]] = Profile(*row)
        pv = state.profile_values
        if len(pv):
            for pid, t, v, st, fs, ls, c in zip(
                _strs(pv["dinmo_stitched_profile_id"]),
                _strs(pv["identifier_type"]),
                _strs(pv["value"]),
                _strs(pv["status"]),
                ts_to_us(pv["first_seen_at"]),
                ts_to_us(pv["last_seen_at"]),
                pv["event_count"].astype("int64").tolist(),
                strict=True,
            ):
                key = (t, v)
                g.members.setdefault(pid, {})[key] = Membership(st, fs, ls, c)
                g.holders.setdefault(key, set()).add(pid)
                if st == "active":
                    g.active.setdefault(pid, {}).setdefault(t, set()).add(v)
        r = state.value_registry
        if len(r):
            for t, v, fs, ls, q, qa, c in zip(
                _strs(r["identifier_type"]),
                _strs(r["value"]),
                ts_to_us(r["first_seen_at"]),
                ts_to_us(r["last_seen_at"]),
                r["quarantined"].astype(bool).tolist(),
                ts_to_us(r["quarantined_at"]),
                r["event_count"].astype("int64").tolist(),
                strict=True,
            ):
                g.registry[(t, v)] = RegistryEntry(fs, ls, q, qa, c)
        d = state.redirects
        if len(d):
            for f, to, at, m, e, w in zip(
                _strs(d["from_id"]),
                _strs(d["to_id"]),
                ts_to_us(d["merged_at"]),
                _strs(d["evidence_model"]),
                _strs(d["evidence_event_id"]),
                _strs(d["window_key"]),
                strict=True,
            ):
                g.redirects[f] = [to, at, m, e, w]
                g.redirected_to.setdefault(to, set()).add(f)
        return g

    def to_state(self) -> GraphState:
        profs = sorted(self.profiles.values(), key=lambda p: (p.seq, p.pid))
        pdata = {
            "dinmo_stitched_profile_id": [p.pid for p in profs],
            "created_sequence": [p.seq for p in profs],
            "created_at": [p.created_at for p in profs],
            "first_seen_at": [p.first_seen for p in profs],
            "last_seen_at": [p.last_seen for p in profs],
            "status": [p.status for p in profs],
            "merged_to_dinmo_stitched_profile_id": [p.merged_to for p in profs],
            "event_count": [p.count for p in profs],
            "is_known": [bool(p.known) for p in profs],
        }
        mrows = [(pid, k, m) for pid, mem in self.members.items() for k, m in mem.items()]
        mrows.sort(key=lambda r: (r[0], r[1]))
        mdata = {
            "dinmo_stitched_profile_id": [r[0] for r in mrows],
            "identifier_type": [r[1][0] for r in mrows],
            "value": [r[1][1] for r in mrows],
            "status": [r[2].status for r in mrows],
            "first_seen_at": [r[2].first_seen for r in mrows],
            "last_seen_at": [r[2].last_seen for r in mrows],
            "event_count": [r[2].count for r in mrows],
        }
        rrows = sorted(self.registry.items())
        rdata = {
            "identifier_type": [k[0] for k, _ in rrows],
            "value": [k[1] for k, _ in rrows],
            "first_seen_at": [e.first_seen for _, e in rrows],
            "last_seen_at": [e.last_seen for _, e in rrows],
            "quarantined": [bool(e.quarantined) for _, e in rrows],
            "quarantined_at": [e.quarantined_at for _, e in rrows],
            "event_count": [e.count for _, e in rrows],
        }
        drows = sorted(self.redirects.items())
        ddata = {
            "from_id": [f for f, _ in drows],
            "to_id": [r[0] for _, r in drows],
            "merged_at": [r[1] for _, r in drows],
            "evidence_model": [r[2] for _, r in drows],
            "evidence_event_id": [r[3] for _, r in drows],
            "window_key": [r[4] for _, r in drows],
        }
        return GraphState(
            profiles=_frame(PROFILE_COLUMNS, pdata),
            profile_values=_frame(PROFILE_VALUE_COLUMNS, mdata),
            value_registry=_frame(REGISTRY_COLUMNS, rdata),
            redirects=_frame(REDIRECT_COLUMNS, ddata),
            next_sequence=self.next_sequence,
        )
