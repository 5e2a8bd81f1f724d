"""End-to-end gRPC with the real tritonclient.grpc against a real tritond."""
import queue

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def client(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


def simple_inputs(a, b):
    inputs = [grpcclient.InferInput("INPUT0", list(a.shape), "INT32"),
              grpcclient.InferInput("INPUT1", list(b.shape), "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return inputs


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("simple")
    md = client.get_server_metadata()
    assert md.name == "triton"
    mm = client.get_model_metadata("simple")
    assert mm.platform == "onnxruntime_onnx" and list(mm.inputs[0].shape) == [-1, 16]
    cfg = client.get_model_config("simple").config
    assert cfg.max_batch_size == 8 and cfg.input[0].name == "INPUT0"


def test_infer_simple(client):
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.ones((2, 16), np.int32)
    r = client.infer("simple", simple_inputs(a, b), request_id="g1")
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    assert r.get_response().id == "g1" and r.get_response().model_version == "1"


def test_infer_python_and_bytes(client):
    a = np.random.rand(16).astype(np.float32)
    inputs = [grpcclient.InferInput("INPUT0", [16], "FP32"), grpcclient.InferInput("INPUT1", [16], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    r = client.infer("add_sub", inputs)
    np.testing.assert_allclose(r.as_numpy("OUTPUT0"), 2 * a)
    s = np.array([[b"x" * i for i in range(16)]], dtype=object)
    inp = grpcclient.InferInput("INPUT0", [1, 16], "BYTES")
    inp.set_data_from_numpy(s)
    assert client.infer("simple_string", [inp]).as_numpy("OUTPUT0").tolist() == s.tolist()


def test_negative_timeout_is_taken_as_uint64(client):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    r = client.infer("simple", simple_inputs(a, a), timeout=-1)   # Triton: 2**64 - 1 us
    assert r.as_numpy("OUTPUT0").sum() == 2 * a.sum()


def test_large_tensor_and_compression(client):
    x = np.random.rand(1 << 20).astype(np.float32)
    inp = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    r = client.infer("identity_fp32", [inp], compression_algorithm="gzip")
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)


def test_errors_map_to_grpc_codes(client):
    a = np.ones((1, 16), np.int32)
    with pytest.raises(InferenceServerException) as exc:
        client.infer("nope", simple_inputs(a, a))
    assert exc.value.status() == "StatusCode.NOT_FOUND"
    f = np.ones((1, 16), np.float32)
    bad = [grpcclient.InferInput("INPUT0", [1, 16], "FP32"), grpcclient.InferInput("INPUT1", [1, 16], "FP32")]
    for i in bad:
        i.set_data_from_numpy(f)
    with pytest.raises(InferenceServerException) as exc:
        client.infer("simple", bad)
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert client.infer("simple", simple_inputs(a, a)).as_numpy("OUTPUT0").sum() == 32


def test_stream_infer(client):
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        for i in range(4):
            a = np.full((1, 16), i, np.int32)
            client.async_stream_infer("simple", simple_inputs(a, a), request_id=str(i))
        got = {}
        for _ in range(4):
            result, error = results.get(timeout=10)
            assert error is None
            got[result.get_response().id] = result.as_numpy("OUTPUT0")[0, 0]
        assert got == {str(i): 2 * i for i in range(4)}
    finally:
        client.stop_stream()


def test_standard_health_service(server):
    from tritond.protos import health_pb2
    with grpc.insecure_channel(server.grpc_url) as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                               response_deserializer=health_pb2.HealthCheckResponse.FromString)
        assert check(health_pb2.HealthCheckRequest(), timeout=5).status == 1  # SERVING
