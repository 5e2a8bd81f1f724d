"""frontend/grpc/wire.py: hand-split requests and hand-built responses equal protobuf's."""
import numpy as np
import pytest
from google.protobuf.message import DecodeError

from tritond.frontend.grpc import codec, params, wire
from tritond.frontend.types import InferResult, OutputTensor
from tritond.protos import grpc_service_pb2 as pb

from .wire import client_input, from_client


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**21, 2**35])
def test_varint_matches_protobuf(n):
    msg = pb.ModelInferResponse(raw_output_contents=[b""])
    assert wire.varint(n) == pb.InferParameter(uint64_param=n).SerializeToString()[1:]
    assert msg.SerializeToString() == b"\x32" + wire.varint(0)


@pytest.mark.parametrize("size", [16, wire.SPLIT_MIN, 3 * wire.SPLIT_MIN + 5])
def test_split_request_equals_protobuf_parse(size):
    a = np.arange(size, dtype=np.float32)
    b = (a * 2).astype(np.int64)
    msg = from_client([client_input("A", a, "FP32"), client_input("B", b, "INT64")],
                      request_id="r7", model_version="3", priority=2)
    data = msg.SerializeToString()
    head, raw = wire.parse_request(data)
    assert [bytes(r) for r in raw] == [a.tobytes(), b.tobytes()]
    if len(data) >= wire.SPLIT_MIN:
        assert all(type(r) is memoryview for r in raw)       # no copy of the tensors
        assert not head.raw_input_contents
    expect, got = codec.decode_request(msg), wire.decode(data)
    assert (got.model, got.version, got.id, got.parameters) == (
        expect.model, expect.version, expect.id, expect.parameters)
    assert [(t.name, t.datatype, t.shape, bytes(t.data)) for t in got.inputs] == [
        (t.name, t.datatype, t.shape, bytes(t.data)) for t in expect.inputs]


@pytest.mark.parametrize("cut", [1, 7, 100])
def test_truncated_request_is_an_error(cut):
    a = np.ones(wire.SPLIT_MIN, dtype=np.float32)
    data = from_client([client_input("A", a, "FP32")]).SerializeToString()
    with pytest.raises((ValueError, IndexError, DecodeError)):
        wire.parse_request(data[:-cut])


def protobuf_response(res: InferResult) -> pb.ModelInferResponse:
    """What protobuf itself builds for ``res``: the reference for the hand-built bytes."""
    resp = pb.ModelInferResponse(model_name=res.model_name, model_version=res.model_version,
                                 id=res.id)
    for o in res.outputs:
        resp.outputs.add(name=o.name, datatype=o.datatype, shape=o.shape)
        resp.raw_output_contents.append(bytes(o.data) if o.data is not None else b"")
    params.fill(res.parameters, resp.parameters)
    return resp


def _result():
    f = np.arange(6, dtype=np.float32).reshape(2, 3)
    big = np.ones(70000, dtype=np.uint8)
    outs = [OutputTensor("F", "FP32", [2, 3], memoryview(f).cast("B"), None),
            OutputTensor("SHM", "INT32", [4], None, None),
            OutputTensor("E", "FP32", [0], memoryview(b""), None),
            OutputTensor("G", "UINT8", [70000], memoryview(big), None)]
    return InferResult("m", "1", "id9", {"i": 3, "s": "x"}, outs), [
        f.tobytes(), b"", b"", big.tobytes()]


def test_encode_equals_protobuf_serialisation():
    res, raws = _result()
    got = pb.ModelInferResponse.FromString(wire.encode(res))
    assert got == protobuf_response(res)
    assert list(got.raw_output_contents) == raws


@pytest.mark.parametrize("final", [True, False])
def test_stream_encode_wraps_the_same_response(final):
    """ModelStreamInfer's bytes are field 2 around the unary encoder's message."""
    res, raws = _result()
    res.final = final
    data = wire.encode_stream(res)
    got = pb.ModelStreamInferResponse.FromString(data)
    expect = pb.ModelStreamInferResponse()
    expect.infer_response.CopyFrom(protobuf_response(res))
    expect.infer_response.parameters["triton_final_response"].bool_param = final
    assert got == expect and got.error_message == ""
    assert list(got.infer_response.raw_output_contents) == raws
    inner = got.infer_response.SerializeToString()
    assert data[:1] == b"\x12" and len(data) == 1 + len(wire.varint(len(inner))) + len(inner)


@pytest.mark.parametrize("encode", [wire.encode, wire.encode_stream])
def test_a_response_over_grpcs_limit_is_refused_before_the_join(encode):
    """Triton's check (InferResponseCompleteCommon): over INT32_MAX bytes is INVALID_ARG, in
    its words; nothing is joined (the 2 GiB output below is one byte, broadcast)."""
    from tritond.errors import Code, TritonError
    huge = memoryview(np.broadcast_to(np.uint8(7), (wire.MAX_MESSAGE,)))
    res = InferResult("m", "1", "", {}, [OutputTensor("B", "UINT8", [huge.nbytes], huge, None)])
    res.final = True
    with pytest.raises(TritonError) as exc:
        encode(res)
    head = pb.ModelInferResponse(model_name="m", model_version="1", outputs=[
        pb.ModelInferResponse.InferOutputTensor(name="B", datatype="UINT8", shape=[huge.nbytes])])
    if encode is wire.encode_stream:      # a stream response carries triton_final_response
        head.parameters["triton_final_response"].bool_param = True
    size = len(head.SerializeToString()) + 1 + len(wire.varint(huge.nbytes)) + huge.nbytes
    assert exc.value.code == Code.INVALID_ARG and exc.value.message == (
        f"Response has byte size {size} which exceeds gRPC's byte size limit 2147483647.")
    just = memoryview(np.full(1000, 7, np.uint8))
    res.outputs[0] = OutputTensor("B", "UINT8", [1000], just, None)
    assert len(encode(res)) < 2000
