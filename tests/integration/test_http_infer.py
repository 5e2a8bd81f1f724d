"""End-to-end inference over HTTP with the real tritonclient against a real tritond."""
import gzip
import json
import http.client
import zlib

import numpy as np
import pytest
import tritonclient.http as httpclient



@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(server.url, concurrency=4)
    yield c
    c.close()


def simple_inputs(a, b, binary=True):
    inputs = [httpclient.InferInput("INPUT0", list(a.shape), "INT32"),
              httpclient.InferInput("INPUT1", list(b.shape), "INT32")]
    inputs[0].set_data_from_numpy(a, binary_data=binary)
    inputs[1].set_data_from_numpy(b, binary_data=binary)
    return inputs


@pytest.mark.parametrize("binary", [True, False])
def test_simple_onnx(client, binary):
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.full((2, 16), 3, dtype=np.int32)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary)]
    r = client.infer("simple", simple_inputs(a, b, binary), outputs=outputs, request_id="r1")
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    resp = r.get_response()
    assert resp["model_name"] == "simple" and resp["model_version"] == "1" and resp["id"] == "r1"


def test_python_model_add_sub(client):
    a = np.random.rand(16).astype(np.float32)
    b = np.random.rand(16).astype(np.float32)
    inputs = [httpclient.InferInput("INPUT0", [16], "FP32"), httpclient.InferInput("INPUT1", [16], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    r = client.infer("add_sub", inputs)
    np.testing.assert_allclose(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_allclose(r.as_numpy("OUTPUT1"), a - b)


@pytest.mark.parametrize("binary", [True, False])
def test_bytes_model(client, binary):
    data = np.array([[f"s{i}".encode() * (i % 3) for i in range(16)]], dtype=object)
    inp = httpclient.InferInput("INPUT0", [1, 16], "BYTES")
    inp.set_data_from_numpy(data, binary_data=binary)
    r = client.infer("simple_string", [inp],
                     outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)])
    got = [x if isinstance(x, bytes) else x.encode() for x in r.as_numpy("OUTPUT0").ravel()]
    assert got == data.ravel().tolist()  # JSON outputs come back as str in tritonclient


def test_large_identity(client):
    x = np.random.rand(4 << 20).astype(np.float32)  # 16 MiB
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    r = client.infer("identity_fp32", [inp])
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)


@pytest.mark.parametrize("algo", ["gzip", "deflate"])
def test_compression_both_ways(client, algo):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    r = client.infer("simple", simple_inputs(a, a), request_compression_algorithm=algo,
                     response_compression_algorithm=algo)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a * 2)


def test_concurrent_requests_are_batched_and_correct(client):
    futures = []
    for i in range(32):
        a = np.full((1, 16), i, dtype=np.int32)
        futures.append((i, client.async_infer("simple", simple_inputs(a, a))))
    for i, fut in futures:
        np.testing.assert_array_equal(fut.get_result().as_numpy("OUTPUT0"), np.full((1, 16), 2 * i))


def raw_post(server, path, body, headers=None):
    conn = http.client.HTTPConnection(server.url, timeout=10)
    conn.request("POST", path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def test_json_request_raw(server):
    body = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [list(range(16))]},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}]})
    status, data = raw_post(server, "/v2/models/simple/infer", body)
    assert status == 200, data
    out = {o["name"]: o for o in json.loads(data)["outputs"]}
    assert out["OUTPUT0"]["data"] == [2 * i for i in range(16)]
    assert out["OUTPUT0"]["shape"] == [1, 16] and out["OUTPUT0"]["datatype"] == "INT32"


def test_gzip_body_raw(server):
    body = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}]}).encode()
    status, data = raw_post(server, "/v2/models/simple/infer", gzip.compress(body),
                            {"Content-Encoding": "gzip", "Accept-Encoding": "deflate"})
    assert status == 200
    assert json.loads(zlib.decompress(data))["outputs"][0]["data"][1] == 2


def test_nan_and_infinity_pass_through_json(server):
    """qa/L0_nan_inf: Triton reads and writes NaN, Infinity, -Infinity in JSON tensors."""
    conn = http.client.HTTPConnection(server.url, timeout=30)
    body = (b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[4],'
            b'"data":[NaN,Infinity,-Infinity,1.5]}]}')
    conn.request("POST", "/v2/models/identity_fp32/infer", body)
    resp = conn.getresponse()
    raw = resp.read()
    assert resp.status == 200, raw
    assert b'"data":[NaN,Infinity,-Infinity,1.5]' in raw
    got = json.loads(raw)["outputs"][0]["data"]
    np.testing.assert_array_equal(np.array(got), [np.nan, np.inf, -np.inf, 1.5])
