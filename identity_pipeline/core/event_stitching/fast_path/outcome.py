"""What the fast path returns for one window, integer-coded like its inputs (`inputs.py`).

Profiles are referred to by their `created_sequence` (`seq`), values by their subgraph row (`v`), events by
their position in processing order (`e`). The caller turns codes into the published strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# attribution status / reason codes
STITCHED, EXCLUDED = 0, 1
STATUS = ("stitched", "excluded")
NO_REASON, NO_MATCHABLE, CONFLICTED, LIMIT_CONFLICT = 0, 1, 2, 3
REASON = (None, "no_matchable_identifier", "conflicted_identifier_value", "limit_conflict")
# audit types, in `engine.AUDIT_TYPES` order
AUDIT_KINDS = (
    "blocked_value",
    "expired_value",
    "quarantined_value",
    "released_value",
    "demoted_value",
    "reactivated_value",
    "merge",
    "limit_conflict",
)
AUDIT_CODE = {k: i for i, k in enumerate(AUDIT_KINDS)}
BLOCKED_DETAIL = "blocked value, not used"
MERGE_DETAIL = "merged into the oldest profile"
RELEASE_DETAIL = "released in config (released_values)"


@dataclass
class StateChanges:
    """The subgraph's rows the window writes. Registry rows exist afterwards; profile and membership rows of
    the subgraph are changed in place (`prof_rows`, `mem_rows`) or removed (`mem_dead`: moved to a merge
    survivor and combined there, or replaced by the reference's rows); new rows are listed apart. Profiles are
    named by `created_sequence` (seq)."""

    reg_rows: np.ndarray
    reg_first: np.ndarray
    reg_last: np.ndarray
    reg_count: np.ndarray
    reg_quar: np.ndarray
    reg_quar_at: np.ndarray
    prof_rows: np.ndarray
    prof_first: np.ndarray
    prof_last: np.ndarray
    prof_status: np.ndarray
    prof_merged_to: np.ndarray
    prof_count: np.ndarray
    prof_known: np.ndarray
    new_seq: np.ndarray
    new_key: np.ndarray
    new_created: np.ndarray
    new_first: np.ndarray
    new_last: np.ndarray
    new_status: np.ndarray
    new_merged_to: np.ndarray
    new_count: np.ndarray
    new_known: np.ndarray
    mem_rows: np.ndarray
    mem_seq: np.ndarray
    mem_status: np.ndarray
    mem_first: np.ndarray
    mem_last: np.ndarray
    mem_count: np.ndarray
    mem_dead: np.ndarray
    add_seq: np.ndarray
    add_v: np.ndarray
    add_status: np.ndarray
    add_first: np.ndarray
    add_last: np.ndarray
    add_count: np.ndarray
    next_seq: int


@dataclass
class WindowOutcome:
    """What the window changes in the subgraph (`changes`, row by row) and the window's output rows."""

    changes: StateChanges
    # attribution, one row per event (position e)
    a_status: np.ndarray  # int8 STITCHED / EXCLUDED
    a_reason: np.ndarray  # int8 REASON index
    a_profile: np.ndarray  # seq of the profile as decided then, -1 when excluded
    a_type: np.ndarray  # type of the deciding value (rule 5: the anchor type alone), -1
    a_value: np.ndarray  # deciding value row, -1
    # audit rows, in output order
    au_e: np.ndarray  # event position, -1 (a release)
    au_kind: np.ndarray  # int8 AUDIT_KINDS index
    au_v: np.ndarray  # value row
    au_p: np.ndarray  # seq, -1
    au_other: np.ndarray  # seq, -1
    au_detail: np.ndarray  # object strings
    # redirects written by the window's merges (from seq -> final survivor seq), one per merged profile
    r_from: np.ndarray
    r_to: np.ndarray
    r_at: np.ndarray
    r_e: np.ndarray  # evidence event
    profiles_created: int
    profiles_merged: int
    events_fast_path: int

    @property
    def merged_to(self) -> dict[int, int]:
        """seq of each profile merged in the window -> its final survivor's seq."""
        return dict(zip(self.r_from.tolist(), self.r_to.tolist(), strict=True))
