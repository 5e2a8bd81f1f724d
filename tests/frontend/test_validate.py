"""frontend/validate.py: check_bytes' unchecked walk (it must accept and refuse exactly what
the checked walk does, with the same words), and the validated-signature cache (what it
skips, what it never skips)."""
from __future__ import annotations

import asyncio
import copy
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.frontend.harness import CONFIGS, int_input
from tests.specs import spec_from_dict
from tritond import messages
from tritond.errors import Code, TritonError
from tritond.frontend.models import ModelVersion
from tritond.frontend.types import InferRequest, InputTensor
from tritond.frontend.validate import SIGNATURES, _check_walk, check_bytes, check_inputs
from tritond.shm import lengths


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
        # Triton core's words (QA L0_input_validation test_input_string_shape_validation).
        (long + b"\x01", 101, "incomplete string length indicator for inference input 'IN' for "
                              "model 'm', expecting 4 bytes but only 1 bytes available. Please "
                              "make sure the string length indicator is in one buffer."),
        (long + b"\x09\x00\x00\x00abc", 101, "expecting string of length 9 but only 3 bytes"),
        (long[:-3], 100, "expecting string of length 10 but only 7 bytes available"),
        (long + b"xy", 100, "incomplete string length indicator for inference input 'IN' for "
                            "model 'm', expecting 4 bytes but only 2 bytes available"),
        (long + b"\x00\x00\x00\x00", 100, "unexpected number of string elements 101 for "
                                          "inference input 'IN' for model 'm', expecting 100"),
        (long, 102, "expected 102 string elements for inference input 'IN' for model 'm', "
                    "got 100"),
        (None, 1, "expected 1 string elements for inference input 'IN' for model 'm', got 0"),
    ]
    for buf, count, words in cases:
        msg = _outcome(check_bytes, "m", "IN", buf, count)
        assert msg is not None and words in msg, (msg, words)
    assert _outcome(check_bytes, "m", "IN", long, 100) is None
    assert _outcome(check_bytes, "m", "IN", None, 0) is None


def version(name="simple", config=None):
    spec = spec_from_dict(config or CONFIGS[name])
    return ModelVersion(messages.ModelEntry(name, 1, "READY", spec=spec))


def simple(*inputs):
    return InferRequest("simple", inputs=list(inputs))


def failure(mv, req) -> TritonError:
    with pytest.raises(TritonError) as e:
        check_inputs(mv, req)
    assert e.value.code == Code.INVALID_ARG
    return e.value


def test_a_passing_signature_is_remembered_and_gives_the_same_answer():
    mv = version()
    req = simple(int_input("INPUT0", batch=2), int_input("INPUT1", batch=2))
    assert check_inputs(mv, req) == (2, [128, 128])
    assert list(mv.signatures.values()) == [(2, ((4, 32), (4, 32)))]
    assert check_inputs(mv, req) == (2, [128, 128])
    assert len(mv.signatures) == 1


def test_byte_sizes_are_still_checked_for_a_known_signature():
    mv = version()
    check_inputs(mv, simple(int_input("INPUT0"), int_input("INPUT1")))
    bad = InputTensor("INPUT1", "INT32", [1, 16], bytes(60))
    err = failure(mv, simple(int_input("INPUT0"), bad))
    assert err.message == ("[request id: <id_unknown>] input byte size mismatch for input "
                           "'INPUT1' for model 'simple'. Expected 64, got 60")
    none = InputTensor("INPUT1", "INT32", [1, 16], None)
    assert "Expected 64, got 0" in failure(mv, simple(int_input("INPUT0"), none)).message


def test_bytes_inputs_are_walked_for_a_known_signature():
    mv = version("strings")
    good = InputTensor("IN", "BYTES", [2], b"\x01\x00\x00\x00a\x02\x00\x00\x00bc")
    assert check_inputs(mv, InferRequest("strings", inputs=[good])) == (0, [11])
    bad = InputTensor("IN", "BYTES", [2], b"\x03\x00\x00\x00abc\x09\x00\x00\x00x")
    err = failure(mv, InferRequest("strings", inputs=[bad]))
    assert "incomplete string for inference input 'IN' for model 'strings'" in err.message


def test_failed_signatures_are_not_remembered():
    mv = version()
    dup = simple(int_input("INPUT0"), int_input("INPUT0"))
    for _ in range(2):
        assert "input 'INPUT0' already exists in request" in failure(mv, dup).message
    too_big = simple(int_input("INPUT0", batch=9), int_input("INPUT1", batch=9))
    for _ in range(2):
        assert "batch-size must be <= 8" in failure(mv, too_big).message
    assert mv.signatures == {}


def test_the_cache_is_bounded():
    mv = version("strings")
    for n in range(SIGNATURES + 5):
        data = b"\x00\x00\x00\x00" * n
        check_inputs(mv, InferRequest("strings", inputs=[InputTensor("IN", "BYTES", [n], data)]))
    assert 0 < len(mv.signatures) <= SIGNATURES


def test_a_reloaded_model_checks_against_its_new_config(harness):
    # The model table makes new ModelVersions, so the old config's signatures go with it.
    narrow = copy.deepcopy(CONFIGS["simple"])
    for io in narrow["input"]:
        io["dims"] = [8]

    async def body():
        async with harness() as h:
            mv = h.core.models.resolve("simple", "")
            check_inputs(mv, simple(int_input("INPUT0"), int_input("INPUT1")))
            assert mv.signatures
            h.core.on_messages([messages.ModelTable([messages.ModelEntry(
                "simple", 1, "READY", spec=spec_from_dict(narrow))], True)])
            with pytest.raises(TritonError) as e:
                await h.core.infer(simple(int_input("INPUT0"), int_input("INPUT1")))
            assert h.sched.empty()
            return e.value
    err = asyncio.run(body())
    assert err.code == Code.INVALID_ARG
    assert "unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,8], got [1,16]" \
        in err.message


def test_check_bytes_returns_the_length_table_it_read():
    """Many elements of several lengths: the walk's lengths come back for the worker;
    one length (numpy's check) or few elements: no table."""
    items = [b"element-%d\x00" % i for i in range(50)]
    table = check_bytes("m", "IN", memoryview(_serialise(items)), 50)
    assert table == lengths.table([len(b) for b in items])
    assert check_bytes("m", "IN", _serialise([b"same"] * 50), 50) is None
    assert check_bytes("m", "IN", _serialise(items[:lengths.MIN_ELEMENTS - 1]),
                       lengths.MIN_ELEMENTS - 1) is None


def test_check_inputs_keeps_the_table_on_the_input():
    mv = version("strings")
    items = [b"e%d" % i for i in range(40)]
    for _ in range(2):          # a new signature, then a known one
        t = InputTensor("IN", "BYTES", [40], _serialise(items))
        check_inputs(mv, InferRequest("strings", inputs=[t]))
        assert t.lengths == lengths.table([len(b) for b in items])
