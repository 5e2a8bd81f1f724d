"""HTTP codec: JSON <-> bytes for every datatype, binary carving, compression, malformed input."""
from __future__ import annotations

import gzip
import json
import struct
import zlib

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritond.errors import Code, TritonError
from tritond.frontend.http import codec, compression
from tritond.frontend.http.tensors import bytes_to_json, json_to_bytes
from tritond.frontend.types import InferResult, OutputTensor, RequestedOutput

NUMERIC = {"UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
           "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
           "FP32": np.float32, "FP64": np.float64}


def err(fn, *args, code=Code.INVALID_ARG):
    with pytest.raises(TritonError) as e:
        fn(*args)
    assert e.value.code == code
    return e.value.message


@pytest.mark.parametrize("dt", sorted(NUMERIC))
def test_json_round_trip_numeric(dt):
    vals = [[0, 1, 2], [3, 4, 100]]
    raw = json_to_bytes("x", dt, [2, 3], vals)
    assert raw == np.array(vals, NUMERIC[dt]).tobytes()
    assert bytes_to_json("x", dt, [2, 3], memoryview(raw)) == [0, 1, 2, 3, 4, 100]


def test_bool_bytes_empty_and_flat():
    assert json_to_bytes("b", "BOOL", [3], [True, False, True]) == b"\x01\x00\x01"
    assert bytes_to_json("b", "BOOL", [3], b"\x01\x00\x01") == [True, False, True]
    raw = json_to_bytes("s", "BYTES", [2], ["ab", "é"])
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 2) + "é".encode()
    assert bytes_to_json("s", "BYTES", [2], raw) == ["ab", "é"]
    assert json_to_bytes("e", "FP32", [0, 4], []) == b""
    assert json_to_bytes("f", "INT32", [2, 2], [1, 2, 3, 4]) == json_to_bytes(
        "f", "INT32", [2, 2], [[1, 2], [3, 4]])


def test_fp32_written_as_double():
    raw = np.array([0.1], np.float32).tobytes()
    assert json.dumps(bytes_to_json("f", "FP32", [1], raw)) == "[0.10000000149011612]"


@pytest.mark.parametrize("dt,data,text", [
    ("INT32", [1.0, 2], "Unable to parse 'data'"),
    ("UINT8", [-1, 2], "Unable to parse 'data'"),
    ("INT8", [300, 1], "Unable to parse 'data'"),
    ("BOOL", [1, 0], "Unable to parse 'data'"),
    ("FP32", [True, 1.0], "Unable to parse 'data'"),
    ("BYTES", ["a", 3], "Unable to parse JSON bytes array: attempt to access JSON non-string"),
    ("INT32", [1, 2, 3], "Unable to parse 'data': Shape does not match true shape of 'data' field"),
    # QA L0_http test.sh: fewer elements than the shape, Triton's other text.
    ("INT32", [1], "Failed to parse 'data' field: shape does not match true shape"),
    ("FP16", [1.0, 2.0], "receiving FP16 data via JSON is not supported"),
    ("BF16", [1.0, 2.0], "receiving BF16 data via JSON is not supported"),
])
def test_json_input_errors(dt, data, text):
    assert text in err(json_to_bytes, "x", dt, [2], data)


def test_fp16_output_refused_in_json():
    assert "sending FP16 data via JSON is not supported" in err(
        bytes_to_json, "o", "FP16", [1], b"\x00\x00")


def body(doc, *blobs):
    head = json.dumps(doc).encode()
    return head + b"".join(blobs), len(head)


def inp(name, dt, shape, **kw):
    return {"name": name, "datatype": dt, "shape": shape, **kw}


def test_binary_carving_in_input_order():
    a, b = np.arange(4, dtype=np.int32).tobytes(), b"\x01\x02"
    data, hlen = body({"inputs": [inp("A", "INT32", [4], parameters={"binary_data_size": 16}),
                                  inp("J", "INT8", [1], data=[7]),
                                  inp("B", "UINT8", [2], parameters={"binary_data_size": 2})]},
                      a, b)
    req, binary = codec.decode_request(data, hlen, "m", "")
    assert [bytes(t.data) for t in req.inputs] == [a, b"\x07", b]
    assert not binary and req.outputs is None


def test_binary_leftover_short_and_missing_header():
    data, hlen = body({"inputs": [inp("A", "UINT8", [2], parameters={"binary_data_size": 2})]},
                      b"abc")
    assert err(codec.decode_request, data, hlen, "m", "") == \
        "unexpected additional input data for model 'm'"
    data, hlen = body({"inputs": [inp("A", "UINT8", [4], parameters={"binary_data_size": 4})]},
                      b"ab")
    assert err(codec.decode_request, data, hlen, "m", "") == \
        "unexpected size for input 'A', expecting 2 additional bytes for model 'm'"
    data, _ = body({"inputs": [inp("A", "UINT8", [4], parameters={"binary_data_size": 4})]})
    assert "must specify valid 'Infer-Header-Content-Length'" in err(
        codec.decode_request, data, None, "m", "")


def test_header_length_and_json_errors():
    assert "inference header size should be in range (0, 10), got: 11" in err(
        codec.header_length, "11", 10)
    assert "failed to parse the request JSON buffer" in err(
        codec.decode_request, b"{not json", None, "m", "")
    assert "Unable to parse 'inputs'" in err(codec.decode_request, b"{}", None, "m", "")


def test_header_length_out_of_int32_range():
    """Triton reads the header with std::stoi (QA L0_http
    test_inference_header_content_length_out_of_range)."""
    assert err(codec.header_length, "99999999999", 10) == (
        "Unable to parse Inference-Header-Content-Length, value is out of range "
        "[ -2147483648, 2147483647 ], got: 99999999999")
    assert "should be in range (0, 10), got: -5" in err(codec.header_length, "-5", 10)


@pytest.mark.parametrize("shape,words", [
    ([2, -5], "attempt to access JSON non-unsigned-integer as unsigned-integer"),
    ([2, 1.0], "attempt to access JSON non-unsigned-integer as unsigned-integer"),
    ([2, 1 << 64], "attempt to access JSON non-unsigned-integer as unsigned-integer"),
    ("x", "attempt to access JSON non-array as array"),
    (None, "attempt to access non-existing object member 'shape'"),
])
def test_shape_errors_name_tritonjson_reason(shape, words):
    """QA L0_http test_negative_dimensions: Triton's text (its 500 is a 400 here, see
    docs/compatibility.md)."""
    item = {"name": "A", "datatype": "FP32", "data": [1.0]}
    if shape is not None:
        item["shape"] = shape
    data, _ = body({"inputs": [item]})
    assert err(codec.decode_request, data, None, "m", "") == \
        f"Unable to parse 'shape': {words}"


@pytest.mark.parametrize("dt,shape,text", [
    ("FP32", [2 ** 4, 2 ** 60 + 2], "invalid shape for input 'A': shape [16,1152921504606846978] "
     "causes total element count to exceed maximum size of 9223372036854775807"),
    ("FP32", [2 ** 2, 2 ** 60 + 2], "byte size overflow for input 'A': element count "
     "(4611686018427387912) * data type size (4) exceeds maximum allowed size "
     "(9223372036854775807)"),
    ("INT8", [2 ** 63], "invalid shape for input 'A': shape [-9223372036854775808] contains "
     "one or more invalid dimensions"),
    ("BYTES", [2 ** 62, 2 ** 62, 0], "causes total element count to exceed maximum size"),
])
def test_json_shape_overflow_named_before_the_data(dt, shape, text):
    """QA L0_http test_buffer_size_overflow: the shape's overflow is reported, not a
    mismatch with the one element of 'data'."""
    data, _ = body({"inputs": [inp("A", dt, shape, data=[1])]})
    assert text in err(codec.decode_request, data, None, "m", "")


def test_content_type_exactly_one():
    doc = {"inputs": [inp("A", "UINT8", [1], data=[1], parameters={"binary_data_size": 1})]}
    data, hlen = body(doc, b"x")
    assert err(codec.decode_request, data, hlen, "m", "").endswith(
        "But set 'data' 'binary_data_size'")
    data, _ = body({"inputs": [inp("A", "UINT8", [1])]})
    assert err(codec.decode_request, data, None, "m", "").endswith("But no field is set")


def test_parameters_and_outputs():
    doc = {"id": "7", "parameters": {"binary_data_output": True, "priority": 1},
           "inputs": [], "outputs": [{"name": "X"},
                                     {"name": "Y", "parameters": {"binary_data": False,
                                                                  "classification": 3}}]}
    req, binary = codec.decode_request(json.dumps(doc).encode(), None, "m", "2")
    assert binary and req.id == "7" and req.version == "2"
    assert [(o.name, o.binary, o.classification) for o in req.outputs] == [
        ("X", True, 0), ("Y", False, 3)]
    bad = {"parameters": {"triton_x": 1}, "inputs": []}
    assert "reserved for Triton" in err(codec.decode_request, json.dumps(bad).encode(), None,
                                        "m", "")


def result(*outs):
    return InferResult("m", "1", "", {}, list(outs))


def test_encode_json_and_binary():
    a = np.arange(3, dtype=np.float32)
    o1 = OutputTensor("A", "FP32", [3], memoryview(a.tobytes()), None)
    o2 = OutputTensor("B", "INT32", [0], memoryview(b""), RequestedOutput("B", binary=True))
    head, blobs = codec.encode_result(result(o1), False)
    assert blobs == [] and json.loads(head)["outputs"][0]["data"] == [0.0, 1.0, 2.0]
    head, blobs = codec.encode_result(result(o1, o2), True)
    doc = json.loads(head)
    assert doc == {"model_name": "m", "model_version": "1", "outputs": [
        {"name": "A", "datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": 12}},
        {"name": "B", "datatype": "INT32", "shape": [0], "parameters": {"binary_data_size": 0}}]}
    assert [bytes(b) for b in blobs] == [a.tobytes(), b""]


def test_compression_both_ways():
    raw = b"x" * 1000
    assert compression.decompress(gzip.compress(raw), "gzip", 1 << 20) == raw
    assert compression.decompress(zlib.compress(raw), "deflate", 1 << 20) == raw
    assert err(compression.decompress, gzip.compress(raw), "gzip", 100) == (
        "Decompressed data size exceeds the maximum allowed value of 100 bytes. Use "
        "--http-max-input-size to increase the limit.")
    assert err(compression.decompress, b"", "gzip", 100) == "nothing to be decompressed"
    assert err(compression.check_encoding, "br", code=Code.UNSUPPORTED) == \
        "Unsupported compression type"
    assert compression.check_encoding("identity") is None
    assert compression.response_encoding("gzip;q=0.5, deflate;q=0.8") == "deflate"
    assert compression.response_encoding("identity, gzip;q=0.2") is None
    assert compression.response_encoding("br") is None
    assert gzip.decompress(compression.compress([b"ab", memoryview(b"cd")], "gzip")) == b"abcd"
    assert zlib.decompress(compression.compress([b"ab"], "deflate")) == b"ab"


def test_bytes_output_not_utf8_written_verbatim():
    raw = b"".join(struct.pack("<I", len(b)) + b for b in (b"ok", b"\xff\x00\"", "é".encode()))
    items = bytes_to_json("s", "BYTES", [3], raw)
    assert items[0] == "ok" and items[2] == "é"
    assert codec.encode_json(items) == b'["ok","\xff\\u0000\\"","\xc3\xa9"]'


def test_json_answer_spells_escapes_as_triton():
    """Triton's JSON writer (rapidjson) writes a control character as \\u00XX with
    upper-case hex and DEL, U+2028 and non-ASCII as they are; the bytes here are Triton
    2.51's answer to the same output (an oracle run). Valid UTF-8 (a str, msgspec's
    escapes mended) and not (raw bytes) give the same spelling; the text backslash-u001f
    stays as it is."""
    text = "a\x1fb\x01\x00c\x7f\u00e9\u2028\\u001f\"\n\t"
    raw = text.encode()
    want = (b'["a\\u001Fb\\u0001\\u0000c\x7f\xc3\xa9\xe2\x80\xa8\\\\u001f\\"\\n\\t",'
            b'"\xff\\u001F"]')
    blob = b"".join(struct.pack("<I", len(b)) + b for b in (raw, b"\xff\x1f"))
    head, _ = codec.encode_result(result(OutputTensor("Y", "BYTES", [2], memoryview(blob), None)),
                                  False)
    assert want in head
    items = [raw + bytes([i]) for i in range(40)]
    blob = b"".join(struct.pack("<I", len(b)) + b for b in items)
    got = codec.encode_json(bytes_to_json("Y", "BYTES", [40], memoryview(blob)))
    assert b"\\u001f" not in got.replace(b"\\\\u001f", b"")
    assert got.count(b"\\u001F") == 40 + 1 and json.loads(got) == [b.decode() for b in items]


@pytest.mark.parametrize("datatype", ["INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32",
                                      "INT64", "UINT64", "FP32", "FP64", "BOOL"])
def test_fast_conversions_match_numpy(datatype):
    # tensors.py converts small JSON lists with array/memoryview: same bytes and values as numpy.
    from tritond.shm import dtypes
    dt = dtypes.np_dtype(datatype)
    if datatype == "BOOL":
        vals = [True, False, True, True, False, False]
    elif datatype.startswith("FP"):
        vals = [0.1, -2.5, 3, 1e30, -0.0, 7.25]
    else:
        info = np.iinfo(dt)
        vals = [int(info.min), int(info.max), 0, 1, int(info.max) // 3, int(info.min) // 5]
    data = json_to_bytes("x", datatype, [2, 3], [vals[:3], vals[3:]])
    assert data == np.array(vals, dtype=dt).tobytes()
    for buf in (data, memoryview(bytearray(data))[0:len(data)]):
        out = bytes_to_json("x", datatype, [6], buf)
        ref = np.frombuffer(data, dtype=dt).tolist()
        assert out == ref and [type(v) for v in out] == [type(v) for v in ref]


def test_out_of_range_integer_names_the_type():
    from tritond.frontend.http.tensors import json_to_bytes
    with pytest.raises(TritonError, match="out of bounds for uint8"):
        json_to_bytes("x", "UINT8", [1], [-1])


@given(st.lists(st.binary(max_size=12) | st.text(max_size=6).map(str.encode), min_size=32,
                max_size=80))
def test_many_bytes_elements_in_json_match_the_per_element_path(items):
    """Many elements with no byte to escape are one raw array (one join); its bytes are
    exactly what the per-element path writes, and elements needing escapes still take it."""
    from tritond.frontend.http.rawstring import json_string
    raw = b"".join(struct.pack("<I", len(b)) + b for b in items)
    got = bytes_to_json("s", "BYTES", [len(items)], memoryview(raw))
    want = codec.encode_json([json_string(b) for b in items])
    assert codec.encode_json(got) == want
    special = any(c in b"".join(items) for c in b'"\\' + bytes(range(32)))
    assert isinstance(got, list) == special


def test_nan_and_infinity_round_trip_in_json():
    """Triton's JSON writer and parser take NaN and infinities (rapidjson's
    kWriteNanAndInfFlag / kParseNanAndInfFlag, qa/L0_nan_inf): an FP32/FP64 output holding
    them is written NaN, Infinity, -Infinity (not null, which loses the value), and a JSON
    input may hold them."""
    for dt in (np.float32, np.float64):
        a = np.array([np.nan, np.inf, -np.inf, 1, 2.5], dtype=dt)
        name = "FP32" if dt == np.float32 else "FP64"
        head, _ = codec.encode_result(result(OutputTensor("A", name, [5], memoryview(a.tobytes()),
                                                          None)), False)
        assert b"[NaN,Infinity,-Infinity,1.0,2.5]" in head
        got = json.loads(head)["outputs"][0]["data"]          # Python's json reads them
        np.testing.assert_array_equal(np.array(got, dt), a)
        data = (b'{"inputs":[{"name":"A","datatype":"%s","shape":[5],'
                b'"data":[NaN,Infinity,-Infinity,1,2.5]}]}' % name.encode())
        req, _ = codec.decode_request(data, None, "m", "")
        np.testing.assert_array_equal(np.frombuffer(req.inputs[0].data, dt), a)
    assert "expected an integer" in err(codec.decode_request, (
        b'{"inputs":[{"name":"A","datatype":"INT32","shape":[1],"data":[NaN]}]}'), None, "m", "")
    assert "failed to parse the request JSON buffer" in err(
        codec.decode_request, b'{"inputs": NaNa}', None, "m", "")


@pytest.mark.parametrize("n", [1, 40, 20_000])
def test_json_strings_to_bytes(n):
    """BYTES from JSON strings: UTF-8, empty, NUL and non-ASCII elements, nested or flat, in
    C loops; a non-string anywhere is named."""
    pool = ["", "\u0000", "a\u0000b", "é", "\U0001f600", "word"]
    items = [pool[i % len(pool)] + str(i % 5) * (i % 2) for i in range(n)]
    want = b"".join(len(s.encode()).to_bytes(4, "little") + s.encode() for s in items)
    assert json_to_bytes("IN", "BYTES", [n], items) == want
    if n % 2 == 0:
        rows = [items[i:i + 2] for i in range(0, n, 2)]
        assert json_to_bytes("IN", "BYTES", [n // 2, 2], rows) == want
    bad = items[:-1] + [7]
    with pytest.raises(TritonError, match="^Unable to parse JSON bytes array: attempt to "
                                          "access JSON non-string as string$"):
        json_to_bytes("IN", "BYTES", [n], bad)


_SAFE = st.lists(st.integers(0x20, 0xFF).filter(lambda x: x not in (0x22, 0x5C)),
                max_size=20).map(bytes)       # bytes JSON needs no escape for (some non-UTF-8)


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=20), max_size=80) | st.lists(_SAFE, max_size=80)
       | st.lists(_SAFE | st.sampled_from([b"", b"\x00", b'"', b"\\"]), max_size=80),
       st.booleans())
def test_bytes_json_answer_from_the_buffer_is_the_per_element_one(items, with_table):
    from tritond.frontend.http import tensors
    numpy_min, tensors._NUMPY_ARRAY_MIN = tensors._NUMPY_ARRAY_MIN, 32
    try:
        _bytes_json_answer(items, with_table)
    finally:
        tensors._NUMPY_ARRAY_MIN = numpy_min


def _bytes_json_answer(items, with_table):
    """A BYTES output's JSON array made from its serialised bytes (numpy) is exactly what the
    per-element path writes: escapes, NULs, non-UTF-8, empty elements, any count."""
    from tritond.frontend.http.rawstring import json_string
    from tritond.shm import lengths
    data = b"".join(len(b).to_bytes(4, "little") + b for b in items)
    table = lengths.table([len(b) for b in items]) if with_table else None
    got = bytes_to_json("OUT", "BYTES", [len(items)], memoryview(data), table)
    want = codec.encode_json([json_string(b) for b in items])
    assert codec.encode_json(got) == want


def test_bytes_json_answer_with_a_wrong_table_is_still_right():
    from tritond.shm import lengths
    items = [b"w%d" % i for i in range(5000)]
    data = b"".join(len(b).to_bytes(4, "little") + b for b in items)
    bad = lengths.table([len(b) for b in items[:-2]] + [len(items[-2]) + 1, len(items[-1]) - 1])
    got = bytes_to_json("OUT", "BYTES", [5000], data, bad)
    assert msgspec.json.decode(bytes(got)) == [b.decode() for b in items]


def test_a_body_deeper_than_the_document_bound_is_the_nesting_error_on_every_python():
    # 3.11's msgspec stopped near 1000 levels by RecursionError, 3.12's does not: the bound
    # is explicit (tensors.MAX_DOC_NESTING), counted from the top-level object
    from frontend.http.tensors import MAX_DOC_NESTING, NESTING
    inner = MAX_DOC_NESTING - 1
    assert codec.parse_json(b'{"a": ' + b"[" * inner + b"]" * inner + b"}")
    with pytest.raises(TritonError) as e:
        codec.parse_json(b'{"a": ' + b"[" * (inner + 1) + b"]" * (inner + 1) + b"}")
    assert (e.value.code, e.value.message) == (Code.INVALID_ARG, NESTING)
