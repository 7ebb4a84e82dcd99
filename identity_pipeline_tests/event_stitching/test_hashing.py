"""The 64-bit string hash behind profile ids: the numpy version equals the plain one, and it does not move."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_pipeline.core.event_stitching.hashing import (
    SEED_PROFILE,
    hash64,
    hash64_str,
    profile_key,
    profile_keys,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=60), st.integers(0, 2**64 - 1))
def test_numpy_hash_equals_the_plain_one(strings, seed):
    got = hash64(pa.array(strings, pa.string()), seed)
    assert [int(h) for h in got] == [hash64_str(s or "", seed) for s in strings]


def test_numpy_hash_of_a_slice_and_of_chunks():
    strings = [f"value-{i}-é€" * (i % 4) for i in range(50)]
    arr = pa.array(strings)
    assert [int(h) for h in hash64(arr.slice(7, 20), 3)] == [hash64_str(s, 3) for s in strings[7:27]]
    chunked = pa.chunked_array([arr.slice(0, 10), arr.slice(10)])
    assert [int(h) for h in hash64(chunked, 3)] == [hash64_str(s, 3) for s in strings]


def test_profile_keys_of_many_events_equal_one_by_one():
    models = pa.array(["web", "app", "web"])
    events = pa.array(["e1", "e1", "ü-42"])
    assert [int(k) for k in profile_keys(models, events)] == [
        profile_key("web", "e1"),
        profile_key("app", "e1"),
        profile_key("web", "ü-42"),
    ]


def test_known_answers():
    # pinned values: a change of the algorithm would change every stored profile id
    assert hash64_str("abcdefghi", 0) == 0xD7F8D1C1FBE54755
    assert hash64_str("", SEED_PROFILE) == hash64_str("", SEED_PROFILE)
    assert f"{profile_key('app', 'e1'):016x}" == "ae108a39d81f3c56"
    assert f"{profile_key('app', 'e1', salt=7):016x}" == "11c1572e24b93926"
