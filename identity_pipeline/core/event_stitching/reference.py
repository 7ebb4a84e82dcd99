"""Reference implementation of Event Stitching: the spec's numbered per-event rules, one function per rule.

Written to be obviously correct, not clever: events are processed one by one in (event_ts, model, event_id)
order against the dict form of the graph (`state.Graph`). Any faster path must produce exactly the same
outputs. Rule numbers are the spec's "Per-event decision" rules, restated in docs/event-stitching.md with
every choice the spec leaves open.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from identity_pipeline.config.event_stitching import EventStitchingConfig
from identity_pipeline.core.event_stitching.hashing import profile_key
from identity_pipeline.core.event_stitching.rules.compatibility import compatible, fits
from identity_pipeline.core.event_stitching.rules.demotion import values_to_demote
from identity_pipeline.core.event_stitching.rules.lifetime import is_expired
from identity_pipeline.core.event_stitching.rules.quarantine import (
    holder_count,
    over_limit,
    release_applies,
    to_us,
)
from identity_pipeline.core.event_stitching.state import (
    STATUS_RANK,
    Graph,
    GraphState,
    Key,
    Membership,
    Profile,
    RegistryEntry,
    _strs,
    ts_to_us,
)
from identity_pipeline.core.standardize import standardize

PROFILE_PREFIX = "esp_"

# attribution row: model, event_id, event_ts(us), window_key, profile_id, status, reason,
#                  decided_type, decided_value
AttributionRow = tuple
# audit row: window_key, event_ts(us|None), audit_type, identifier_type, value, profile_id, other_profile_id,
#            model, event_id, detail
AuditRow = tuple


def profile_id_for(model: str, event_id: str, salt: int | None = None) -> str:
    """Rule 7: deterministic id of the profile an event creates: `esp_` + 16 hex digits of a 64-bit hash of
    (model, event_id) (`hashing.profile_key`; with `salt`, the variant used when that id exists already)."""
    return f"{PROFILE_PREFIX}{profile_key(model, event_id, salt):016x}"


# ------------------------------------------------------------------------------------------------------------
# Window preparation (shared with any other path)
# ------------------------------------------------------------------------------------------------------------


def prepare_events(
    events: pd.DataFrame, observations: pd.DataFrame
) -> tuple[list[tuple[int, str, str]], dict[tuple[str, str], list[tuple[str, str, bool]]]]:
    """Events sorted by (event_ts, model, event_id), one per (model, event_id) (earliest timestamp wins), and
    each event's distinct observations (identifier_type, value, blocked). Events only present in
    `observations` are included too."""
    first_ts: dict[tuple[str, str], int] = {}
    if events is not None and len(events):
        for m, e, ts in zip(
            _strs(events["model"]), _strs(events["event_id"]), ts_to_us(events["event_ts"]), strict=True
        ):
            k = (m, e)
            old = first_ts.get(k)
            if old is None or ts < old:
                first_ts[k] = ts
    obs: dict[tuple[str, str], dict[Key, bool]] = {}
    if observations is not None and len(observations):
        for m, e, ts, t, v, b in zip(
            _strs(observations["model"]),
            _strs(observations["event_id"]),
            ts_to_us(observations["event_ts"]),
            _strs(observations["identifier_type"]),
            _strs(observations["value"]),
            observations["blocked"].astype(bool).tolist(),
            strict=True,
        ):
            k = (m, e)
            if k not in first_ts:
                first_ts[k] = ts
            obs.setdefault(k, {})[(t, v)] = bool(b)
    order = sorted((ts, m, e) for (m, e), ts in first_ts.items())
    by_event = {k: [(t, v, b) for (t, v), b in d.items()] for k, d in obs.items()}
    return order, by_event


@dataclass
class Context:
    """Config-derived lookups and the window's output buffers."""

    window_key: str
    priority: dict[str, int]
    anchor: dict[str, bool]
    unique_limit: dict[str, int | None]
    anchor_limits: dict[str, int | None]
    weak_limited: list[tuple[str, int]]
    anchor_types: list[str]
    lifetime_us: dict[str, int | None]
    from_last_seen: dict[str, bool]
    max_profiles: dict[str, int | None]
    exempt: set[Key]
    releases: list[tuple[Key, int | None]]
    attribution: list[AttributionRow] = field(default_factory=list)
    audits: list[AuditRow] = field(default_factory=list)
    blocked_seen: set[Key] = field(default_factory=set)
    expired_seen: set[Key] = field(default_factory=set)
    profiles_created: int = 0
    profiles_merged: int = 0

    @classmethod
    def build(cls, config: EventStitchingConfig, window_key: str) -> Context:
        ids = config.identifiers
        releases: list[tuple[Key, int | None]] = []
        exempt: set[Key] = set()
        for r in config.released_values:
            std = standardize(pd.Series([r.value], dtype="string"), ids[r.identifier].standardize)
            value = r.value if std.isna().iloc[0] else str(std.iloc[0])
            key = (r.identifier, value)
            at = to_us(r.released_at)
            releases.append((key, at))
            if at is None:
                exempt.add(key)
        lifetimes = {}
        for t, p in ids.items():
            d = p.lifetime_delta()
            lifetimes[t] = None if d is None else int(d.total_seconds() * 1_000_000)
        return cls(
            window_key=window_key,
            priority={t: p.priority for t, p in ids.items()},
            anchor={t: p.anchor for t, p in ids.items()},
            unique_limit={t: p.max_unique_values_per_profile for t, p in ids.items()},
            anchor_limits={t: p.max_unique_values_per_profile for t, p in ids.items() if p.anchor},
            weak_limited=sorted(
                (t, p.max_unique_values_per_profile)
                for t, p in ids.items()
                if not p.anchor and p.max_unique_values_per_profile is not None
            ),
            anchor_types=[t for t in config.identifier_order() if ids[t].anchor],
            lifetime_us=lifetimes,
            from_last_seen={t: p.lifetime_from == "last_seen" for t, p in ids.items()},
            max_profiles={t: p.max_profiles_per_value for t, p in ids.items()},
            exempt=exempt,
            releases=releases,
        )

    def audit(self, ts, kind, t=None, v=None, pid=None, other=None, model=None, eid=None, detail=None):
        self.audits.append((self.window_key, ts, kind, t, v, pid, other, model, eid, detail))

    def attribute(self, ts, model, eid, pid, status, reason, decided: Key | None):
        t, v = decided if decided is not None else (None, None)
        self.attribution.append((model, eid, ts, self.window_key, pid, status, reason, t, v))


# ------------------------------------------------------------------------------------------------------------
# Graph mutators
# ------------------------------------------------------------------------------------------------------------


def _set_status(g: Graph, pid: str, key: Key, m: Membership, status: str) -> None:
    t, v = key
    if m.status == "active" and status != "active":
        act = g.active.get(pid, {}).get(t)
        if act is not None:
            act.discard(v)
    elif m.status != "active" and status == "active":
        g.active.setdefault(pid, {}).setdefault(t, set()).add(v)
    m.status = status


def reach(g: Graph, key: Key) -> str | None:
    """Rule 6: the profile a value reaches — among the profiles holding it ACTIVE, the one that saw it most
    recently (ties: smallest profile id). None when no profile holds it active."""
    best: str | None = None
    best_ls = 0
    for pid in g.holders.get(key, ()):
        m = g.members[pid][key]
        if m.status != "active":
            continue
        if best is None or m.last_seen > best_ls or (m.last_seen == best_ls and pid < best):
            best, best_ls = pid, m.last_seen
    return best


def merge_profiles(g: Graph, ctx: Context, a: str, b: str, ts: int, model: str, eid: str, key: Key) -> str:
    """Rule 6 (merge): the oldest profile (smallest created_sequence) survives; the other's memberships move
    to it, it becomes `merged`, and every redirect to it is re-pointed (redirects stay one hop)."""
    pa, pb = g.profiles[a], g.profiles[b]
    surv, loser = (pa, pb) if (pa.seq, pa.pid) < (pb.seq, pb.pid) else (pb, pa)
    s_mem = g.members.setdefault(surv.pid, {})
    for k, m in g.members.pop(loser.pid, {}).items():
        hs = g.holders[k]
        hs.discard(loser.pid)
        hs.add(surv.pid)
        old = s_mem.get(k)
        if old is None:
            s_mem[k] = m
            if m.status == "active":
                g.active.setdefault(surv.pid, {}).setdefault(k[0], set()).add(k[1])
        else:
            if STATUS_RANK[m.status] > STATUS_RANK[old.status]:
                _set_status(g, surv.pid, k, old, m.status)
            old.first_seen = min(old.first_seen, m.first_seen)
            old.last_seen = max(old.last_seen, m.last_seen)
            old.count += m.count
    g.active.pop(loser.pid, None)
    surv.first_seen = min(surv.first_seen, loser.first_seen)
    surv.last_seen = max(surv.last_seen, loser.last_seen)
    surv.count += loser.count
    surv.known = surv.known or loser.known
    loser.status = "merged"
    loser.merged_to = surv.pid
    for f in sorted(g.redirected_to.pop(loser.pid, set())):
        g.redirects[f][0] = surv.pid
        g.redirected_to.setdefault(surv.pid, set()).add(f)
        if f in g.profiles:
            g.profiles[f].merged_to = surv.pid
    g.redirects[loser.pid] = [surv.pid, ts, model, eid, ctx.window_key]
    g.redirected_to.setdefault(surv.pid, set()).add(loser.pid)
    ctx.profiles_merged += 1
    ctx.audit(ts, "merge", key[0], key[1], surv.pid, loser.pid, model, eid, "merged into the oldest profile")
    return surv.pid


# ------------------------------------------------------------------------------------------------------------
# Released values (start of window)
# ------------------------------------------------------------------------------------------------------------


def apply_releases(g: Graph, ctx: Context) -> None:
    """`released_values` lift the quarantine of listed values at the start of the window (audited)."""
    for key, at in ctx.releases:
        e = g.registry.get(key)
        if e is not None and e.quarantined and release_applies(e.quarantined_at, at):
            e.quarantined = False
            e.quarantined_at = None
            ctx.audit(None, "released_value", key[0], key[1], detail="released in config (released_values)")


# ------------------------------------------------------------------------------------------------------------
# Per-event rules
# ------------------------------------------------------------------------------------------------------------


def rule_2_drop_blocked(ctx, ts, model, eid, obs) -> tuple[list[Key], list[Key]]:
    """Rule 2: blocked values leave matching; each is audited once per value and window."""
    values, blocked = [], []
    for t, v, b in obs:
        if b:
            blocked.append((t, v))
            if (t, v) not in ctx.blocked_seen:
                ctx.blocked_seen.add((t, v))
                ctx.audit(ts, "blocked_value", t, v, model=model, eid=eid, detail="blocked value, not used")
        else:
            values.append((t, v))
    return values, blocked


def rule_3_usable(g: Graph, ctx: Context, ts, model, eid, values: list[Key]):
    """Rule 3: a known value is unusable when quarantined, expired, or demoted on every profile holding it.
    Returns (usable, quarantined, demoted_everywhere); unknown values are usable."""
    usable, quarantined, demoted = [], [], []
    for key in values:
        e = g.registry.get(key)
        if e is None:
            usable.append(key)
            continue
        t = key[0]
        if e.quarantined:
            quarantined.append(key)
        elif is_expired(e, ts, ctx.lifetime_us[t], ctx.from_last_seen[t]):
            if key not in ctx.expired_seen:
                ctx.expired_seen.add(key)
                ctx.audit(ts, "expired_value", t, key[1], model=model, eid=eid, detail="lifetime passed")
        elif g.holders.get(key) and reach(g, key) is None:
            demoted.append(key)
        else:
            usable.append(key)
    return usable, quarantined, demoted


def rule_4_nothing_usable(ctx, ts, model, eid, usable, quarantined) -> bool:
    """Rule 4: no usable value -> excluded (conflicted_identifier_value if a quarantined value was there)."""
    if usable:
        return False
    if quarantined:
        first = min(quarantined, key=lambda k: (ctx.priority[k[0]], k[0], k[1]))
        ctx.attribute(ts, model, eid, None, "excluded", "conflicted_identifier_value", first)
    else:
        ctx.attribute(ts, model, eid, None, "excluded", "no_matchable_identifier", None)
    return True


def rule_5_limit_conflict(ctx, ts, model, eid, usable) -> bool:
    """Rule 5: more usable values of one anchor type than its limit -> excluded, nothing changes, audited."""
    per_type: dict[str, list[str]] = {}
    for t, v in usable:
        if ctx.anchor[t]:
            per_type.setdefault(t, []).append(v)
    for t in ctx.anchor_types:
        vals = per_type.get(t)
        limit = ctx.unique_limit[t]
        if vals and limit is not None and len(vals) > limit:
            detail = f"event carries {len(vals)} {t} values, limit {limit}"
            for v in sorted(vals):
                ctx.audit(ts, "limit_conflict", t, v, model=model, eid=eid, detail=detail)
            ctx.attribute(ts, model, eid, None, "excluded", "limit_conflict", (t, None))
            return True
    return False


def rule_6_walk(g: Graph, ctx: Context, ts, model, eid, usable: list[Key]):
    """Rule 6: walk usable values strongest first (priority, type, value), keeping accepted anchors; find the
    target, merge compatible profiles into it, drop anchors that do not fit, attach weak values.

    Returns (target | None, decided_by | None, values to attach in walk order)."""
    target: str | None = None
    decided: Key | None = None
    accepted: dict[str, set[str]] = {}
    attach: list[Key] = []
    limits = ctx.anchor_limits
    no_anchors: dict[str, set[str]] = {}
    for key in sorted(usable, key=lambda k: (ctx.priority[k[0]], k[0], k[1])):
        t, v = key
        holder = reach(g, key)
        t_active = g.active.get(target, no_anchors) if target is not None else no_anchors
        if ctx.anchor[t]:
            if holder is None:
                # a new anchor value (or one no profile holds active): must fit the target + accepted anchors
                if not fits(t_active.get(t), accepted.get(t), v, ctx.unique_limit[t]):
                    ctx.audit(
                        ts,
                        "limit_conflict",  # spec rule 6: both kinds of dropped anchor are limit_conflict
                        t,
                        v,
                        target,
                        None,
                        model,
                        eid,
                        "new anchor value dropped: it would exceed max_unique_values_per_profile",
                    )
                    continue
            elif holder != target:
                h_active = g.active.get(holder, no_anchors)
                if not compatible((h_active, t_active, accepted), limits):
                    ctx.audit(
                        ts,
                        "limit_conflict",
                        t,
                        v,
                        target,
                        holder,
                        model,
                        eid,
                        "anchor value held by an incompatible profile; dropped from the event",
                    )
                    continue
                if target is None:
                    target, decided = holder, key
                else:
                    target = merge_profiles(g, ctx, target, holder, ts, model, eid, key)
            accepted.setdefault(t, set()).add(v)
            attach.append(key)
        else:
            if holder is not None and holder != target:
                h_active = g.active.get(holder, no_anchors)
                if compatible((h_active, t_active, accepted), limits):
                    if target is None:
                        target, decided = holder, key
                    else:
                        target = merge_profiles(g, ctx, target, holder, ts, model, eid, key)
                # incompatible: merges nothing; the value is attached to the event's profile too
            attach.append(key)
    if target is not None and decided is None:
        decided = attach[0] if attach else None
    return target, decided, attach


def rule_7_create(g: Graph, ctx: Context, ts: int, model: str, eid: str) -> str:
    """Rule 7: no compatible profile reached -> create one with a deterministic id (`profile_id_for`)."""
    pid = profile_id_for(model, eid)
    if pid in g.profiles:  # same (model, event_id) created a profile in an earlier window: keep ids unique
        pid = profile_id_for(model, eid, salt=g.next_sequence)
    g.profiles[pid] = Profile(pid, g.next_sequence, ts, ts, ts, "active", None, 0, False)
    g.next_sequence += 1
    ctx.profiles_created += 1
    return pid


def rule_8_attach(g: Graph, ctx: Context, pid, ts, model, eid, attach: list[Key], blocked: list[Key]) -> None:
    """Rule 8: attach the event and its values; refresh first/last seen and counts; demote weak values over
    capacity (LRU, re-activation); quarantine values held by too many profiles."""
    prof = g.profiles[pid]
    prof.count += 1
    prof.first_seen = min(prof.first_seen, ts)
    prof.last_seen = max(prof.last_seen, ts)
    mem = g.members.setdefault(pid, {})
    for key in attach:
        m = mem.get(key)
        if m is None:
            mem[key] = Membership("active", ts, ts, 1)
            g.holders.setdefault(key, set()).add(pid)
            g.active.setdefault(pid, {}).setdefault(key[0], set()).add(key[1])
        else:
            if m.status == "demoted":
                ctx.audit(
                    ts,
                    "reactivated_value",
                    key[0],
                    key[1],
                    pid,
                    None,
                    model,
                    eid,
                    "demoted value seen again on this profile",
                )
            if m.status != "active":
                _set_status(g, pid, key, m, "active")
            m.first_seen = min(m.first_seen, ts)
            m.last_seen = max(m.last_seen, ts)
            m.count += 1
        e = g.registry.get(key)
        if e is None:
            g.registry[key] = RegistryEntry(ts, ts, False, None, 1)
        else:
            e.first_seen = min(e.first_seen, ts)
            e.last_seen = max(e.last_seen, ts)
            e.count += 1
    for key in blocked:  # evidence: kept on the profile with status 'blocked', never matches
        m = mem.get(key)
        if m is None:
            mem[key] = Membership("blocked", ts, ts, 1)
            g.holders.setdefault(key, set()).add(pid)
        else:
            _set_status(g, pid, key, m, "blocked")
            m.first_seen = min(m.first_seen, ts)
            m.last_seen = max(m.last_seen, ts)
            m.count += 1
    _demote(g, ctx, pid, ts, model, eid)
    _quarantine(g, ctx, pid, ts, model, eid, attach)


def _demote(g: Graph, ctx: Context, pid, ts, model, eid) -> None:
    act = g.active.get(pid)
    if not act:
        return
    mem = g.members[pid]
    for t, limit in ctx.weak_limited:
        vals = act.get(t)
        if not vals or len(vals) <= limit:
            continue
        for v in values_to_demote([(mem[(t, v)].last_seen, v) for v in vals], limit):
            _set_status(g, pid, (t, v), mem[(t, v)], "demoted")
            ctx.audit(
                ts,
                "demoted_value",
                t,
                v,
                pid,
                None,
                model,
                eid,
                f"over max_unique_values_per_profile={limit}; least recently seen",
            )


def _quarantine(g: Graph, ctx: Context, pid, ts, model, eid, attach: list[Key]) -> None:
    for key in attach:
        limit = ctx.max_profiles[key[0]]
        if limit is None or key in ctx.exempt:
            continue
        e = g.registry[key]
        if e.quarantined:
            continue
        n = holder_count(g.members, g.holders[key], key)
        if over_limit(n, limit):
            e.quarantined = True
            e.quarantined_at = ts
            ctx.audit(
                ts,
                "quarantined_value",
                key[0],
                key[1],
                pid,
                None,
                model,
                eid,
                f"held by {n} profiles > max_profiles_per_value={limit}",
            )


def rule_9_known(g: Graph, ctx: Context, pid: str) -> None:
    """Rule 9: Known when the profile holds at least one active anchor value."""
    act = g.active.get(pid, {})
    g.profiles[pid].known = any(act.get(t) for t in ctx.anchor_types)


def process_event(g: Graph, ctx: Context, ts: int, model: str, eid: str, obs) -> None:
    """All rules for one event (rule 1, standardization, happened in `extract_observations`)."""
    values, blocked = rule_2_drop_blocked(ctx, ts, model, eid, obs)
    usable, quarantined, demoted = rule_3_usable(g, ctx, ts, model, eid, values)
    if rule_4_nothing_usable(ctx, ts, model, eid, usable, quarantined):
        return
    if rule_5_limit_conflict(ctx, ts, model, eid, usable):
        return
    target, decided, attach = rule_6_walk(g, ctx, ts, model, eid, usable)
    if target is None:
        if not attach:  # every anchor was dropped and nothing else is left: nothing to stitch on
            ctx.attribute(ts, model, eid, None, "excluded", "limit_conflict", None)
            return
        target = rule_7_create(g, ctx, ts, model, eid)
        decided = attach[0]
    # demoted-everywhere values are evidence seen with this profile: attached (re-activated if held here)
    rule_8_attach(g, ctx, target, ts, model, eid, attach + sorted(demoted), blocked)
    rule_9_known(g, ctx, target)
    ctx.attribute(ts, model, eid, target, "stitched", None, decided)


def run_reference(
    state: GraphState,
    events: pd.DataFrame,
    observations: pd.DataFrame,
    config: EventStitchingConfig,
    window_key: str,
) -> tuple[Graph, Context]:
    """Process one window. Returns the updated graph and the context holding attribution/audit rows."""
    g = Graph.from_state(state)
    ctx = Context.build(config, window_key)
    apply_releases(g, ctx)
    order, by_event = prepare_events(events, observations)
    empty: list = []
    for ts, model, eid in order:
        process_event(g, ctx, ts, model, eid, by_event.get((model, eid), empty))
    return g, ctx
