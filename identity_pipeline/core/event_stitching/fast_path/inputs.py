"""Integer-coded inputs of the fast path: the policy per identifier type, the subgraph a window reads, and the
window's events and observations.

Everything is a numpy array indexed by small local integers, so the engine never hashes or compares strings:
values are `v` (rows of the subgraph's value arrays), profiles `p`, memberships `m`, events `e` (their
processing order). Identifier types are their index in walk order (`config.identifier_order()`: priority, then
name), so comparing type indexes compares priorities. Timestamps are int64 microseconds (UTC), `NAT` for none.
The caller (the frames adapter `core/event_stitching/frames.py`, or the store) builds these and supplies the
strings the engine needs only rarely (`Names`: the complex path, which runs the per-event reference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.rules.quarantine import to_us

NAT = np.iinfo(np.int64).min
BIG = np.iinfo(np.int64).max
NO_LIMIT = -1

# membership status codes; when two memberships of one value meet in a merge the smaller code wins
# (active > demoted > blocked, as `state.STATUS_RANK`)
ACTIVE, DEMOTED, BLOCKED = 0, 1, 2
MEMBERSHIP_STATUS = ("active", "demoted", "blocked")
# profile status codes
PROFILE_ACTIVE, PROFILE_MERGED = 0, 1
PROFILE_STATUS = ("active", "merged")


@dataclass(frozen=True)
class Policy:
    """The identifier policies as arrays indexed by type (walk order)."""

    names: tuple[str, ...]
    priority: np.ndarray
    anchor: np.ndarray  # bool
    unique_limit: np.ndarray  # max_unique_values_per_profile, NO_LIMIT for none
    lifetime_us: np.ndarray  # NO_LIMIT for forever
    from_last_seen: np.ndarray  # bool: lifetime counted from the last matching observation
    max_profiles: np.ndarray  # max_profiles_per_value, NO_LIMIT for none
    config: EventStitchingConfig  # the complex path runs the reference with it

    @classmethod
    def from_config(cls, config: EventStitchingConfig) -> Policy:
        names = tuple(config.identifier_order())
        pols = [config.identifiers[t] for t in names]

        def ints(values) -> np.ndarray:
            return np.array([NO_LIMIT if v is None else int(v) for v in values], dtype=np.int64)

        lifetimes = []
        for p in pols:
            d = p.lifetime_delta()
            lifetimes.append(None if d is None else int(d.total_seconds() * 1_000_000))
        return cls(
            names=names,
            priority=np.array([p.priority for p in pols], dtype=np.int64),
            anchor=np.array([p.anchor for p in pols], dtype=bool),
            unique_limit=ints(p.max_unique_values_per_profile for p in pols),
            lifetime_us=ints(lifetimes),
            from_last_seen=np.array([p.lifetime_from == "last_seen" for p in pols], dtype=bool),
            max_profiles=ints(p.max_profiles_per_value for p in pols),
            config=config,
        )

    @property
    def n_types(self) -> int:
        return len(self.names)

    @property
    def wide(self) -> np.ndarray:
        """Types whose memberships the rules read across a whole profile (`state.profile_wide_types`):
        anchors (compatibility, Known) and weak types with a per-profile limit (LRU demotion)."""
        return self.anchor | (self.unique_limit != NO_LIMIT)

    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.names)}

    def releases(self) -> list[tuple[str, str, int | None]]:
        """`released_values` as (type, standardized value, released_at in µs or None), config order."""
        from identity_pipeline.core.event_stitching.reference import Context

        ctx = Context.build(self.config, "")
        return [(t, v, at) for (t, v), at in ctx.releases]


class Names(Protocol):
    """Strings behind the integer codes, asked for only where the engine needs them (the complex path runs
    the reference on strings; the value order within an event is given by `WindowEvents.o_tie` instead)."""

    def values(self, v: np.ndarray) -> np.ndarray:
        """Value strings of the subgraph values `v` (object array)."""
        ...

    def events(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(model, event_id) strings of the events `e` (object arrays)."""
        ...

    # optional: `prefetch(v)`, a hint that `values(v)` comes next (a store may start reading the strings)


@dataclass
class Subgraph:
    """The part of the graph state a window's rules read (`state.GraphState.subgraph`), integer-coded.

    Values: every value the window observes (all registry rows and memberships of them are here) and the
    values of the loaded profiles' profile-wide memberships. Profiles: every profile holding a membership of a
    window value, with all their profile-wide memberships. Memberships refer to rows (`m_p`, `m_v`); profiles
    are identified by `p_seq` (created_sequence, unique) and `p_key` (the 64 bits of their id).
    """

    # values
    v_type: np.ndarray  # int64 type index
    v_reg: np.ndarray  # bool: has a registry row
    v_first: np.ndarray
    v_last: np.ndarray
    v_count: np.ndarray
    v_quar: np.ndarray  # bool
    v_quar_at: np.ndarray
    # profiles
    p_seq: np.ndarray
    p_key: np.ndarray  # uint64
    p_created: np.ndarray
    p_first: np.ndarray
    p_last: np.ndarray
    p_status: np.ndarray  # int8 PROFILE_*
    p_merged_to: np.ndarray  # seq of the survivor, -1
    p_count: np.ndarray
    p_known: np.ndarray  # bool
    # memberships
    m_p: np.ndarray
    m_v: np.ndarray
    m_status: np.ndarray  # int8 ACTIVE / DEMOTED / BLOCKED
    m_first: np.ndarray
    m_last: np.ndarray
    m_count: np.ndarray
    next_seq: int = 1

    @property
    def nV(self) -> int:
        return len(self.v_type)

    @property
    def nP(self) -> int:
        return len(self.p_seq)

    @property
    def nM(self) -> int:
        return len(self.m_p)

    def copy(self) -> Subgraph:
        return replace(self, **{k: np.array(v, copy=True) for k, v in self.arrays().items()})

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}

    @classmethod
    def empty(cls, n_values: int = 0, v_type: np.ndarray | None = None) -> Subgraph:
        """No profiles nor memberships; `n_values` values, none in the registry."""
        i64 = np.zeros(0, dtype=np.int64)
        nat = np.full(n_values, NAT, dtype=np.int64)
        return cls(
            v_type=np.zeros(n_values, np.int64) if v_type is None else np.asarray(v_type, np.int64),
            v_reg=np.zeros(n_values, bool),
            v_first=nat.copy(),
            v_last=nat.copy(),
            v_count=np.zeros(n_values, np.int64),
            v_quar=np.zeros(n_values, bool),
            v_quar_at=nat.copy(),
            p_seq=i64,
            p_key=np.zeros(0, np.uint64),
            p_created=i64,
            p_first=i64,
            p_last=i64,
            p_status=np.zeros(0, np.int8),
            p_merged_to=i64,
            p_count=i64,
            p_known=np.zeros(0, bool),
            m_p=i64,
            m_v=i64,
            m_status=np.zeros(0, np.int8),
            m_first=i64,
            m_last=i64,
            m_count=i64,
        )


@dataclass
class WindowEvents:
    """One window's events in processing order ((event_ts, model, event_id)) and their observations.

    Observations are distinct (event, value) pairs in the caller's row order, which is also the order in which
    the reference reads an event's values (it decides the order of blocked-value audits). `o_tie` orders the
    values of one type on one event as their strings sort (the walk's tie-break); any integers consistent
    with that order will do (a global string rank, or the row number when rows are sorted by value).
    """

    e_ts: np.ndarray
    o_e: np.ndarray
    o_v: np.ndarray
    o_blocked: np.ndarray
    o_tie: np.ndarray
    names: Names
    # the 64-bit id (`reference.profile_id_for`) of the profile each event would create: all of them
    # (`e_key`), or computed on demand for the events that may create one (`key_of`)
    e_key: np.ndarray | None = None
    key_of: Callable[[np.ndarray], np.ndarray] | None = None
    # whether a profile with such an id exists outside the subgraph (None: the subgraph is the whole graph)
    key_exists: Callable[[np.ndarray], np.ndarray] | None = None
    # released values present in the subgraph: (value row, released_at µs or None), config order
    released: list[tuple[int, int | None]] = field(default_factory=list)

    @property
    def nE(self) -> int:
        return len(self.e_ts)

    def keys(self, e: np.ndarray) -> np.ndarray:
        """Ids (uint64) of the profiles the events `e` would create."""
        if self.e_key is not None:
            return self.e_key[e]
        assert self.key_of is not None, "WindowEvents needs e_key or key_of"
        return np.asarray(self.key_of(np.asarray(e, dtype=np.int64)), dtype=np.uint64)


class CreatedIdCollision(Exception):
    """A profile the window would create has the id of a profile outside the subgraph: the caller adds those
    profiles (`keys`) to the subgraph and runs the window again (the reference then derives other ids)."""

    def __init__(self, keys: np.ndarray) -> None:
        super().__init__(f"{len(keys)} created profile id(s) already exist outside the subgraph")
        self.keys = keys


def release_rows(policy: Policy, find_value) -> list[tuple[int, int | None]]:
    """`released_values` mapped to subgraph rows by `find_value(type index, value) -> row | None`."""
    idx = policy.index()
    out = []
    for t, v, at in policy.releases():
        row = find_value(idx[t], v)
        if row is not None:
            out.append((int(row), at))
    return out


__all__ = [
    "ACTIVE",
    "BIG",
    "BLOCKED",
    "DEMOTED",
    "MEMBERSHIP_STATUS",
    "NAT",
    "NO_LIMIT",
    "PROFILE_ACTIVE",
    "PROFILE_MERGED",
    "PROFILE_STATUS",
    "Names",
    "Policy",
    "Subgraph",
    "WindowEvents",
    "release_rows",
    "to_us",
]
