"""frontend/http/fastdecode.py: the typed decode of a usual infer body gives what the
dict walk gives, and every other body is left to the dict walk (same answers, same errors)."""
from __future__ import annotations

import json
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritond.errors import TritonError
from tritond.frontend.http import codec, fastdecode
from tritond.frontend.http.tensors import NESTING


def _json(*inputs, **doc) -> bytes:
    return json.dumps({"inputs": list(inputs), **doc}).encode()


def _in(name="IN", datatype="FP32", shape=(4,), data=(1.0, 2.5, -3.0, 4.0), **extra):
    item = {"name": name, "datatype": datatype, "shape": list(shape), **extra}
    if data is not None:
        item["data"] = list(data)
    return item


def _binary(outputs=None, **doc) -> tuple[bytes, int]:
    head = json.dumps({"inputs": [
        {"name": "A", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
        {"name": "B", "datatype": "INT32", "shape": [1], "parameters": {"binary_data_size": 4}}],
        **({"outputs": outputs} if outputs is not None else {}), **doc}).encode()
    return head + struct.pack("<2f", 1.5, 2.5) + struct.pack("<i", 7), len(head)


def _walk(body, hlen, monkeypatch):
    """What the dict walk alone answers (the typed decode turned off)."""
    with monkeypatch.context() as m:
        m.setattr(fastdecode, "decode", lambda *args: None)
        return codec.decode_request(body, hlen, "m", "1")


USUAL = [
    (_json(_in()), None),
    (_json(_in(datatype="INT32", data=[1, -2, 3, 2**31 - 1])), None),
    (_json(_in(datatype="INT64", shape=[2, 2], data=[1, 2, 3, -(2**63)])), None),
    (_json(_in(datatype="UINT8", data=[0, 1, 255, 7])), None),
    (_json(_in(datatype="BOOL", data=[True, False, True, True])), None),
    (_json(_in(datatype="FP64", data=[1, 2, 3.25, 4])), None),        # integers in a float tensor
    (_json(_in(), _in(name="IN2", parameters={}), id="r1", parameters={"priority": 2},
           outputs=[{"name": "O1"}, {"name": "O2", "parameters": {"binary_data": True}}]), None),
    (_json(_in(), parameters={"binary_data_output": True},
           outputs=[{"name": "O", "parameters": {}}]), None),
    _binary(),
    _binary([{"name": "O", "parameters": {"binary_data": False}}]),
]


@pytest.mark.parametrize("body,hlen", USUAL)
def test_a_usual_body_is_decoded_typed_as_the_dict_walk_decodes_it(body, hlen, monkeypatch):
    typed = fastdecode.decode(body, hlen, "m", "1")
    assert typed is not None
    assert typed == _walk(body, hlen, monkeypatch)
    assert codec.decode_request(body, hlen, "m", "1") == typed


DECLINED = [
    _json(_in(datatype="BYTES", data=["a", "b", "c", "d"])),
    _json(_in(shape=[2, 2], data=[[1.0, 2.0], [3.0, 4.0]])),          # nested data
    _json(_in(datatype="FP16")),
    _json(_in(shape=[0], data=[])),
    _json(_in(data=None)),                                              # no data at all
    _json(_in(data=None, parameters={"shared_memory_region": "r", "shared_memory_byte_size": 16})),
    _json(_in(), outputs=[{"name": "O", "parameters": {"classification": 2}}]),
    _json(_in(), id=5),
    _json(_in(), parameters={"triton_x": 1}),
    _json(_in(), parameters={"binary_data_output": 1}),
    _json(_in(datatype="INT32", data=[1, 2, 3, True])),
    _json(_in(datatype="INT32", data=[1, 2, 3, 4.0])),
    _json(_in(datatype="INT8", data=[1, 2, 3, 300])),
    _json(_in(data=[1.0, 2.0, 3.0])),                                   # shape says 4
    _json(_in(shape=[-4])),
    _json(_in(data=[1.0, 2.0, 3.0, 4.0], parameters={"binary_data_size": 16})),
    b'{"inputs": [}',
    b"[1, 2]",
]


def _declined_as_the_walk(body, monkeypatch):
    """The fast path declines ``body``; the frontend answers it as the dict walk does."""
    assert fastdecode.decode(body, None, "m", "1") is None
    try:
        expected = _walk(body, None, monkeypatch)
    except TritonError as exc:
        with pytest.raises(TritonError) as got:
            codec.decode_request(body, None, "m", "1")
        assert (got.value.code, got.value.message) == (exc.code, exc.message)
    else:
        assert codec.decode_request(body, None, "m", "1") == expected


@pytest.mark.parametrize("body", DECLINED)
def test_any_other_body_is_the_dict_walks_with_its_answer(body, monkeypatch):
    _declined_as_the_walk(body, monkeypatch)


def _deep(body: bytes, depth: int = 5000) -> bytes:
    """``body`` with its "DEEP" string replaced by arrays nested ``depth`` deep."""
    return body.replace(b'"DEEP"', b"[" * depth + b"]" * depth)


# Nested past msgspec's recursion limit where the typed decode still recurses (an untyped
# ``parameters`` value, a raw ``data``): the dict walk's 400, never a RecursionError (500).
TOO_DEEP = [
    _deep(_json(_in(), parameters={"a": "DEEP"})),
    _deep(_json(_in(data=None, parameters={"x": "DEEP"}))),
    _deep(_json(_in(), outputs=[{"name": "O", "parameters": {"a": "DEEP"}}])),
    _deep(_json(_in(data=None, datatype="INT32", shape=[1], data2="DEEP")).replace(
        b'"data2"', b'"data"')),
]


@pytest.mark.parametrize("body", TOO_DEEP)
def test_a_body_nested_too_deep_is_the_dict_walks_nesting_error(body, monkeypatch):
    assert fastdecode.decode(body, None, "m", "1") is None
    with pytest.raises(TritonError) as got:
        codec.decode_request(body, None, "m", "1")
    assert got.value.message == NESTING
    with pytest.raises(TritonError) as walk:
        _walk(body, None, monkeypatch)
    assert (got.value.code, got.value.message) == (walk.value.code, walk.value.message)


def test_binary_sizes_that_do_not_add_up_are_the_dict_walks(monkeypatch):
    body, hlen = _binary()
    for cut in (body[:-1], body + b"x"):
        assert fastdecode.decode(cut, hlen, "m", "1") is None
        with pytest.raises(TritonError) as walk:
            _walk(cut, hlen, monkeypatch)
        with pytest.raises(TritonError) as got:
            codec.decode_request(cut, hlen, "m", "1")
        assert got.value.message == walk.value.message
    assert fastdecode.decode(body, None, "m", "1") is None   # sizes without the header length


# A seeded corpus of odd bodies (wrong types, duplicate keys, every kind of parameters,
# zero dims, out-of-range numbers, -0, binary tails): both decoders give the same
# request, or the typed one declines and the dict walk answers alone.
_VALUES = [0, 1, -1, 255, 256, -129, 2**31, 2**63, 2**64, 1.5, 1e39, True, None, "a", [1], {}]
_PARAMS = [None, {}, {"binary_data_size": 4}, {"binary_data_size": 0}, {"binary_data_size": True},
           {"x": 1}, [], 0, {"binary_data": True}, {"binary_data": 1}, {"classification": 0},
           {"binary_data_output": True}, {"triton_x": 1},
           {"shared_memory_region": "r", "shared_memory_byte_size": 4},
           {"binary_data": False, "classification": 1}, {"binary_data_size": 4, "x": 1}]
_TYPES = ["FP32", "FP64", "INT8", "UINT8", "INT16", "UINT32", "INT64", "UINT64", "BOOL", "BYTES",
          "FP16", "XX"]


def _odd_item(rng) -> dict:
    shape = rng.choice([[4], [2, 2], [0], [1], [True], [2.0], [-1], [2**70]])
    n = 4 if shape in ([4], [2, 2]) else 1
    item = {"name": rng.choice(["A", "A", 5]), "datatype": rng.choice(_TYPES), "shape": shape}
    if rng.random() < .8:
        item["data"] = rng.choice([[rng.choice([0, 1, 3]) for _ in range(n)], [True] * n,
                                   [1.5] * n, [rng.choice(_VALUES) for _ in range(n)], None])
    if rng.random() < .5:
        item["parameters"] = rng.choice(_PARAMS)
    return item


def _odd_body(rng) -> tuple[bytes, int | None]:
    doc = {"inputs": [_odd_item(rng) for _ in range(rng.choice([0, 1, 2, 3]))]}
    if rng.random() < .3:
        doc["id"] = rng.choice(["x", "", 5, None])
    if rng.random() < .4:
        doc["parameters"] = rng.choice(_PARAMS)
    if rng.random() < .5:
        doc["outputs"] = [{"name": "O", "parameters": rng.choice(_PARAMS)}]
    text = json.dumps(doc)
    for old, new in (('"data": [', '"data": [-0, '), ('"data": [', '"data": [1E2, '),
                     ('"name"', '"name": "Z", "name"'), ('"inputs"', '"inputs": [], "inputs"')):
        if rng.random() < .05:
            text = text.replace(old, new, 1)
    head = text.encode()
    if rng.random() < .5:
        return head + bytes(rng.choice([0, 4, 8, 12])), len(head)
    return head, None


def test_a_generated_corpus_of_odd_bodies_decodes_as_the_dict_walk(monkeypatch):
    rng = random.Random(15)
    typed_ones = 0
    for _ in range(3000):
        body, hlen = _odd_body(rng)
        typed = fastdecode.decode(body, hlen, "m", "1")
        try:
            walked = _walk(body, hlen, monkeypatch)
        except TritonError as exc:
            assert typed is None, body
            with pytest.raises(TritonError) as got:
                codec.decode_request(body, hlen, "m", "1")
            assert (got.value.code, got.value.message) == (exc.code, exc.message)
            continue
        if typed is not None:
            typed_ones += 1
            assert typed == walked, body
        assert codec.decode_request(body, hlen, "m", "1") == walked
    assert typed_ones > 100          # the corpus does reach the typed decode


# The one-pass decode of numeric data (``_NUMBERS``: ints and floats as written, packed by
# struct): each body's bytes as the dict walk makes them, or declined to it.
NUMERIC = [
    _json(_in(data=[1e39, -1e39, 3.5e38, 1])),            # beyond FP32: inf, as array stores it
    _json(_in(data=[-0, -0.0, 0, 1E2])),                   # -0 is an integer zero, -0.0 is not
    _json(_in(data=[100000000000000000000, 16777217, 2**53 + 1, 0.1])),   # big ints round once
    _json(_in(datatype="FP64", data=[2**63, -1, 0.1, 1e308])),
    _json(_in(datatype="UINT64", data=[2**64 - 1, 0, 2**63, 1])),
    _json(_in(datatype="INT16", data=[-32768, 32767, 0, -1])),
    _json(_in(datatype="UINT32", data=[2**32 - 1, 0, 1, 2])),
    _json(_in(datatype="BOOL", data=[True, False, False, True]), _in(name="IN2")),  # raw pass
]


@pytest.mark.parametrize("body", NUMERIC)
def test_numeric_data_is_packed_to_the_dict_walks_bytes(body, monkeypatch):
    typed = fastdecode.decode(body, None, "m", "1")
    assert typed is not None
    assert typed == _walk(body, None, monkeypatch)


NUMERIC_DECLINED = [
    _json(_in(datatype="INT32", data=[1, 2, 3, 2**31])),       # out of range for struct
    _json(_in(datatype="UINT8", data=[1, 2, 3, -1])),
    _json(_in(datatype="INT64", data=[1, 2, 3, 2**63])),
    _json(_in(datatype="UINT16", data=[1, 2, 3, 4.5])),         # a float for an integer type
    _json(_in(datatype="BOOL", data=[1, 0, 1, 0])),             # numbers are not true/false
    _json(_in(data=[1.0, 2.0, 3.0, 10**400])),                  # beyond a double
    _json(_in(datatype="FP64", data=[1.0, 2.0, 3.0, 10**400])),
    _json(_in(data=[1.0, None, 3.0, 4.0])),
    _json(_in(datatype="FP16", data=[1.0, 2.0, 3.0, 4.0])),
]


@pytest.mark.parametrize("body", NUMERIC_DECLINED)
def test_numbers_a_type_cannot_hold_are_left_to_the_dict_walk(body, monkeypatch):
    _declined_as_the_walk(body, monkeypatch)


@pytest.mark.parametrize("datatype,value", [("FP32", 0.1), ("INT32", -7), ("FP64", 1e300),
                                            ("INT32", 2**31)])
def test_a_tensor_past_the_struct_limit_is_converted_by_array_alike(datatype, value,
                                                                    monkeypatch):
    count = fastdecode._PACK_MAX + 1
    body = _json(_in(datatype=datatype, shape=[count], data=[value] * count))
    typed = fastdecode.decode(body, None, "m", "1")
    if datatype == "INT32" and value == 2**31:
        assert typed is None
        return
    assert typed == _walk(body, None, monkeypatch)


def test_the_anchors_mlp_body_takes_the_one_pass_decode(monkeypatch):
    data = [((i * 7919) % 1000 - 500) / 317.0 for i in range(256)]
    body = _json(_in(name="INPUT0", shape=[1, 256], data=data))
    calls = []
    real = fastdecode._REQUEST.decode
    monkeypatch.setattr(fastdecode, "_REQUEST", type("D", (), {
        "decode": staticmethod(lambda b: calls.append(b) or real(b))}))
    typed = fastdecode.decode(body, None, "m", "1")
    assert calls == []              # no second, raw pass
    assert typed[0].inputs[0].data == struct.pack("<256f", *data)


# Hypothesis: numeric ``data`` (ints of any size, floats of any magnitude, nested or flat,
# counts that match the shape or not, either side of the struct/array switch) decodes
# to the dict walk's bytes, or is declined and the dict walk answers alone.
_NUMBER = st.one_of(st.integers(), st.integers(-2**64, 2**64), st.floats(allow_nan=False,
                    allow_infinity=False), st.sampled_from([0, -0.0, 1e39, -1e39, 2**63, -2**63,
                                                            2**64 - 1, 5e-324, True]))
_NUM_TYPES = ["FP32", "FP64", "INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32", "INT64",
              "UINT64", "BOOL"]


@st.composite
def _number_body(draw) -> bytes:
    items = []
    for i in range(draw(st.integers(1, 3))):
        flat = draw(st.lists(_NUMBER, min_size=1, max_size=8))
        if draw(st.booleans()):          # past _PACK_MAX: the ``array`` conversion
            flat = flat * (fastdecode._PACK_MAX // len(flat) + 1)
        shape = [len(flat) + draw(st.sampled_from([0, 0, 0, 1, -1]))]
        data = flat
        if draw(st.integers(0, 3)) == 0 and len(flat) % 2 == 0:   # nested rows
            data = [flat[j:j + 2] for j in range(0, len(flat), 2)]
            shape = draw(st.sampled_from([[len(flat) // 2, 2], shape]))
        items.append({"name": f"I{i}", "datatype": draw(st.sampled_from(_NUM_TYPES)),
                      "shape": shape, "data": data})
    return json.dumps({"inputs": items}).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_number_body())
def test_numeric_data_decodes_as_the_dict_walk_fuzzed(body):
    typed = fastdecode.decode(body, None, "m", "1")
    original = fastdecode.decode
    fastdecode.decode = lambda *args: None
    try:
        walked = codec.decode_request(body, None, "m", "1")
    except TritonError:
        assert typed is None, body[:300]
        return
    finally:
        fastdecode.decode = original
    if typed is not None:
        assert typed == walked, body[:300]


def test_a_bool_json_input_with_a_binary_one_is_decoded_typed(monkeypatch):
    """A body the numbers-only pass refuses (BOOL's true/false) is decoded again with
    raw ``data``: an input without ``data`` there (binary) is still a usual one."""
    head = json.dumps({"inputs": [
        {"name": "B", "datatype": "BOOL", "shape": [2], "data": [True, False]},
        {"name": "A", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}],
    }).encode()
    body = head + struct.pack("<2f", 1.5, 2.5)
    typed = fastdecode.decode(body, len(head), "m", "1")
    assert typed is not None
    assert typed == _walk(body, len(head), monkeypatch)
