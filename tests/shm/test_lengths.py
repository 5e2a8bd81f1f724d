"""shm/lengths.py: a length table splits exactly what the sequential walk would, and any
table that does not describe the payload exactly is refused (the walk then decides)."""
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritond.errors import TritonError
from tritond.shm import dtypes, lengths


def _serialise(items):
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def _table(items):
    return lengths.table([len(b) for b in items])


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=80))
def test_splits_exactly(items):
    data = _serialise(items)
    got = lengths.split(data, len(items), _table(items))
    assert list(got) == items
    assert all(type(e) is bytes for e in got)


def test_trailing_nuls_and_empty_elements_survive():
    items = [b"a\x00", b"", b"\x00\x00", b"x" * 300, b"\x00", b"end\x00\x00", b"y" * 2000] * 10
    assert list(lengths.split(_serialise(items), len(items), _table(items))) == items


def test_more_elements_than_one_format_holds():
    items = [b"e%d\x00" % i for i in range(3 * lengths._CHUNK + 5)]
    data = _serialise(items)
    assert list(lengths.split(data, len(items), _table(items))) == items
    # A wrong length in the last chunk, or a byte missing at the end, is refused.
    bad = _table(items[:-1] + [items[-1] + b"x"])
    assert lengths.split(data, len(items), bad) is None
    assert lengths.split(data[:-1], len(items), _table(items)) is None
    assert lengths.split(data + b"\x00", len(items), _table(items)) is None


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=50), st.data())
def test_any_wrong_table_is_refused(items, data):
    """A table that is not the payload's own lengths never splits it."""
    buf = _serialise(items)
    true = [len(b) for b in items]
    wrong = data.draw(st.lists(st.integers(0, 40), min_size=len(items), max_size=len(items)))
    got = lengths.split(buf, len(items), lengths.table(wrong))
    if wrong == true:
        assert list(got) == items
    else:
        assert got is None


@pytest.mark.parametrize("tab", [b"", b"\x01\x00\x00", b"\x00" * 12])
def test_a_table_of_the_wrong_size_is_refused(tab):
    items = [b"ab", b"c"]
    assert lengths.split(_serialise(items), 2, tab) is None


def test_prefixes_that_disagree_with_a_consistent_table():
    # Same total size, lengths swapped between the table and the prefixes.
    data = _serialise([b"abc", b"d"])
    assert lengths.split(data, 2, lengths.table([1, 3])) is None


def test_deserialize_bytes_falls_back_to_the_checked_walk():
    items = [b"element-%d" % i for i in range(40)]
    data = _serialise(items)
    wrong = lengths.table([len(b) + 1 for b in items])
    got = dtypes.deserialize_bytes(data, 40, wrong)
    assert list(got) == items and got.dtype == object
    # A payload the walk refuses is refused with its words, whatever the table says.
    with pytest.raises(TritonError, match="element 39 of BYTES tensor claims 10 bytes but only 9 remain"):
        dtypes.deserialize_bytes(data[:-1], 40, _table(items))


def test_the_parsed_array_is_remembered_for_an_echo():
    items = [b"element-%d" % i for i in range(40)]
    data = _serialise(items)
    arr = dtypes.deserialize_bytes(data, 40, _table(items))
    assert dtypes.serialize_bytes(arr) is data        # the parsed input's own bytes
    assert isinstance(arr, np.ndarray) and arr.shape == (40,)


def _walked(buf, count):
    """The sequential walk's lengths, or None when it fails (the reference)."""
    pos, out = 0, []
    for _ in range(count):
        if pos + 4 > len(buf):
            return None
        n = int.from_bytes(buf[pos:pos + 4], "little")
        out.append(n)
        pos += 4 + n
    return out if pos == len(buf) else None


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=60), st.binary(max_size=8),
       st.integers(0, 12), st.integers(-2, 2))
def test_short_table_is_the_walk_or_nothing(items, junk, cut, dcount):
    """Any buffer, well formed or not, zero bytes inside elements or not: the numpy scan
    gives exactly the walk's lengths or None, never anything else."""
    good = _serialise(items)
    for buf in (good, good + junk, good[:max(0, len(good) - cut)], junk + good):
        count = max(1, len(items) + dcount)
        got = lengths.short_table(buf, count)
        if got is not None:
            assert np.frombuffer(got, "<u4").tolist() == _walked(buf, count)


@given(st.lists(st.binary(min_size=1, max_size=255).filter(lambda b: b"\x00" not in b),
                min_size=1, max_size=60))
def test_short_text_elements_are_found(items):
    assert lengths.short_table(_serialise(items), len(items)) == _table(items)


def test_short_table_declines_what_it_cannot_see():
    words = [b"w%d" % i for i in range(40)]
    for other in (b"", b"x" * 256, b"a\x00\x00\x00b", b"\x07\x00\x00\x00"):
        items = words + [other] + words
        assert lengths.short_table(_serialise(items), len(items)) is None
        assert list(dtypes.deserialize_bytes(_serialise(items), len(items))) == items


@pytest.mark.parametrize("size", [255, 256])
@pytest.mark.parametrize("with_table", [True, False])
def test_elements_of_255_and_256_bytes(size, with_table):
    """255 is short_table's longest element, 256 the first it declines; both parse."""
    items = [bytes([i % 251 + 1]) * size for i in range(300)] + [b"", b"\x00" * size]
    data = _serialise(items)
    got = dtypes.deserialize_bytes(data, len(items), _table(items) if with_table else None)
    assert got.tolist() == items and all(type(e) is bytes for e in got)
    assert (lengths.short_table(data[:-(4 + size + 4)], 300) is not None) == (size == 255)


@pytest.mark.parametrize("slice_bytes", [4, 5, 7, 64])
def test_short_table_across_scan_slices(monkeypatch, slice_bytes):
    """A buffer larger than one scan slice (a 10M-element tensor is ~100 MiB) is scanned a
    slice at a time: prefixes that straddle a slice's end are found once, look-alikes that
    straddle one still refuse."""
    monkeypatch.setattr(lengths, "_SHORT_SCAN", slice_bytes)
    items = [bytes([i % 255 + 1]) * (i % 9 + 1) for i in range(50)]
    data = _serialise(items)
    assert lengths.short_table(data, len(items)) == _table(items)
    assert lengths.short_table(data, len(items) + 1) is None
    fooled = items[:20] + [b"a\x00\x00\x00b"] + items[20:]
    assert lengths.short_table(_serialise(fooled), len(fooled)) is None


def test_short_table_of_a_buffer_over_4_mib():
    items = [b"t%d" % (i % 1000) for i in range(1_000_000)]       # ~7.9 MB
    assert lengths.short_table(_serialise(items), len(items)) == _table(items)
