"""gRPC codec: ModelInferRequest -> InferRequest, and InferResult -> the responses of both
infer RPCs (``wire.encode`` / ``wire.encode_stream``, the one response encoder).

Requests are built the way clients build them: by tritonclient.grpc itself
(serialised with its ``inference`` package and parsed with ours, which also
checks wire compatibility) or field by field for what tritonclient refuses
to send (typed contents, wrong parameter types).
"""
import struct

import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2 as client_pb
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from tritond.errors import Code
from tritond.frontend.grpc import codec, wire
from tritond.frontend.types import InferResult, OutputTensor, ShmRef
from tritond.protos import grpc_service_pb2 as pb
from tests.frontend.grpc.wire import client_input, error_of, from_client, invalid

ALL_FIXED = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}


# ------------------------------------------------------------------ raw inputs


@pytest.mark.parametrize("datatype", sorted(ALL_FIXED))
def test_raw_fixed_types_round_trip(datatype):
    arr = (np.arange(12) % 2).astype(ALL_FIXED[datatype]).reshape(3, 4)
    req = codec.decode_request(from_client([client_input("X", arr, datatype)]))
    (t,) = req.inputs
    assert (t.name, t.datatype, t.shape, t.shm) == ("X", datatype, [3, 4], None)
    assert bytes(t.data) == arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def test_raw_bf16_passes_through():
    # tritonclient (since r26.06) takes ml_dtypes.bfloat16 arrays: the upper two bytes
    # of each little-endian fp32.
    values = [1.5, -2.0, 3.25]
    arr = np.array(values, dtype=ml_dtypes.bfloat16)
    req = codec.decode_request(from_client([client_input("X", arr, "BF16")]))
    expected = b"".join(struct.pack("<f", v)[2:4] for v in values)
    assert req.inputs[0].data == expected and req.inputs[0].datatype == "BF16"


def test_raw_bytes_stay_serialised():
    arr = np.array([[b"", b"a"], ["\u00e9".encode(), b"xyz" * 100]], dtype=object)
    (t,) = codec.decode_request(from_client([client_input("S", arr, "BYTES")])).inputs
    assert t.data == serialize_byte_tensor(arr).item()
    assert deserialize_bytes_tensor(t.data).tolist() == arr.ravel().tolist()


def test_empty_tensor_raw():
    arr = np.zeros((0, 4), np.float32)
    (t,) = codec.decode_request(from_client([client_input("E", arr, "FP32")])).inputs
    assert t.data == b"" and t.shape == [0, 4]


def test_raw_entries_skip_shm_inputs():
    a, c = np.arange(4, dtype=np.int32), np.arange(4, 8, dtype=np.int32)
    b = grpcclient.InferInput("B", [4], "INT32")
    b.set_shared_memory("region0", 16, offset=32)
    req = codec.decode_request(from_client([client_input("A", a, "INT32"), b,
                                            client_input("C", c, "INT32")]))
    assert [t.name for t in req.inputs] == ["A", "B", "C"]
    assert req.inputs[0].data == a.tobytes() and req.inputs[2].data == c.tobytes()
    assert req.inputs[1].data is None
    assert req.inputs[1].shm == ShmRef("region0", 32, 16)
    assert req.inputs[1].parameters == {}


def test_shm_offset_defaults_to_zero():
    b = grpcclient.InferInput("B", [4], "INT32")
    b.set_shared_memory("r", 16)
    assert codec.decode_request(from_client([b])).inputs[0].shm == ShmRef("r", 0, 16)


def test_missing_raw_data():
    msg = from_client([client_input("A", np.zeros(2, np.int32), "INT32")])
    msg.inputs.add(name="B", datatype="INT32", shape=[2])
    assert invalid(msg) == "unable to find data for input tensor 'B' for model 'm' in request."


def test_mixing_raw_and_contents():
    msg = from_client([client_input("A", np.zeros(2, np.int32), "INT32")])
    t = msg.inputs.add(name="B", datatype="INT32", shape=[2])
    t.contents.int_contents.extend([1, 2])
    assert invalid(msg) == ("contents field must not be specified when using "
                            "raw_input_contents for 'B' for model 'm'")


def test_contents_with_shm():
    msg = pb.ModelInferRequest(model_name="m")
    t = msg.inputs.add(name="A", datatype="INT32", shape=[1])
    t.parameters["shared_memory_region"].string_param = "r"
    t.parameters["shared_memory_byte_size"].int64_param = 4
    t.contents.int_contents.append(1)
    assert "unexpected 'content' provided when using shared memory" in invalid(msg)


def test_surplus_raw_entries_are_ignored_like_triton():
    msg = from_client([client_input("A", np.zeros(2, np.int32), "INT32")])
    msg.raw_input_contents.append(b"extra")
    assert len(codec.decode_request(msg).inputs) == 1


# --------------------------------------------------------------- typed contents


def typed(datatype, field, values, shape=None) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="m")
    t = msg.inputs.add(name="X", datatype=datatype,
                       shape=[len(values)] if shape is None else shape)
    getattr(t.contents, field).extend(values)
    return msg


@pytest.mark.parametrize("datatype,field,values", [
    ("BOOL", "bool_contents", [True, False, True]),
    ("INT8", "int_contents", [-128, 0, 127]),
    ("INT16", "int_contents", [-32768, 1, 32767]),
    ("INT32", "int_contents", [-(2**31), 5, 2**31 - 1]),
    ("INT64", "int64_contents", [-(2**63), 0, 2**63 - 1]),
    ("UINT8", "uint_contents", [0, 7, 255]),
    ("UINT16", "uint_contents", [0, 7, 65535]),
    ("UINT32", "uint_contents", [0, 7, 2**32 - 1]),
    ("UINT64", "uint64_contents", [0, 7, 2**64 - 1]),
    ("FP32", "fp32_contents", [0.5, -1.25, 3.0]),
    ("FP64", "fp64_contents", [0.1, -1e300, 3.0]),
])
def test_typed_contents_become_little_endian_bytes(datatype, field, values):
    (t,) = codec.decode_request(typed(datatype, field, values)).inputs
    assert t.data == np.array(values, dtype=ALL_FIXED[datatype]).astype(
        np.dtype(ALL_FIXED[datatype]).newbyteorder("<")).tobytes()


def test_typed_bytes_are_serialised_with_lengths():
    (t,) = codec.decode_request(typed("BYTES", "bytes_contents", [b"ab", b"", b"xyz"])).inputs
    assert t.data == b"\x02\x00\x00\x00ab\x00\x00\x00\x00\x03\x00\x00\x00xyz"


def test_typed_narrow_ints_truncate_like_triton():
    (t,) = codec.decode_request(typed("INT8", "int_contents", [257, -129])).inputs
    assert t.data == bytes([1, 127])


def test_typed_empty_tensor():
    msg = pb.ModelInferRequest(model_name="m")
    t = msg.inputs.add(name="X", datatype="FP32", shape=[0])
    t.contents.SetInParent()
    assert codec.decode_request(msg).inputs[0].data == b""


@pytest.mark.parametrize("datatype", ["FP16", "BF16"])
def test_half_types_must_be_raw(datatype):
    assert invalid(typed(datatype, "fp32_contents", [1.0])) == (
        "unexpected explicit tensor data for input tensor 'X' for model 'm' of type 'FP32', "
        f"expected datatype '{datatype}'")


def test_typed_field_must_match_datatype():
    assert "of type 'INT32', expected datatype 'UINT8'" in invalid(
        typed("UINT8", "int_contents", [1]))
    assert "of type 'UINT32', expected datatype 'INT16'" in invalid(
        typed("INT16", "uint_contents", [1]))


def test_two_typed_fields():
    msg = typed("INT32", "int_contents", [1])
    msg.inputs[0].contents.fp32_contents.append(1.0)
    assert invalid(msg).endswith("binary data was already supplied.")


def test_typed_element_count_checked():
    assert invalid(typed("FP32", "fp32_contents", [1.0, 2.0], shape=[3])) == (
        "[request id: <id_unknown>] input byte size mismatch for input 'X' for model 'm'. "
        "Expected 12, got 8")
    assert invalid(typed("BYTES", "bytes_contents", [b"a"], shape=[2, 1])) == (
        "[request id: <id_unknown>] expected 2 string elements for inference input 'X' for "
        "model 'm', got 1")
    assert invalid(typed("BYTES", "bytes_contents", [b"a"] * 3, shape=[2])) == (
        "[request id: <id_unknown>] unexpected number of string elements 3 for inference "
        "input 'X' for model 'm', expecting 2")


# -------------------------------------------------------------------- responses


def result(outputs, parameters=None, final=True) -> InferResult:
    return InferResult("m", "1", "id9", parameters or {}, outputs, None, final)


def encode_result(res: InferResult) -> pb.ModelInferResponse:
    return pb.ModelInferResponse.FromString(wire.encode(res))


def test_encode_every_output_in_order():
    f = np.arange(6, dtype=np.float32).reshape(2, 3)
    s = np.array([b"a", b"bc"], dtype=object)
    sb = serialize_byte_tensor(s).item()
    outs = [OutputTensor("F", "FP32", [2, 3], memoryview(f.tobytes()), None),
            OutputTensor("SHM", "INT32", [4], None, None),
            OutputTensor("E", "FP32", [0], memoryview(b""), None),
            OutputTensor("S", "BYTES", [2], memoryview(sb), None)]
    resp = encode_result(result(outs))
    assert (resp.model_name, resp.model_version, resp.id) == ("m", "1", "id9")
    assert [(o.name, o.datatype, list(o.shape)) for o in resp.outputs] == [
        ("F", "FP32", [2, 3]), ("SHM", "INT32", [4]), ("E", "FP32", [0]), ("S", "BYTES", [2])]
    assert list(resp.raw_output_contents) == [f.tobytes(), b"", b"", sb]
    assert not any(o.HasField("contents") for o in resp.outputs)
    # tritonclient reads it back by position.
    parsed = client_pb.ModelInferResponse.FromString(resp.SerializeToString())
    res = grpcclient.InferResult(parsed)
    np.testing.assert_array_equal(res.as_numpy("F"), f)
    assert res.as_numpy("S").tolist() == [b"a", b"bc"]


def test_encode_ids_always_set_and_parameters():
    resp = encode_result(InferResult("m", "2", "", {"b": True, "i": 3, "s": "x", "d": 1.5},
                                     []))
    assert resp.model_version == "2" and resp.id == ""
    kinds = {k: p.WhichOneof("parameter_choice") for k, p in resp.parameters.items()}
    assert kinds == {"b": "bool_param", "i": "int64_param", "s": "string_param",
                     "d": "double_param"}
    err = error_of(wire.encode, InferResult("m", "1", "", {"x": b"raw"}, []))
    assert err.code == Code.UNSUPPORTED
    err = error_of(wire.encode_stream, InferResult("m", "1", "", {"x": b"raw"}, []))
    assert err.code == Code.UNSUPPORTED


def test_stream_wrappers():
    f = np.arange(3, dtype=np.int64)
    out = [OutputTensor("F", "INT64", [3], memoryview(f), None)]
    ok = pb.ModelStreamInferResponse.FromString(wire.encode_stream(result(out, {"p": 1})))
    assert ok.error_message == "" and ok.infer_response.parameters[
        "triton_final_response"].bool_param is True
    assert ok.infer_response.parameters["p"].int64_param == 1
    assert ok.infer_response.id == "id9" and ok.infer_response.model_version == "1"
    assert list(ok.infer_response.raw_output_contents) == [f.tobytes()]
    more = pb.ModelStreamInferResponse.FromString(wire.encode_stream(result(out, final=False)))
    assert more.infer_response.parameters["triton_final_response"].bool_param is False
    assert more.infer_response.parameters["triton_final_response"].HasField("bool_param")
    bad = pb.ModelStreamInferResponse.FromString(wire.encode_stream_error("boom", "r1"))
    assert bad.error_message == "boom" and bad.infer_response.id == "r1"
