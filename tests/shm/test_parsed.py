"""An output made of exactly the parsed input's elements reuses the input's bytes;
anything else is serialised afresh, and the result is always what serialising the
elements one by one gives."""
import gc

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tritond.shm import dtypes as D
from tritond.shm import parsed


def _serialise(items):
    return b"".join(len(b).to_bytes(4, "little") + b for b in items)


def _parse(items, shape=None):
    buf = _serialise(items)
    arr = D.deserialize_bytes(memoryview(bytearray(buf)), len(items))
    return buf, arr if shape is None else arr.reshape(shape)


def test_echo_reuses_the_input_bytes():
    items = [b"element-%d" % i for i in range(100)]
    buf, arr = _parse(items, (4, 25))
    data = parsed.lookup(arr.ravel())
    assert data == buf                                   # found by the registry itself
    assert D.serialize_bytes(arr) is data                # the same object: nothing serialised
    assert D.serialize_bytes(arr.reshape(100)) is data   # a view of the same elements
    assert D.serialize_bytes(np.array(arr.ravel().tolist(), dtype=object)) is data


def test_changed_input_is_serialised_afresh():
    items = [b"element-%d" % i for i in range(100)]
    buf, arr = _parse(items)
    arr[50] = "é"                                        # changed in place, a str now
    want = _serialise(items[:50] + ["é".encode()] + items[51:])
    assert D.serialize_bytes(arr) == want
    _, arr2 = _parse(items)
    arr2[99] = bytes(bytearray(items[99]))               # equal, but another object
    assert D.serialize_bytes(arr2) == buf
    assert D.serialize_bytes(arr2.T) == buf
    assert D.serialize_bytes(arr2[::-1]) == _serialise(items[::-1])
    assert D.serialize_bytes(arr2[:99]) == _serialise(items[:99])


def test_entry_lives_as_long_as_the_parsed_array():
    items = [b"x%d" % i for i in range(40)]
    _, arr = _parse(items)
    key = arr.tobytes()[:parsed._POINTER]
    assert parsed.lookup(arr) is not None
    same = arr.copy()                                    # the same elements, another array
    del arr
    gc.collect()
    assert parsed.lookup(same) is None
    assert key not in parsed._ENTRIES


def test_small_tensors_are_not_recorded():
    _, arr = _parse([b"a%d" % i for i in range(parsed.MIN_ELEMENTS - 1)])
    assert parsed.lookup(arr) is None


@given(st.lists(st.binary(max_size=10), min_size=parsed.MIN_ELEMENTS, max_size=120),
       st.integers(0, 200), st.booleans())
def test_round_trip_with_and_without_changes(items, where, change):
    buf, arr = _parse(items)
    want = list(items)
    if change:
        i = where % len(items)
        arr[i] = want[i] = b"changed"
    assert D.serialize_bytes(arr) == _serialise(want)
    assert list(D.deserialize_bytes(D.serialize_bytes(arr), len(items))) == want


class _Sized:
    """Not bytes-like, with a len() too big for a 4-byte prefix: serialised as str()."""

    def __len__(self):
        return 2 ** 32

    def __str__(self):
        return "sized"


def test_vector_path_leaves_odd_elements_to_the_per_element_path():
    items = [b"ab"] * 40
    arr = np.array(items + [_Sized()], dtype=object)
    assert D.serialize_bytes(arr) == _serialise(items + [b"sized"])
    arr = np.array(items + [7, "é"], dtype=object)
    assert D.serialize_bytes(arr) == _serialise(items + [b"7", "é".encode()])


def test_elements_replaced_and_freed_never_match_by_address():
    """The model replaces an element and drops the old one; a new object that might
    take the old address is another object: the output is serialised afresh."""
    items = [b"element-%d" % i for i in range(64)]
    buf, arr = _parse(items)
    arr[0] = b"new-first"
    arr[10] = bytes(bytearray(b"changed"))
    got = D.serialize_bytes(arr)
    assert got == _serialise([b"new-first"] + items[1:10] + [b"changed"] + items[11:])
    arr[0], arr[10] = items[0], items[10]                # equal objects, not the parsed ones
    assert D.serialize_bytes(arr) == buf


def test_another_array_of_the_same_elements_and_a_permutation():
    items = [b"e%d" % i for i in range(50)]
    buf, arr = _parse(items)
    assert D.serialize_bytes(arr.copy()) is parsed.lookup(arr) == buf    # the same objects
    swapped = arr.copy()
    swapped[[3, 4]] = swapped[[4, 3]]
    assert D.serialize_bytes(swapped) == _serialise(items[:3] + [items[4], items[3]] + items[5:])
    assert D.serialize_bytes(np.concatenate([arr, arr[:1]])) == _serialise(items + items[:1])
    assert parsed.lookup(np.zeros(50)) is None           # not an object array
