"""Batched fast path of Event Stitching: the same outputs as `reference.py`, computed mostly vectorised.

How (every step is checked against the reference by identity_pipeline_tests/event_stitching/
test_batched_equivalence.py):

1. Events are ordered like the reference ((event_ts, model, event_id), one row per (model, event_id)).
   Observations become usable edges event <-> (identifier_type, value); known values link further to every
   profile holding a membership of them in the loaded state. Connected components (scipy) are independent:
   they share no value and no profile, and the reference's decisions in one never read another.
2. A component is SIMPLE when the reference would do nothing but attach its events to one profile:
   * it reaches at most one profile, which is active, through any membership of its values;
   * "creator" events (none of whose values is held in state or appeared earlier in the component): exactly
     one when it reaches no profile, none when it reaches one (so nothing is created twice, nothing merges);
   * every known value is in the registry, not quarantined, held only ACTIVE (no demoted/blocked membership),
     never expires inside the window (first_seen: max event_ts <= first_seen + lifetime; last_seen: no gap
     between consecutive observations over the lifetime);
   * per anchor type with a limit, the profile's active values + the component's values stay within it (no
     rule-5 limit_conflict, no dropped anchor, every profile compatible); per weak type with
     `max_unique_values_per_profile`, the same (no demotion); every value ends on one profile, and
     `max_profiles_per_value` >= 1, so nothing is quarantined;
   * its blocked values are held, if at all, only as 'blocked' memberships.
   Events without any non-blocked value are excluded (`no_matchable_identifier`) directly. Values quarantined
   before the window are unusable and change nothing (rule 3), so they leave the graph first; an event left
   with no value is excluded (`conflicted_identifier_value`) directly.
3. SIMPLE components are computed with group-bys: attribution (decided by the first value in walk order that
   was already on the profile; the creator's first value), profile / membership / registry updates,
   is_known. Blocked values are audited once per value and window at their first event, for every event.
4. MERGE components are complex only by structure (they reach several profiles, or have several creators,
   or a creator and a profile) while nothing else applies (every reached profile active, each value held by
   at most one profile, no limit, expiry, quarantine or blocked-value conflict): a union-find pass over their
   events in order gives what the reference would (each event's profile, merges into the oldest profile with
   audits and one-hop redirects, merged profiles' stats at merge time); aggregates are the simple ones on the
   component's final survivor, and memberships of merged profiles move to it.
   Other COMPLEX components run through the reference together, on just their events and the subgraph their
   values reach. Profiles created there and by the other paths get `created_sequence` renumbered by the
   global order of their creating events.
5. Anything the split cannot reproduce (a created id colliding with a loaded profile) runs the whole window
   through the reference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.metrics import window_metrics
from identity_pipeline.core.event_stitching.reference import Context, profile_id_for, run_reference
from identity_pipeline.core.event_stitching.rules.quarantine import release_applies
from identity_pipeline.core.event_stitching.state import (
    NAT,
    PROFILE_COLUMNS,
    PROFILE_VALUE_COLUMNS,
    REDIRECT_COLUMNS,
    REGISTRY_COLUMNS,
    GraphState,
    combine_memberships,
)

_TS = {"created_at", "first_seen_at", "last_seen_at", "quarantined_at", "merged_at"}
_INT = {"created_sequence", "event_count"}
_BOOL = {"is_known", "quarantined"}
_BIG = np.iinfo(np.int64).max


# ------------------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------------------


def _obj(s: pd.Series) -> np.ndarray:
    """Strings as an object array with None for missing."""
    if len(s) == 0:
        return np.empty(0, dtype=object)
    return s.to_numpy(dtype=object, na_value=None)


def _us(s: pd.Series) -> np.ndarray:
    """Timestamps as int64 microseconds (NAT for missing)."""
    if len(s) == 0:
        return np.empty(0, dtype=np.int64)
    return pd.to_datetime(s).astype("datetime64[us]").to_numpy().view(np.int64)


def _frame(columns: list[str], data: dict[str, np.ndarray]) -> pd.DataFrame:
    """A state frame with the reference's dtypes (`state._frame`), from numpy columns."""
    out = {}
    for c in columns:
        v = data[c]
        if c in _TS:
            out[c] = pd.Series(np.asarray(v, dtype=np.int64).view("datetime64[us]"), dtype="datetime64[us]")
        elif c in _INT:
            out[c] = pd.Series(np.asarray(v, dtype=np.int64), dtype="int64")
        elif c in _BOOL:
            out[c] = pd.Series(np.asarray(v, dtype=bool), dtype="bool")
        else:
            out[c] = pd.Series(np.asarray(v, dtype=object), dtype="object")
    return pd.DataFrame(out, columns=columns)


def _norm(df: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for c in columns:
        if c in _TS:
            out[c] = _us(df[c])
        elif c in _INT:
            out[c] = df[c].to_numpy(dtype=np.int64) if len(df) else np.empty(0, dtype=np.int64)
        elif c in _BOOL:
            out[c] = df[c].fillna(False).to_numpy(dtype=bool) if len(df) else np.empty(0, dtype=bool)
        else:
            out[c] = _obj(df[c])
    return out


def _odf(data: dict) -> pd.DataFrame:
    """A DataFrame keeping object arrays as object columns: pandas 3 would infer Arrow `str` for them (slow
    to build from Python strings and to turn back into object arrays, which every step here works on)."""
    return pd.DataFrame(
        {
            k: pd.Series(v, dtype=object) if np.asarray(v).dtype == object or len(v) == 0 else v
            for k, v in data.items()
        }
    )


def _joined(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Both arrays in one: integer codes stay integers (hashed ~10x faster than strings), anything else
    becomes an object array."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return np.concatenate([a.astype(np.int64), b.astype(np.int64)])
    return np.concatenate([a.astype(object), b.astype(object)])


def _pair_codes(*pairs: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """int64 codes of (a, b) pairs, equal exactly when both parts are equal, consistent across all the given
    arrays: one hash pass per part, instead of concatenating the two strings (new objects, hashed again by
    every lookup) for (model, event_id) and (identifier_type, value) keys."""
    lens = [len(a) for a, _ in pairs]
    if sum(lens) == 0:
        return [np.empty(0, dtype=np.int64) for _ in pairs]
    a_codes, _ = pd.factorize(np.concatenate([np.asarray(a, dtype=object) for a, _ in pairs]))
    b_codes, b_uniques = pd.factorize(np.concatenate([np.asarray(b, dtype=object) for _, b in pairs]))
    codes = (a_codes.astype(np.int64) + 1) * (len(b_uniques) + 1) + (b_codes.astype(np.int64) + 1)
    return np.split(codes, np.cumsum(lens)[:-1])


def _given_keys(*columns: tuple[pd.DataFrame | None, str]) -> list[np.ndarray] | None:
    """Integer key columns the caller supplied (the store's 64-bit hash keys: `ekey` of events, `vkey` of
    values, `pkey` of profiles), as int64, when every frame has its column; else None (hash the strings).

    Used in place of `_pair_codes` / string lookups, so they must name one string (pair) each across the
    frames: the store guarantees it (`store.load_subgraph`, `store._event_keys_usable`)."""
    out = []
    for df, col in columns:
        if df is None or len(df) == 0:
            out.append(np.empty(0, dtype=np.int64))
            continue
        if col not in df.columns or df[col].dtype.kind not in "iu" or df[col].isna().any():
            return None
        out.append(df[col].to_numpy().astype(np.uint64, copy=False).view(np.int64))
    return out


def _argsort_rows(*columns: np.ndarray) -> np.ndarray:
    """Stable argsort by several columns (ints or strings), first column first, like a pandas mergesort on
    them but in Arrow (several times faster on string columns; UTF-8 byte order is code-point order, as
    Python compares strings)."""
    table = pa.table({f"c{i}": pa.array(np.asarray(c)) for i, c in enumerate(columns)})
    keys = [(f"c{i}", "ascending") for i in range(len(columns))]
    return pc.sort_indices(table, sort_keys=keys).to_numpy().astype(np.int64)


def _find(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """Position of each needle in `haystack` (distinct values), -1 where absent.

    One hash pass (`pd.factorize`) over both arrays: about 2.5x faster than `pd.Index.get_indexer` on object
    strings, and it never converts to Arrow strings (pandas 3 would for a plain `pd.Index`).
    """
    if len(haystack) == 0 or len(needles) == 0:
        return np.full(len(needles), -1, dtype=np.int64)
    codes, uniques = pd.factorize(_joined(haystack, needles))
    pos = np.full(len(uniques) + 1, -1, dtype=np.int64)  # the extra slot answers code -1 (missing)
    h = codes[: len(haystack)]
    ok = h >= 0
    pos[h[ok]] = np.flatnonzero(ok)
    return pos[codes[len(haystack) :]]


def _isin(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """`values` element in `pool`, by hashing (np.isin would sort object arrays)."""
    if len(values) == 0 or len(pool) == 0:
        return np.zeros(len(values), dtype=bool)
    codes, uniques = pd.factorize(_joined(pool, values))
    mark = np.zeros(len(uniques) + 1, dtype=bool)
    mark[codes[: len(pool)]] = True
    mark[-1] = False
    return mark[codes[len(pool) :]]


def _writable(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {c: np.array(v, copy=True) for c, v in d.items()}


def _take(d: dict[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    return {c: v[idx] for c, v in d.items()}


def _concat(parts: list[dict[str, np.ndarray]], columns: list[str]) -> dict[str, np.ndarray]:
    return {c: np.concatenate([p[c] for p in parts]) if parts else np.empty(0) for c in columns}


STATS: dict[str, int] = {}
DEBUG: dict = {}  # small debug state only: holding a window's frames here would keep them alive


def _why(flags: np.ndarray, reason: str, events_per_comp: np.ndarray) -> None:
    """Debug counters: events of the components flagged complex so far, by the first reason that flagged
    them (`STATS`, read by benchmarks and experiments)."""
    seen = DEBUG.get("_flagged")
    new = flags if seen is None or len(seen) != len(flags) else flags & ~seen
    STATS[reason] = STATS.get(reason, 0) + int(events_per_comp[new].sum())
    DEBUG["_flagged"] = flags.copy()


def _rows_frame(data: dict[str, np.ndarray], columns: list[str], ts_col: str) -> pd.DataFrame:
    out = {}
    for c in columns:
        if c == ts_col:
            out[c] = pd.Series(
                np.asarray(data[c], dtype=np.int64).view("datetime64[us]"), dtype="datetime64[us]"
            )
        else:
            out[c] = pd.Series(np.asarray(data[c], dtype=object), dtype="object")
    return pd.DataFrame(out, columns=columns)


def _merge_walk(ev_merge, u_pos, u_k, rank, known_before, m_k, m_p, in_w, nK, P, next_seq, e_ts, ids, k_t):
    """The union-find pass over merge-component events (see the call). Groups are loaded profiles (their
    index) or profiles created by an event (nP + its position). Returns None when there is no such event."""
    if not ev_merge.any():
        return None
    nP = len(P["dinmo_stitched_profile_id"])
    sel = ev_merge[u_pos]
    pos, key, kb = u_pos[sel], u_k[sel], known_before[sel]
    o = np.lexsort((rank[key], pos))
    pos, key, kb = pos[o], key[o], kb[o]
    anchor_k = np.array([ids[t].anchor for t in k_t], dtype=bool) if nK else np.zeros(0, bool)
    holder = np.full(nK, -1, dtype=np.int64)
    holder[m_k[in_w]] = m_p[in_w]
    seq = P["created_sequence"]
    parent: dict[int, int] = {}
    stats: dict[int, list] = {}
    key_group: dict[int, int] = {}
    ev_group: dict[int, int] = {}
    merges: list[tuple[int, int, int, int]] = []

    def find(g: int) -> int:
        r = g
        while r in parent:
            r = parent[r]
        while g != r:
            parent[g], g = r, parent[g]
        return r

    def order(g: int) -> int:
        return int(seq[g]) if g < nP else next_seq + g - nP

    def stat(g: int) -> list:
        st = stats.get(g)
        if st is None:
            st = stats[g] = [
                int(P["event_count"][g]),
                int(P["first_seen_at"][g]),
                int(P["last_seen_at"][g]),
                bool(P["is_known"][g]),
            ]
        return st

    cuts = np.flatnonzero(np.diff(pos)) + 1
    for a, b in zip(
        np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(pos)]]).tolist(), strict=True
    ):
        p = int(pos[a])
        ts = int(e_ts[p])
        keys = key[a:b].tolist()
        known = kb[a:b].tolist()
        target = -1
        for k, kn in zip(keys, known, strict=True):
            if not kn:
                continue
            g = find(key_group.get(k, int(holder[k])))
            if target < 0:
                target = g
            elif g != target:
                sv, lo = (target, g) if order(target) < order(g) else (g, target)
                parent[lo] = sv
                s_, l_ = stat(sv), stat(lo)
                s_[0] += l_[0]
                s_[1] = min(s_[1], l_[1])
                s_[2] = max(s_[2], l_[2])
                s_[3] = s_[3] or l_[3]
                merges.append((p, k, sv, lo))
                target = sv
        if target < 0:
            target = nP + p
            stats[target] = [0, ts, ts, False]
        for k, kn in zip(keys, known, strict=True):
            if not kn:
                key_group.setdefault(k, target)
        st = stat(target)
        st[0] += 1
        st[1] = min(st[1], ts)
        st[2] = max(st[2], ts)
        st[3] = st[3] or bool(anchor_k[keys].any())
        ev_group[p] = target
    return {
        "find": find,
        "parent": parent,
        "stats": stats,
        "ev_group": ev_group,
        "merges": merges,
    }


def _rekey_merged(mem: dict[str, np.ndarray], moved: dict[str, str]) -> dict[str, np.ndarray]:
    """Memberships of profiles merged by the merge path move to their survivor; rows meeting on one value
    combine as `merge_profiles` does (highest-ranked status, earliest first seen, latest last seen, counts
    summed). Profile ids are hashed once (codes), and only the survivor rows that meet go through
    `combine_memberships`."""
    codes, uniques = pd.factorize(mem["dinmo_stitched_profile_id"])
    uniques = np.asarray(uniques, dtype=object)
    hit = _isin(uniques, np.array(list(moved), dtype=object))
    if not hit.any():
        return mem
    new_ids = uniques.copy()
    new_ids[hit] = np.array([moved[x] for x in uniques[hit]], dtype=object)
    mem = {**mem, "dinmo_stitched_profile_id": new_ids[codes]}
    on_survivor = np.flatnonzero(_isin(new_ids, np.array(sorted(set(moved.values())), dtype=object))[codes])
    keys = _odf({c: mem[c][on_survivor] for c in ("dinmo_stitched_profile_id", "identifier_type", "value")})
    meet = on_survivor[keys.duplicated(keep=False).to_numpy()]
    if len(meet) == 0:
        return mem
    agg = combine_memberships(_odf({c: v[meet] for c, v in mem.items()}))
    comb = {
        c: agg[c].to_numpy(dtype=np.int64 if c in _TS or c in _INT else object) for c in PROFILE_VALUE_COLUMNS
    }
    rest = np.ones(len(codes), dtype=bool)
    rest[meet] = False
    return _concat([_take(mem, rest), comb], PROFILE_VALUE_COLUMNS)


# ------------------------------------------------------------------------------------------------------------
# the fast path
# ------------------------------------------------------------------------------------------------------------


def stitch_window_batched(
    state: GraphState,
    events: pd.DataFrame,
    observations: pd.DataFrame,
    config: EventStitchingConfig,
    window_key: str,
):
    from identity_pipeline.core.event_stitching.engine import (
        ATTRIBUTION_COLUMNS,
        AUDIT_COLUMNS,
        WindowResult,
        build_result,
    )

    def full_reference() -> WindowResult:
        g, ctx = run_reference(state, events, observations, config, window_key)
        res = build_result(g, ctx, observations)
        res.metrics["events_fast_path"] = 0
        return res

    STATS.clear()
    DEBUG.pop("_flagged", None)
    ctx = Context.build(config, window_key)
    ids = config.identifiers

    # ---- state, normalized -----------------------------------------------------------------------------
    P = _norm(state.profiles, PROFILE_COLUMNS)
    M = _norm(state.profile_values, PROFILE_VALUE_COLUMNS)
    R = _writable(_norm(state.value_registry, REGISTRY_COLUMNS))
    D = _norm(state.redirects, REDIRECT_COLUMNS)
    next_seq = int(state.next_sequence)

    # releases (start of window), as apply_releases
    audit_release: list[tuple] = []
    if ctx.releases and len(R["value"]):
        for (t, v), at in ctx.releases:
            hits = np.flatnonzero((R["identifier_type"] == t) & (R["value"] == v))  # registry keys are unique
            i = int(hits[0]) if len(hits) else -1
            if (
                i >= 0
                and R["quarantined"][i]
                and release_applies(
                    None if R["quarantined_at"][i] == NAT else int(R["quarantined_at"][i]), at
                )
            ):
                R["quarantined"][i] = False
                R["quarantined_at"][i] = NAT
                audit_release.append(
                    (
                        window_key,
                        NAT,
                        "released_value",
                        t,
                        v,
                        None,
                        None,
                        None,
                        None,
                        "released in config (released_values)",
                    )
                )

    # ---- events in reference order ---------------------------------------------------------------------
    # (model, event_id) and (identifier_type, value) pairs as int64 codes (`_pair_codes`)
    has_events = events is not None and len(events) > 0
    has_obs = observations is not None and len(observations) > 0
    none = np.empty(0, dtype=object)
    ev_m_in = _obj(events["model"]) if has_events else none
    ev_e_in = _obj(events["event_id"]) if has_events else none
    given = _given_keys((events, "ekey"), (observations, "ekey")) if has_events and has_obs else None
    if given is None:
        o_m = _obj(observations["model"]) if has_obs else none
        o_e = _obj(observations["event_id"]) if has_obs else none
        ev_k_in, o_ek = _pair_codes((ev_m_in, ev_e_in), (o_m, o_e))
    else:  # the observations' strings are only read for events missing from `events`
        ev_k_in, o_ek = given
        o_m = o_e = None
    ev = _odf(
        {
            "m": ev_m_in,
            "e": ev_e_in,
            "ts": _us(events["event_ts"]) if has_events else np.empty(0, np.int64),
            "k": ev_k_in,
        }
    )
    if ev["k"].duplicated().any():
        ev = ev.sort_values("ts", kind="mergesort").drop_duplicates("k", keep="first")
    if has_obs:
        o_t, o_v = _obj(observations["identifier_type"]), _obj(observations["value"])
        o_ts = _us(observations["event_ts"])
        o_b = observations["blocked"].to_numpy(dtype=bool)
        missing = ~_isin(o_ek, ev["k"].to_numpy())
        if missing.any():
            if o_m is None or o_e is None:
                o_m, o_e = _obj(observations["model"]), _obj(observations["event_id"])
            extra = _odf({"m": o_m[missing], "e": o_e[missing], "ts": o_ts[missing], "k": o_ek[missing]})
            extra = extra.drop_duplicates("k", keep="first")
            ev = pd.concat([ev, extra], ignore_index=True)
    else:
        o_t = o_v = none
    vkeys = (
        _given_keys((observations, "vkey"), (state.profile_values, "vkey"), (state.value_registry, "vkey"))
        if has_obs
        else None
    )
    if vkeys is None:
        vkeys = _pair_codes(
            (o_t, o_v), (M["identifier_type"], M["value"]), (R["identifier_type"], R["value"])
        )
    o_key, m_key, r_key = vkeys
    ev = ev.iloc[_argsort_rows(ev["ts"].to_numpy(), ev["m"].to_numpy(), ev["e"].to_numpy())]
    ev = ev.reset_index(drop=True)
    nE = len(ev)
    e_m, e_e, e_ts = ev["m"].to_numpy(), ev["e"].to_numpy(), ev["ts"].to_numpy(dtype=np.int64)
    if nE == 0:
        return full_reference()

    # ---- observations per event (distinct (type, value); last blocked flag wins; first-row order) ----------
    if has_obs:
        o_pos = _find(ev["k"].to_numpy(), o_ek)
        ob = _odf({"pos": o_pos, "key": o_key, "t": o_t, "v": o_v, "b": o_b, "row": np.arange(len(o_b))})
        dup = ob.duplicated(["pos", "key"], keep=False)
        if dup.any():
            last_b = ob.drop_duplicates(["pos", "key"], keep="last").set_index(["pos", "key"])["b"]
            ob = ob.drop_duplicates(["pos", "key"], keep="first").reset_index(drop=True)
            ob["b"] = last_b.reindex(pd.MultiIndex.from_arrays([ob["pos"], ob["key"]])).to_numpy(dtype=bool)
    else:
        ob = _odf(
            {
                "pos": np.empty(0, np.int64),
                "key": [],
                "t": [],
                "v": [],
                "b": np.empty(0, bool),
                "row": np.empty(0, np.int64),
            }
        )

    blocked = ob["b"].to_numpy(dtype=bool)
    U = ob[~blocked].reset_index(drop=True)
    B = ob[blocked].reset_index(drop=True)
    # values quarantined before the window (rule 3): unusable, and nothing else happens to them (no
    # attachment, no registry update), so they leave the graph; an event left with none is excluded
    # `conflicted_identifier_value`, decided by its first quarantined value in walk order
    Q = U.iloc[:0]
    if len(U) and R["quarantined"].any():
        uq = _isin(U["key"].to_numpy(), r_key[R["quarantined"]])
        if uq.any():
            Q = U[uq].reset_index(drop=True)
            U = U[~uq].reset_index(drop=True)

    # ---- keys (usable values) and their state ----------------------------------------------------------
    k_codes, k_uniques = pd.factorize(U["key"].to_numpy(), sort=False)
    nK = len(k_uniques)
    u_pos = U["pos"].to_numpy(dtype=np.int64)
    u_k = k_codes.astype(np.int64)
    first_u = np.unique(u_k, return_index=True)[1] if nK else np.empty(0, np.int64)
    k_t = U["t"].to_numpy()[first_u] if nK else np.empty(0, object)
    k_v = U["v"].to_numpy()[first_u] if nK else np.empty(0, object)

    m_k = _find(k_uniques, m_key)
    r_k = _find(k_uniques, r_key)

    p_ids = P["dinmo_stitched_profile_id"]
    nP = len(p_ids)
    pkeys = _given_keys((state.profiles, "pkey"), (state.profile_values, "pkey"))
    m_p = _find(p_ids, M["dinmo_stitched_profile_id"]) if pkeys is None else _find(*pkeys)
    if (m_p < 0).any():
        return full_reference()  # memberships of profiles not loaded: leave it to the reference
    p_active = P["status"] == "active"

    # ---- components ---------------------------------------------------------------------------------------
    in_w = m_k >= 0
    rows = np.concatenate([u_pos, nE + m_k[in_w]])
    cols = np.concatenate([nE + u_k, nE + nK + m_p[in_w]])
    n_nodes = nE + nK + nP
    graph = sp.coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_nodes, n_nodes)).tocsr()
    n_comp, labels = connected_components(graph, directed=False)
    c_ev = labels[:nE]
    c_key = labels[nE : nE + nK]
    c_prof = labels[nE + nK :]

    complex_c = np.zeros(n_comp, dtype=bool)
    # `hard`: what only the reference decides (limits, expiry, quarantine, non-active holders...). A component
    # complex for structure alone (several profiles or creators: merges) takes the merge path below.
    hard_c = np.zeros(n_comp, dtype=bool)
    ev_per_c = np.bincount(c_ev, minlength=n_comp)

    # profiles reached per component
    linked_p = np.unique(m_p[in_w])
    n_prof_c = np.bincount(c_prof[linked_p], minlength=n_comp)
    complex_c[n_prof_c > 1] = True
    _why(complex_c, "profiles>1", ev_per_c)
    complex_c[c_prof[linked_p[~p_active[linked_p]]]] = True
    hard_c[c_prof[linked_p[~p_active[linked_p]]]] = True
    comp_P = np.full(n_comp, -1, dtype=np.int64)
    comp_P[c_prof[linked_p]] = linked_p

    # key state: registry / memberships
    k_in_reg = np.zeros(nK, dtype=bool)
    k_quar = np.zeros(nK, dtype=bool)
    k_rfirst = np.full(nK, NAT, dtype=np.int64)
    k_rlast = np.full(nK, NAT, dtype=np.int64)
    hit = r_k >= 0
    k_in_reg[r_k[hit]] = True
    k_quar[r_k[hit]] = R["quarantined"][hit]
    k_rfirst[r_k[hit]] = R["first_seen_at"][hit]
    k_rlast[r_k[hit]] = R["last_seen_at"][hit]
    k_in_mem = np.zeros(nK, dtype=bool)
    k_in_mem[m_k[in_w]] = True
    k_bad = k_quar | (k_in_reg != k_in_mem)
    nonactive = in_w & (M["status"] != "active")
    k_bad[m_k[nonactive]] = True

    # lifetimes
    u_ts = e_ts[u_pos]
    order = np.lexsort((u_pos, u_k))
    s_k, s_ts = u_k[order], u_ts[order]
    is_first = np.ones(len(s_k), dtype=bool)
    is_first[1:] = s_k[1:] != s_k[:-1]
    first_pos_k = np.full(nK, _BIG, dtype=np.int64)
    np.minimum.at(first_pos_k, u_k, u_pos)
    for t in ids:
        lt = ctx.lifetime_us.get(t)
        if lt is None:
            continue
        sel_k = k_t == t
        if not sel_k.any():
            continue
        if ctx.from_last_seen[t]:
            prev = np.empty(len(s_ts), dtype=np.int64)
            prev[1:] = s_ts[:-1]
            prev[is_first] = NAT
            reg_last = k_rlast[s_k]
            ref = np.maximum(prev, reg_last)
            exp = (ref != NAT) & (s_ts > ref + lt) & sel_k[s_k]
            k_bad[s_k[exp]] = True
        else:
            min_ts = np.full(nK, _BIG, dtype=np.int64)
            max_ts = np.full(nK, np.iinfo(np.int64).min, dtype=np.int64)
            np.minimum.at(min_ts, u_k, u_ts)
            np.maximum.at(max_ts, u_k, u_ts)
            ref = np.where(k_in_reg & (k_rfirst != NAT), np.minimum(k_rfirst, min_ts), min_ts)
            k_bad[sel_k & (max_ts > ref + lt)] = True
    complex_c[c_key[k_bad]] = True
    hard_c[c_key[k_bad]] = True
    # a value held by several profiles reaches the most recent holder, which the window's order changes
    holders_k = np.bincount(m_k[in_w], minlength=nK)
    hard_c[c_key[holders_k > 1]] = True
    _why(complex_c, "bad key", ev_per_c)

    # creators
    known_before = k_in_mem[u_k] | (first_pos_k[u_k] < u_pos)
    ev_has_known = np.zeros(nE, dtype=bool)
    ev_has_known[u_pos[known_before]] = True
    ev_usable = np.zeros(nE, dtype=bool)
    ev_usable[u_pos] = True
    creator = ev_usable & ~ev_has_known
    n_creators = np.bincount(c_ev[creator], minlength=n_comp)
    has_p = comp_P >= 0
    complex_c[has_p & (n_creators > 0)] = True
    _why(complex_c, "P+creator", ev_per_c)
    complex_c[~has_p & (n_creators != 1)] = True
    _why(complex_c, "creators", ev_per_c)

    # limits (anchors: compatibility / rule 5 / dropped anchors; weak: demotion)
    m_active = M["status"] == "active"
    limited = [
        (t, p.max_unique_values_per_profile) for t, p in ids.items() if p.max_unique_values_per_profile
    ]
    for t, limit in limited:
        n_t = np.bincount(c_key[k_t == t], minlength=n_comp)
        outside = (~in_w) & m_active & (M["identifier_type"] == t)
        if outside.any():
            pp = m_p[outside]
            reached = np.isin(pp, linked_p)
            n_t += np.bincount(c_prof[pp[reached]], minlength=n_comp)
        complex_c[n_t > limit] = True
        hard_c[n_t > limit] = True
        _why(complex_c, f"limit {t}", ev_per_c)

    # blocked values held other than as 'blocked' evidence
    if len(B):
        mb = _isin(m_key, B["key"].to_numpy()) & (M["status"] != "blocked")
        if mb.any():
            b_bad = _isin(B["key"].to_numpy(), m_key[mb])
            bp = B["pos"].to_numpy()[b_bad]
            bp = bp[ev_usable[bp]]
            complex_c[c_ev[bp]] = True
            hard_c[c_ev[bp]] = True

    # ---- split events -------------------------------------------------------------------------------
    merge_c = complex_c & ~hard_c
    ev_merge = ev_usable & merge_c[c_ev]
    ev_complex = ev_usable & complex_c[c_ev] & ~ev_merge
    ev_simple = ev_usable & ~complex_c[c_ev]
    ev_excluded = ~ev_usable

    # created ids must not collide with loaded profiles (the reference would derive another id)
    creator_simple = creator & ev_simple
    cand = np.flatnonzero(creator_simple | ev_complex | (creator & ev_merge))
    cand_pid = np.array([profile_id_for(e_m[i], e_e[i]) for i in cand], dtype=object)
    if nP and len(cand) and _isin(cand_pid, p_ids).any():
        return full_reference()
    pid_of_pos = dict(zip(cand_pid.tolist(), cand.tolist(), strict=True))

    # ---- complex components through the reference -----------------------------------------------------
    cx_pos = np.flatnonzero(ev_complex)
    cx_pos_of = dict(
        zip(zip(e_m[cx_pos].tolist(), e_e[cx_pos].tolist(), strict=True), cx_pos.tolist(), strict=True)
    )
    cx_state = None
    if len(cx_pos):
        cx_comp = np.zeros(n_comp, dtype=bool)
        cx_comp[c_ev[cx_pos]] = True
        cx_prof = linked_p[cx_comp[c_prof[linked_p]]]
        cx_prof_ids = p_ids[cx_prof]
        red_sel = _isin(D["to_id"], cx_prof_ids)
        p_sel = _isin(p_ids, np.concatenate([cx_prof_ids, D["from_id"][red_sel]]))
        mem_sel = np.isin(m_p, cx_prof)
        cx_ev_keys = ev["k"].to_numpy()[cx_pos]
        cx_keys = ob["key"].to_numpy()[ev_complex[ob["pos"].to_numpy()]]
        reg_sel = _isin(r_key, cx_keys)
        sub = GraphState(
            profiles=_frame(PROFILE_COLUMNS, _take(P, p_sel)),
            profile_values=_frame(PROFILE_VALUE_COLUMNS, _take(M, mem_sel)),
            value_registry=_frame(REGISTRY_COLUMNS, _take(R, reg_sel)),
            redirects=_frame(REDIRECT_COLUMNS, _take(D, red_sel)),
            next_sequence=next_seq,
        )
        cx_events = events[_isin(ev_k_in, cx_ev_keys)] if has_events else None
        cx_obs = observations[_isin(o_ek, cx_ev_keys)] if has_obs else observations
        g, cctx = run_reference(sub, cx_events, cx_obs, config, window_key)
        cx_state = g.to_state()
        cx_created, cx_merged = cctx.profiles_created, cctx.profiles_merged
        cx_attr, cx_audit = cctx.attribution, [a for a in cctx.audits if a[2] != "blocked_value"]
    else:
        p_sel = np.zeros(nP, dtype=bool)
        mem_sel = np.zeros(len(m_p), dtype=bool)
        reg_sel = np.zeros(len(r_key), dtype=bool)
        red_sel = np.zeros(len(D["from_id"]), dtype=bool)
        cx_created = cx_merged = 0
        cx_attr, cx_audit = [], []

    # ---- simple components ----------------------------------------------------------------------------
    s_comp_ev = np.flatnonzero(ev_simple)
    sc = c_ev[s_comp_ev]
    # target per simple component
    comp_target = np.full(n_comp, None, dtype=object)
    comp_new = np.zeros(n_comp, dtype=bool)
    cr = np.flatnonzero(creator_simple)
    comp_target[c_ev[cr]] = cand_pid[np.searchsorted(cand, cr)]  # cr is a subset of the sorted cand
    comp_new[c_ev[cr]] = True
    comp_creator = np.full(n_comp, -1, dtype=np.int64)
    comp_creator[c_ev[cr]] = cr
    hp = has_p & ~complex_c
    comp_target[hp] = P["dinmo_stitched_profile_id"][comp_P[hp]]

    # walk rank of keys: (priority, type, value)
    if nK:
        prio = np.array([ctx.priority[t] for t in k_t], dtype=np.int64)
        key_of_rank = _argsort_rows(prio, k_t, k_v)
        rank = np.empty(nK, dtype=np.int64)
        rank[key_of_rank] = np.arange(nK)
    else:
        rank = np.empty(0, np.int64)
        key_of_rank = np.empty(0, np.int64)
    # ---- merge components: a union-find pass over their events, in order ----------------------------------
    # No limit, expiry, quarantine or shared value applies there (else they would be `hard`), so the reference
    # would: reach the profile of each known value (one holder each), target the first one in walk order,
    # merge every other reached profile into the older of the two (audited, redirected), create a profile
    # when nothing is known, and attach the event. Aggregates (memberships, registry, the survivor's stats)
    # are then the simple ones on the component's final survivor; the loop gives what depends on the order:
    # each event's profile, the merges and the merged profiles' stats at merge time.
    mg = _merge_walk(
        ev_merge, u_pos, u_k, rank, known_before, m_k, m_p, in_w, nK, P, next_seq, e_ts, ids, k_t
    )
    ev_simple = ev_simple | ev_merge  # aggregates below treat merge components like simple ones
    s_comp_ev = np.flatnonzero(ev_simple)
    sc = c_ev[s_comp_ev]
    if mg is not None:
        mg_pid = np.empty(nP + nE, dtype=object)
        mg_pid[:nP] = P["dinmo_stitched_profile_id"]
        new_g = np.array(sorted(g for g in mg["stats"] if g >= nP), dtype=np.int64)
        mg_pid[new_g] = cand_pid[np.searchsorted(cand, new_g - nP)]
        root = {g: mg["find"](g) for g in mg["stats"]}
        mg_ev = np.array(list(mg["ev_group"]), dtype=np.int64)
        mg_ev_g = np.array(list(mg["ev_group"].values()), dtype=np.int64)
        mg_root_ev = np.array([root[g] for g in mg_ev_g], dtype=np.int64)
        comp_target[c_ev[mg_ev]] = mg_pid[mg_root_ev]
    u_simple = ev_simple[u_pos]
    eff = np.where(known_before | creator[u_pos], rank[u_k], _BIG)
    dec = np.full(nE, _BIG, dtype=np.int64)
    np.minimum.at(dec, u_pos[u_simple], eff[u_simple])

    # attribution rows
    A_simple = {
        "pos": s_comp_ev,
        "model": e_m[s_comp_ev],
        "event_id": e_e[s_comp_ev],
        "event_ts": e_ts[s_comp_ev],
        "dinmo_stitched_profile_id": comp_target[sc],
        "status": np.full(len(s_comp_ev), "stitched", dtype=object),
        "reason": np.full(len(s_comp_ev), None, dtype=object),
        "decided_by_identifier_type": k_t[key_of_rank[dec[s_comp_ev]]]
        if len(s_comp_ev)
        else np.empty(0, object),
        "decided_by_value": k_v[key_of_rank[dec[s_comp_ev]]] if len(s_comp_ev) else np.empty(0, object),
    }
    x = np.flatnonzero(ev_excluded)
    A_excl = {
        "pos": x,
        "model": e_m[x],
        "event_id": e_e[x],
        "event_ts": e_ts[x],
        "dinmo_stitched_profile_id": np.full(len(x), None, dtype=object),
        "status": np.full(len(x), "excluded", dtype=object),
        "reason": np.full(len(x), "no_matchable_identifier", dtype=object),
        "decided_by_identifier_type": np.full(len(x), None, dtype=object),
        "decided_by_value": np.full(len(x), None, dtype=object),
    }
    if len(Q):
        qf = _odf(
            {
                "pos": Q["pos"].to_numpy(dtype=np.int64),
                "p": np.array([ctx.priority[t] for t in Q["t"].to_numpy()], dtype=np.int64),
                "t": Q["t"].to_numpy(),
                "v": Q["v"].to_numpy(),
            }
        )
        qf = qf[~ev_usable[qf["pos"].to_numpy()]]
        qf = qf.sort_values(["pos", "p", "t", "v"], kind="mergesort").drop_duplicates("pos", keep="first")
        at = np.searchsorted(x, qf["pos"].to_numpy())  # x is sorted; every qf pos is an excluded event
        A_excl["reason"][at] = "conflicted_identifier_value"
        A_excl["decided_by_identifier_type"][at] = qf["t"].to_numpy()
        A_excl["decided_by_value"][at] = qf["v"].to_numpy()
    attr_cols = ["pos", *[c for c in ATTRIBUTION_COLUMNS if c != "window_key"]]
    if cx_attr:
        ca = list(zip(*cx_attr, strict=True))
        cx_m = np.array(ca[0], dtype=object)
        cx_e = np.array(ca[1], dtype=object)
        cpos = np.array([cx_pos_of[k] for k in zip(ca[0], ca[1], strict=True)], dtype=np.int64)
        A_cx = {
            "pos": cpos,
            "model": cx_m,
            "event_id": cx_e,
            "event_ts": np.array([NAT if v is None else v for v in ca[2]], dtype=np.int64),
            "dinmo_stitched_profile_id": np.array(ca[4], dtype=object),
            "status": np.array(ca[5], dtype=object),
            "reason": np.array(ca[6], dtype=object),
            "decided_by_identifier_type": np.array(ca[7], dtype=object),
            "decided_by_value": np.array(ca[8], dtype=object),
        }
        parts = [A_simple, A_excl, A_cx]
    else:
        parts = [A_simple, A_excl]
    if mg is not None:  # each merge event's profile as decided then (before later merges)
        at = np.searchsorted(s_comp_ev, mg_ev)
        A_simple["dinmo_stitched_profile_id"][at] = mg_pid[mg_ev_g]
    A = _concat(parts, attr_cols)
    o = np.argsort(A["pos"], kind="stable")
    A = {c: v[o] for c, v in A.items()}
    A["window_key"] = np.full(len(o), window_key, dtype=object)
    attribution = _rows_frame(A, ATTRIBUTION_COLUMNS, "event_ts")

    # audits: releases, blocked (first event of each blocked value), complex rows
    audit_parts = []
    if len(B):
        Bs = B.sort_values(["pos", "row"], kind="mergesort").drop_duplicates("key", keep="first")
        bpos = Bs["pos"].to_numpy(dtype=np.int64)
        nb = len(Bs)
        audit_parts.append(
            {
                "o1": bpos,
                "o2": np.zeros(nb, np.int64),
                "o3": Bs["row"].to_numpy(dtype=np.int64),
                "window_key": np.full(nb, window_key, dtype=object),
                "event_ts": e_ts[bpos],
                "audit_type": np.full(nb, "blocked_value", dtype=object),
                "identifier_type": Bs["t"].to_numpy(dtype=object),
                "value": Bs["v"].to_numpy(dtype=object),
                "dinmo_stitched_profile_id": np.full(nb, None, dtype=object),
                "other_dinmo_stitched_profile_id": np.full(nb, None, dtype=object),
                "model": e_m[bpos],
                "event_id": e_e[bpos],
                "detail": np.full(nb, "blocked value, not used", dtype=object),
            }
        )
    for kind, rows_ in ((0, audit_release), (1, cx_audit)):
        if not rows_:
            continue
        cols_ = list(zip(*rows_, strict=True))
        n = len(rows_)
        if kind == 0:
            o1 = np.full(n, -1, dtype=np.int64)
        else:
            o1 = np.array(
                [cx_pos_of.get(k, -1) for k in zip(cols_[7], cols_[8], strict=True)], dtype=np.int64
            )
        d = {
            "o1": o1,
            "o2": np.ones(n, np.int64),
            "o3": np.arange(n, dtype=np.int64),
        }
        for i, c in enumerate(AUDIT_COLUMNS):
            if c == "event_ts":
                d[c] = np.array([NAT if v is None else v for v in cols_[i]], dtype=np.int64)
            else:
                d[c] = np.array(cols_[i], dtype=object)
        audit_parts.append(d)
    if mg is not None and mg["merges"]:
        mpos = np.array([m[0] for m in mg["merges"]], dtype=np.int64)
        mkey = np.array([m[1] for m in mg["merges"]], dtype=np.int64)
        msur = np.array([m[2] for m in mg["merges"]], dtype=np.int64)
        mlos = np.array([m[3] for m in mg["merges"]], dtype=np.int64)
        nmg = len(mpos)
        audit_parts.append(
            {
                "o1": mpos,
                "o2": np.ones(nmg, np.int64),
                "o3": np.arange(nmg, dtype=np.int64),
                "window_key": np.full(nmg, window_key, dtype=object),
                "event_ts": e_ts[mpos],
                "audit_type": np.full(nmg, "merge", dtype=object),
                "identifier_type": k_t[mkey],
                "value": k_v[mkey],
                "dinmo_stitched_profile_id": mg_pid[msur],
                "other_dinmo_stitched_profile_id": mg_pid[mlos],
                "model": e_m[mpos],
                "event_id": e_e[mpos],
                "detail": np.full(nmg, "merged into the oldest profile", dtype=object),
            }
        )
    acols = ["o1", "o2", "o3", *AUDIT_COLUMNS]
    if audit_parts:
        AU = _concat(audit_parts, acols)
        o = np.lexsort((AU["o3"], AU["o2"], AU["o1"]))
        AU = {c: v[o] for c, v in AU.items()}
    else:
        AU = {
            c: np.empty(0, dtype=np.int64 if c in ("o1", "o2", "o3", "event_ts") else object) for c in acols
        }
    audit = _rows_frame(AU, AUDIT_COLUMNS, "event_ts")

    # ---- state: simple updates --------------------------------------------------------------------------
    # per (component, key) aggregates of simple usable observations
    su_pos, su_k = u_pos[u_simple], u_k[u_simple]
    su_ts = e_ts[su_pos]
    k_n = np.bincount(su_k, minlength=nK)
    k_min = np.full(nK, _BIG, dtype=np.int64)
    k_max = np.full(nK, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(k_min, su_k, su_ts)
    np.maximum.at(k_max, su_k, su_ts)
    simple_keys = np.flatnonzero(k_n > 0)

    # registry
    reg_upd = (r_k >= 0) & ~reg_sel
    reg_upd[reg_upd] = k_n[r_k[reg_upd]] > 0
    R2 = {c: v.copy() for c, v in R.items()}
    rk = r_k[reg_upd]
    R2["first_seen_at"][reg_upd] = np.minimum(R2["first_seen_at"][reg_upd], k_min[rk])
    R2["last_seen_at"][reg_upd] = np.maximum(R2["last_seen_at"][reg_upd], k_max[rk])
    R2["event_count"][reg_upd] = R2["event_count"][reg_upd] + k_n[rk]
    new_reg_k = simple_keys[~k_in_reg[simple_keys]]
    nr = len(new_reg_k)
    R_new = {
        "identifier_type": k_t[new_reg_k],
        "value": k_v[new_reg_k],
        "first_seen_at": k_min[new_reg_k],
        "last_seen_at": k_max[new_reg_k],
        "quarantined": np.zeros(nr, dtype=bool),
        "quarantined_at": np.full(nr, NAT, dtype=np.int64),
        "event_count": k_n[new_reg_k],
    }
    reg_parts = [_take(R2, ~reg_sel), R_new]
    if cx_state is not None:
        reg_parts.append(_norm(cx_state.value_registry, REGISTRY_COLUMNS))
    registry = _frame(REGISTRY_COLUMNS, _concat(reg_parts, REGISTRY_COLUMNS))

    # memberships: usable keys (active) on the component's target
    M2 = {c: v.copy() for c, v in M.items()}
    mem_upd = in_w & ~mem_sel
    mem_upd[mem_upd] = k_n[m_k[mem_upd]] > 0
    mk = m_k[mem_upd]
    M2["first_seen_at"][mem_upd] = np.minimum(M2["first_seen_at"][mem_upd], k_min[mk])
    M2["last_seen_at"][mem_upd] = np.maximum(M2["last_seen_at"][mem_upd], k_max[mk])
    M2["event_count"][mem_upd] = M2["event_count"][mem_upd] + k_n[mk]
    new_mem_k = simple_keys[~k_in_mem[simple_keys]]
    nm = len(new_mem_k)
    M_new = {
        "dinmo_stitched_profile_id": comp_target[c_key[new_mem_k]],
        "identifier_type": k_t[new_mem_k],
        "value": k_v[new_mem_k],
        "status": np.full(nm, "active", dtype=object),
        "first_seen_at": k_min[new_mem_k],
        "last_seen_at": k_max[new_mem_k],
        "event_count": k_n[new_mem_k],
    }
    mem_parts = [M_new]
    # blocked evidence of simple events
    if len(B):
        bsel = ev_simple[B["pos"].to_numpy()]
        if bsel.any():
            Bsimp = B[bsel]
            bp = Bsimp["pos"].to_numpy(dtype=np.int64)
            bdf = _odf(
                {
                    "pid": comp_target[c_ev[bp]],
                    "key": Bsimp["key"].to_numpy(),
                    "t": Bsimp["t"].to_numpy(),
                    "v": Bsimp["v"].to_numpy(),
                    "ts": e_ts[bp],
                }
            )
            agg = bdf.groupby(["pid", "key"], sort=False).agg(
                t=("t", "first"), v=("v", "first"), n=("ts", "size"), mn=("ts", "min"), mx=("ts", "max")
            )
            agg = agg.reset_index()
            # memberships of these values (integer keys first: a few rows, not every loaded membership)
            near = np.flatnonzero(_isin(m_key, agg["key"].to_numpy()))
            held, blocked_rows = _pair_codes(
                (M["dinmo_stitched_profile_id"][near], m_key[near]),
                (agg["pid"].to_numpy(), agg["key"].to_numpy()),
            )
            j = _find(held, blocked_rows)
            j[j >= 0] = near[j[j >= 0]]
            exist = j >= 0
            if exist.any():
                jj = j[exist]
                M2["first_seen_at"][jj] = np.minimum(M2["first_seen_at"][jj], agg["mn"].to_numpy()[exist])
                M2["last_seen_at"][jj] = np.maximum(M2["last_seen_at"][jj], agg["mx"].to_numpy()[exist])
                M2["event_count"][jj] = M2["event_count"][jj] + agg["n"].to_numpy()[exist]
            nb_ = int((~exist).sum())
            mem_parts.append(
                {
                    "dinmo_stitched_profile_id": agg["pid"].to_numpy(dtype=object)[~exist],
                    "identifier_type": agg["t"].to_numpy(dtype=object)[~exist],
                    "value": agg["v"].to_numpy(dtype=object)[~exist],
                    "status": np.full(nb_, "blocked", dtype=object),
                    "first_seen_at": agg["mn"].to_numpy(dtype=np.int64)[~exist],
                    "last_seen_at": agg["mx"].to_numpy(dtype=np.int64)[~exist],
                    "event_count": agg["n"].to_numpy(dtype=np.int64)[~exist],
                }
            )
    mem_parts.insert(0, _take(M2, ~mem_sel))
    if cx_state is not None:
        mem_parts.append(_norm(cx_state.profile_values, PROFILE_VALUE_COLUMNS))
    MEM = _concat(mem_parts, PROFILE_VALUE_COLUMNS)
    if mg is not None and mg["merges"]:
        MEM = _rekey_merged(MEM, {mg_pid[g]: mg_pid[root[g]] for g in mg["parent"]})
    memberships = _frame(PROFILE_VALUE_COLUMNS, MEM)

    # profiles
    c_n = np.bincount(sc, minlength=n_comp)
    c_min = np.full(n_comp, _BIG, dtype=np.int64)
    c_max = np.full(n_comp, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(c_min, sc, e_ts[s_comp_ev])
    np.maximum.at(c_max, sc, e_ts[s_comp_ev])
    anchor_types = [t for t in ids if ids[t].anchor]
    c_anchor = np.zeros(n_comp, dtype=bool)
    k_anchor = np.isin(k_t, anchor_types) if nK else np.zeros(0, bool)
    c_anchor[c_key[simple_keys[k_anchor[simple_keys]]]] = True
    P2 = {c: v.copy() for c, v in P.items()}
    upd_c = np.flatnonzero(hp & (c_n > 0))
    up = comp_P[upd_c]
    p_anchor = np.zeros(nP, dtype=bool)
    act_anchor = m_active & np.isin(M["identifier_type"], anchor_types) if len(m_p) else np.zeros(0, bool)
    p_anchor[m_p[act_anchor]] = True
    P2["first_seen_at"][up] = np.minimum(P2["first_seen_at"][up], c_min[upd_c])
    P2["last_seen_at"][up] = np.maximum(P2["last_seen_at"][up], c_max[upd_c])
    P2["event_count"][up] = P2["event_count"][up] + c_n[upd_c]
    P2["is_known"][up] = p_anchor[up] | c_anchor[upd_c]
    new_c = np.flatnonzero(comp_new)
    nn = len(new_c)
    cr_pos = comp_creator[new_c]
    P_new = {
        "dinmo_stitched_profile_id": comp_target[new_c],
        "created_sequence": cr_pos.astype(np.int64),  # renumbered below
        "created_at": e_ts[cr_pos],
        "first_seen_at": c_min[new_c],
        "last_seen_at": c_max[new_c],
        "status": np.full(nn, "active", dtype=object),
        "merged_to_dinmo_stitched_profile_id": np.full(nn, None, dtype=object),
        "event_count": c_n[new_c],
        "is_known": c_anchor[new_c],
    }
    created_pos = [cr_pos]
    mg_new: dict[str, np.ndarray] | None = None
    if mg is not None:
        st = mg["stats"]
        for g, (cnt, fst, lst, kn) in st.items():  # loaded profiles of merge components
            if g < nP:
                P2["event_count"][g], P2["first_seen_at"][g], P2["last_seen_at"][g] = cnt, fst, lst
                P2["is_known"][g] = kn
                if g in mg["parent"]:
                    P2["status"][g] = "merged"
                    P2["merged_to_dinmo_stitched_profile_id"][g] = mg_pid[root[g]]
        new_root = np.array([root[g] for g in new_g], dtype=np.int64)
        merged_new = np.array([g in mg["parent"] for g in new_g], dtype=bool)
        mg_new = {
            "dinmo_stitched_profile_id": mg_pid[new_g],
            "created_sequence": new_g - nP,  # renumbered below
            "created_at": e_ts[new_g - nP],
            "first_seen_at": np.array([st[g][1] for g in new_g], dtype=np.int64),
            "last_seen_at": np.array([st[g][2] for g in new_g], dtype=np.int64),
            "status": np.where(merged_new, "merged", "active").astype(object),
            "merged_to_dinmo_stitched_profile_id": np.where(merged_new, mg_pid[new_root], None).astype(
                object
            ),
            "event_count": np.array([st[g][0] for g in new_g], dtype=np.int64),
            "is_known": np.array([st[g][3] for g in new_g], dtype=bool),
        }
        created_pos.append(new_g - nP)
        # redirects to a loaded profile merged now follow it to the survivor (one hop)
        lost = {mg_pid[g]: mg_pid[root[g]] for g in mg["parent"] if g < nP}
        if lost:
            D = _writable(D)
            rp = _isin(D["to_id"], np.array(list(lost), dtype=object))
            D["to_id"][rp] = np.array([lost[t] for t in D["to_id"][rp]], dtype=object)
            fp = _find(p_ids, D["from_id"][rp])
            P2["merged_to_dinmo_stitched_profile_id"][fp[fp >= 0]] = D["to_id"][rp][fp >= 0]
    prof_parts = [_take(P2, ~p_sel), P_new]
    if mg_new is not None:
        prof_parts.append(mg_new)
    # renumber created profiles by the global order of their creating events
    if cx_state is not None:
        CP = _writable(_norm(cx_state.profiles, PROFILE_COLUMNS))
        is_new = CP["created_sequence"] >= next_seq
        new_ids = CP["dinmo_stitched_profile_id"][is_new]
        cpos = np.array([pid_of_pos[p] for p in new_ids], dtype=np.int64)
        created_pos.append(cpos)
        prof_parts.append(CP)
    all_pos = np.concatenate(created_pos)
    order_pos = np.sort(all_pos)
    seq_of = dict(zip(order_pos.tolist(), range(next_seq, next_seq + len(order_pos)), strict=True))
    P_new["created_sequence"] = np.array([seq_of[int(p)] for p in cr_pos], dtype=np.int64)
    if cx_state is not None:
        CP["created_sequence"][is_new] = np.array([seq_of[int(p)] for p in cpos], dtype=np.int64)
    if mg_new is not None:
        mg_new["created_sequence"] = np.array([seq_of[int(p)] for p in new_g - nP], dtype=np.int64)
    profiles = _frame(PROFILE_COLUMNS, _concat(prof_parts, PROFILE_COLUMNS))

    # redirects
    red_parts = [_take(D, ~red_sel)]
    if mg is not None and mg["merges"]:
        red_parts.append(
            {
                "from_id": mg_pid[mlos],
                "to_id": mg_pid[np.array([root[g] for g in mlos], dtype=np.int64)],
                "merged_at": e_ts[mpos],
                "evidence_model": e_m[mpos],
                "evidence_event_id": e_e[mpos],
                "window_key": np.full(nmg, window_key, dtype=object),
            }
        )
    if cx_state is not None:
        red_parts.append(_norm(cx_state.redirects, REDIRECT_COLUMNS))
    redirects = _frame(REDIRECT_COLUMNS, _concat(red_parts, REDIRECT_COLUMNS))

    new_state = GraphState(
        profiles=profiles,
        profile_values=memberships,
        value_registry=registry,
        redirects=redirects,
        next_sequence=next_seq + len(order_pos),
    )
    mg_created = len(new_g) if mg is not None else 0
    mg_merged = len(mg["merges"]) if mg is not None else 0
    metrics, by_model, by_type = window_metrics(
        attribution, audit, observations, nn + cx_created + mg_created, cx_merged + mg_merged
    )
    metrics["events_fast_path"] = int(ev_simple.sum() + ev_excluded.sum())
    return WindowResult(
        state=new_state,
        attribution=attribution,
        audit_events=audit,
        metrics=metrics,
        metrics_by_model=by_model,
        metrics_by_identifier_type=by_type,
    )
