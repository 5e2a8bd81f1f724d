"""check_bytes walks without per-element bounds checks and walks again, checked, only
when that walk does not end at the buffer's end: it must accept and refuse exactly what
the checked walk does, with the same words."""
import struct

from hypothesis import given
from hypothesis import strategies as st

from tritond.errors import Code, TritonError
from tritond.frontend.validate import _check_walk, check_bytes


def _outcome(fn, *args):
    try:
        fn(*args)
    except TritonError as e:
        assert e.code == Code.INVALID_ARG
        return e.message
    return None


def _serialise(items):
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


@given(st.lists(st.binary(max_size=9), max_size=60), st.binary(max_size=12),
       st.integers(0, 40), st.integers(-3, 3))
def test_agrees_with_the_checked_walk(items, junk, cut, dcount):
    good = _serialise(items)
    for buf in (good, good + junk, good[:max(0, len(good) - cut)], junk + good):
        count = max(0, len(items) + dcount)
        for data in (buf, memoryview(bytearray(buf))):
            want = _outcome(_check_walk, "m", "IN", buf, len(buf), count)
            assert _outcome(check_bytes, "m", "IN", data, count) == want


def test_each_error_named():
    long = _serialise([b"element-%d" % i for i in range(100)])
    cases = [
        (long + b"\x01", 101, "incomplete string length for inference input 'IN' for model 'm', "
                              "expecting 4 bytes but only 1 bytes available"),
        (long + b"\x09\x00\x00\x00abc", 101, "expecting string of length 9 but only 3 bytes"),
        (long[:-3], 100, "expecting string of length 10 but only 7 bytes available"),
        (long + b"xy", 100, "expected 100 string elements for inference input 'IN' for model "
                            "'m', got more (2 trailing bytes)"),
        (None, 1, "expecting 4 bytes but only 0 bytes available"),
    ]
    for buf, count, words in cases:
        msg = _outcome(check_bytes, "m", "IN", buf, count)
        assert msg is not None and words in msg, (msg, words)
    assert _outcome(check_bytes, "m", "IN", long, 100) is None
    assert _outcome(check_bytes, "m", "IN", None, 0) is None
