"""Datatype table and BYTES (de)serialisation."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tritond.errors import Code, TritonError
from tritond.shm import dtypes as D

def test_table_round_trips():
    assert sorted(d.enum for d in D.DTYPES.values()) == list(range(1, 15))
    for name, d in D.DTYPES.items():
        assert D.config_to_protocol(D.protocol_to_config(name)) == name
        assert D.is_valid(name)
        assert D.np_dtype(name) == d.numpy
        if name == "BYTES":
            assert d.config == "TYPE_STRING" and D.element_size(name) is None
            continue
        assert D.element_size(name) == d.numpy.itemsize
        assert d.numpy.str[0] in "<|"           # little-endian (or single byte) on any host
        assert D.from_numpy(d.numpy) == ("UINT16" if name == "BF16" else name)


@pytest.mark.parametrize("dt", [">f4", ">i8", "<u2", "?"])
def test_from_numpy_any_byteorder(dt):
    assert D.np_dtype(D.from_numpy(dt)).itemsize == np.dtype(dt).itemsize


@pytest.mark.parametrize("dt", [object, "S5", "U3", np.bytes_])
def test_from_numpy_bytes(dt):
    assert D.from_numpy(dt) == "BYTES"


@pytest.mark.parametrize("call", [
    lambda: D.np_dtype("FLOAT"), lambda: D.element_size(None), lambda: D.from_numpy(np.complex64),
    lambda: D.config_to_protocol("TYPE_FOO"), lambda: D.protocol_to_config("fp32"),
    lambda: D.num_elements([2, -1]), lambda: D.byte_size("FP32", [-3])])
def test_invalid_is_invalid_arg(call):
    with pytest.raises(TritonError) as e:
        call()
    assert e.value.code == Code.INVALID_ARG


def test_sizes():
    assert D.num_elements([]) == 1
    assert D.num_elements([3, 0, 2]) == 0
    assert D.byte_size("FP16", [2, 3]) == 12
    assert D.byte_size("BYTES", [2]) is None
    assert not D.is_valid("STRING") and not D.is_valid(3)


def _obj(items, shape=None):
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr if shape is None else arr.reshape(shape)


@given(st.lists(st.binary(max_size=40), max_size=50))
def test_bytes_round_trip(items):
    arr = _obj(items)
    buf = D.serialize_bytes(arr)
    assert len(buf) == D.serialized_size(arr) == sum(4 + len(b) for b in items)
    out = D.deserialize_bytes(buf, len(items))
    assert out.dtype == object and out.shape == (len(items),)
    assert list(out) == items
    assert list(D.deserialize_bytes(memoryview(bytearray(buf)))) == items


@given(st.lists(st.text(max_size=20), max_size=30))
def test_unicode_round_trip(items):
    out = D.deserialize_bytes(D.serialize_bytes(_obj(items)))
    assert [b.decode("utf-8") for b in out] == items


def test_awkward_shapes():
    zero_d = np.array(b"abc", dtype=object)
    assert D.serialize_bytes(zero_d) == b"\x03\x00\x00\x00abc"
    assert D.deserialize_bytes(D.serialize_bytes(zero_d), 1).reshape(()) == b"abc"
    for shape in [(0,), (2, 0), (0, 3)]:
        assert D.serialize_bytes(np.empty(shape, dtype=object)) == b""
    assert D.deserialize_bytes(b"", 0).shape == (0,)
    grid = _obj([b"a", b"bb", b"ccc", b"", b"e", b"ff"], (2, 3))
    t = grid.T[::-1]                        # non-contiguous: C order of the logical array
    assert list(D.deserialize_bytes(D.serialize_bytes(t))) == list(t.flat)


def test_element_kinds():
    arr = _obj([b"x", "é", 12, np.bytes_(b"n"), np.str_("s"), bytearray(b"ba")])
    assert list(D.deserialize_bytes(D.serialize_bytes(arr))) == [
        b"x", "é".encode(), b"12", b"n", b"s", b"ba"]
    assert list(D.deserialize_bytes(D.serialize_bytes(np.array([b"ab", b"c"])))) == [b"ab", b"c"]
    assert list(D.deserialize_bytes(D.serialize_bytes(np.array(["ab", "ü"])))) == [b"ab", "ü".encode()]


@pytest.mark.parametrize("buf, count, words", [
    (b"\x01\x00", None, "element 0 of BYTES tensor needs a 4-byte length but only 2 bytes remain"),
    (b"\x01\x00\x00\x00a\x07\x00\x00\x00abc", None, "element 1 of BYTES tensor claims 7 bytes but only 3 remain"),
    (b"\xff\xff\xff\xff", None, "claims 4294967295 bytes but only 0 remain"),
    (b"\x01\x00\x00\x00ab", 1, "BYTES tensor of 1 elements has 1 unexpected trailing bytes"),
    (b"\x01\x00\x00\x00a", 2, "BYTES tensor holds 1 elements, expected 2"),
    (b"\x01\x00\x00\x00a\x00\x00\x00\x00", 1, "trailing bytes"),
    (b"", 1, "holds 0 elements, expected 1"),
    (b"\x00", 0, "has 1 unexpected trailing bytes"),
])
def test_malformed(buf, count, words):
    with pytest.raises(TritonError) as e:
        D.deserialize_bytes(buf, count)
    assert e.value.code == Code.INVALID_ARG
    assert words in e.value.message


# Long tensors take the vectorised paths (D._VECTOR_MIN elements and more).

@given(st.lists(st.binary(max_size=12), min_size=32, max_size=200), st.booleans())
def test_long_bytes_round_trip(items, same_length):
    if same_length:                          # fixed-width strings: the uniform fast path
        items = [(b + bytes(12))[:7] for b in items]
    arr = _obj(items)
    buf = D.serialize_bytes(arr)
    assert buf == b"".join(len(b).to_bytes(4, "little") + b for b in items)
    assert list(D.deserialize_bytes(buf, len(items))) == items
    assert list(D.deserialize_bytes(memoryview(bytearray(buf)), len(items))) == items
    assert (D.uniform_elements(buf, len(items)) is not None) == (len(set(map(len, items))) == 1)


def test_long_uniform_keeps_trailing_nuls_and_empty_elements():
    for items in ([b"ab\x00"] * 40, [b""] * 40, [b"\x00"] * 40):
        buf = D.serialize_bytes(_obj(items))
        assert list(D.deserialize_bytes(buf, 40)) == items


def test_long_mixed_element_kinds_take_the_per_element_path():
    items = ["é", b"x", bytearray(b"ba"), 7] * 10
    want = ["é".encode(), b"x", b"ba", b"7"] * 10
    assert list(D.deserialize_bytes(D.serialize_bytes(_obj(items)), 40)) == want
    wide = memoryview(np.arange(3, dtype=np.int32))       # len() is 3 items, not 12 bytes
    assert D.serialize_bytes(_obj([wide] * 40))[:16] == (12).to_bytes(4, "little") + bytes(
        np.arange(3, dtype=np.int32))


@pytest.mark.parametrize("tail, words", [
    (b"\x01", "element 40 of BYTES tensor needs a 4-byte length but only 1 bytes remain"),
    (b"\x09\x00\x00\x00abc", "element 40 of BYTES tensor claims 9 bytes but only 3 remain"),
])
def test_long_malformed_named_as_before(tail, words):
    buf = D.serialize_bytes(_obj([b"abc"] * 40)) + tail
    with pytest.raises(TritonError) as e:
        D.deserialize_bytes(buf, 41)
    assert words in e.value.message
    with pytest.raises(TritonError) as e:
        D.deserialize_bytes(buf, 40)      # uniform prefix, then trailing bytes
    assert "unexpected trailing bytes" in e.value.message


@pytest.mark.parametrize("sizes", [[1023] * 40, [1024] * 40, [5] * 39 + [1024], [0, 1023, 1024, 70_000] * 10])
def test_new_elements_either_side_of_the_prefix_table(sizes):
    """Prefixes of elements under 1 KiB come from a table, longer ones are packed: the same
    bytes either way, with the length table that matches."""
    items = [bytes([i % 250 + 1]) * n for i, n in enumerate(sizes)]
    want = b"".join(len(e).to_bytes(4, "little") + e for e in items)
    data, table = D.serialize_bytes_table(np.array(items, dtype=object))
    assert data == want
    assert np.frombuffer(table, "<u4").tolist() == sizes


@pytest.mark.parametrize("n", [0, 1, 31, 32, 16384, 16385, 40_000])
@pytest.mark.parametrize("kind", ["bytes", "str"])
def test_many_elements_packed_in_chunks(n, kind):
    """Tensors of more than one join chunk (10M-element ones) serialise to the same bytes
    as one element at a time, empty, NUL-holding, non-UTF-8 and long elements included."""
    pool = [b"", b"\x00", b"a\x00b", b"\xff\xfe", b"x" * 1500, b"tok"]
    items = [pool[i % len(pool)] + b"%d" % (i % 7) * (i % 3) for i in range(n)]
    if kind == "str":
        items = [b.decode("latin-1") for b in items]
    want = b"".join(len(e).to_bytes(4, "little") + e
                    for e in (s.encode() if kind == "str" else s for s in items))
    data, table = D.serialize_bytes_table(_obj(items))
    assert data == want
    if n >= 32:
        assert table == np.array([len(s.encode() if kind == "str" else s) for s in items],
                                 "<u4").tobytes()
    if kind == "bytes":
        assert D.pack_elements(items) == (want, [len(b) for b in items])
    assert D.deserialize_bytes(data, n).tolist() == [
        s.encode() if kind == "str" else s for s in items]
