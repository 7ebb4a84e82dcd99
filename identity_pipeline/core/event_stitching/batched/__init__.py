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

Modules, in the order a window goes through them:

* `window_input.py`: events in reference order, observations as (event, value) edges, the window's keys;
* `split.py`: connected components and the path of each (simple, merge, complex, excluded);
* `complex_path.py`: complex components through the reference;
* `targets.py` (+ `merge_walk.py`): each simple / merge component's profile and each event's deciding value;
* `outputs.py`: attribution and audit rows;
* `state_update.py`: the new graph state;
* `window.py`: `stitch_window_batched`, which runs them (and falls back to the reference, step 5 above);
* `arrays.py`: the numpy / pandas helpers they share.
"""

from identity_pipeline.core.event_stitching.batched.window import stitch_window_batched

__all__ = ["stitch_window_batched"]
