"""frontend/grpc/wire.py: hand-split requests and hand-built responses equal protobuf's."""
import numpy as np
import pytest
from google.protobuf.message import DecodeError

from tritond.frontend.grpc import codec, wire
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


def test_encode_equals_protobuf_serialisation():
    f = np.arange(6, dtype=np.float32).reshape(2, 3)
    big = np.ones(70000, dtype=np.uint8)
    outs = [OutputTensor("F", "FP32", [2, 3], memoryview(f).cast("B"), None),
            OutputTensor("SHM", "INT32", [4], None, None),
            OutputTensor("E", "FP32", [0], memoryview(b""), None),
            OutputTensor("G", "UINT8", [70000], memoryview(big), None)]
    res = InferResult("m", "1", "id9", {"i": 3, "s": "x"}, outs)
    got = pb.ModelInferResponse.FromString(wire.encode(res))
    assert got == codec.encode_result(res)
    assert list(got.raw_output_contents) == [f.tobytes(), b"", b"", big.tobytes()]
