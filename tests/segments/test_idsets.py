"""The bitmaps the set-algebra evaluator combines round-trip any ids exactly."""
from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from segments.idsets import bitmap, ids_of

# Word edges (bit 63 is a bigint's sign bit), byte edges and a million-member range.
edges = st.sampled_from([0, 1, 7, 8, 62, 63, 64, 65, 127, 128, 2**20 - 1, 2**20])
member_ids = st.lists(st.one_of(edges, st.integers(0, 3000), st.integers(0, 2**21)), max_size=300)


def test_examples_have_no_deadline_to_miss():
    # A 2**21-bit map takes a while on a loaded two-core machine: the root conftest's profile has no deadline,
    # so a slow example is not a failure (speed belongs in bench/).
    assert settings().deadline is None


@given(ids=member_ids)
def test_bitmap_round_trips_ids(ids):
    """Given member ids (repeats too), when made a bitmap and back, then the distinct ids come back, ascending."""
    as_bitmap = bitmap(ids)
    assert ids_of(as_bitmap) == sorted(set(ids))
    assert as_bitmap.bit_count() == len(set(ids))
    assert bitmap(array("q", ids)) == as_bitmap


@given(ids=member_ids, size=st.integers(1, 4000))
def test_a_size_hint_too_small_still_gives_every_id(ids, size):
    """Given a size hint some ids exceed (members added meanwhile), when building the bitmap, then no id is lost."""
    assert ids_of(bitmap(ids, size)) == sorted(set(ids))


@given(a=member_ids, b=member_ids)
def test_bitmap_algebra_is_set_algebra(a, b):
    """Given two id sets, when combined as bitmaps with &, | and & ~, then the ids are those of the set operations."""
    x, y = bitmap(a), bitmap(b)
    assert ids_of(x & y) == sorted(set(a) & set(b))
    assert ids_of(x | y) == sorted(set(a) | set(b))
    assert ids_of(x & ~y) == sorted(set(a) - set(b))
