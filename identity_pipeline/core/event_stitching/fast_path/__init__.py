"""The fast path of Event Stitching: the reference's decisions (`reference.py`) for a whole window,
computed mostly vectorised over integer-coded arrays.

How (every step is checked against the reference by identity_pipeline_tests/event_stitching/
test_fast_path_equivalence.py, through `frames.py`):

1. `inputs.py`: the subgraph the window reads (values, profiles, memberships) and the window's events and
   observations, as numpy arrays of small integers (`Subgraph`, `WindowEvents`, `Policy`).
2. `split.py`: observations become usable edges event <-> value (blocked values and values quarantined before
   the window set aside); values link to the profiles holding them. Connected components (union-find,
   `kernels.py`) are independent; each is SIMPLE (the reference would only attach its events to one
   profile), MERGE (several profiles or creators, nothing else), or HARD (a limit, an expiry, a shared or
   non-active holder...).
3. `merge_walk.py`: a union-find pass over the MERGE components' events in order (merges into the oldest
   profile, one-hop redirects, each event's profile as decided then); its loop and the components' are
   compiled with numba (`kernels.py`).
4. `complex_path.py`: the HARD components through the per-event reference, on strings, on just the part of the
   subgraph they reach; also the whole window when a created id would collide (`window.py`).
5. `updates.py`: the subgraph after the window (aggregates of the simple and merge events, the reference's
   rows for the hard ones, created profiles numbered by their creating events).
6. `outputs.py`: attribution and audit rows in the reference's order; `outcome.py` holds the result type.
"""

from identity_pipeline.core.event_stitching.fast_path.complex_path import profile_id, profile_key
from identity_pipeline.core.event_stitching.fast_path.inputs import (
    ACTIVE,
    BLOCKED,
    DEMOTED,
    MEMBERSHIP_STATUS,
    NAT,
    PROFILE_ACTIVE,
    PROFILE_MERGED,
    PROFILE_STATUS,
    CreatedIdCollision,
    Names,
    Policy,
    Subgraph,
    WindowEvents,
)
from identity_pipeline.core.event_stitching.fast_path.outcome import WindowOutcome
from identity_pipeline.core.event_stitching.fast_path.window import stitch_arrays

__all__ = [
    "ACTIVE",
    "BLOCKED",
    "CreatedIdCollision",
    "DEMOTED",
    "MEMBERSHIP_STATUS",
    "NAT",
    "PROFILE_ACTIVE",
    "PROFILE_MERGED",
    "PROFILE_STATUS",
    "Names",
    "Policy",
    "Subgraph",
    "WindowEvents",
    "WindowOutcome",
    "profile_id",
    "profile_key",
    "stitch_arrays",
]
