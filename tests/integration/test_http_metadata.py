"""Health, metadata and config endpoints over HTTP."""
import http.client
import json

import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(server.url)
    yield c
    c.close()


def get(server, path):
    conn = http.client.HTTPConnection(server.url, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_health(client, server):
    assert client.is_server_live() and client.is_server_ready()
    assert get(server, "/v2/health/live") == (200, b"")
    assert get(server, "/v2/health/ready") == (200, b"")


def test_server_metadata(client):
    md = client.get_server_metadata()
    assert md["name"] == "triton" and md["version"]
    assert "binary_tensor_data" in md["extensions"]


def test_model_metadata(client):
    md = client.get_model_metadata("simple")
    assert md["name"] == "simple" and md["versions"] == ["1"] and md["platform"] == "onnxruntime_onnx"
    assert md["inputs"][0] == {"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]}
    md = client.get_model_metadata("add_sub", "1")
    assert md["platform"] == "python" and md["outputs"][1]["shape"] == [16]


def test_model_ready(client):
    assert client.is_model_ready("simple") and client.is_model_ready("simple", "1")
    assert not client.is_model_ready("simple", "2")


def test_unknown_model_metadata_is_404(client):
    with pytest.raises(InferenceServerException) as exc:
        client.get_model_metadata("nope")
    assert exc.value.status() == "404"


def test_model_config_json(client):
    cfg = client.get_model_config("simple")
    assert cfg["name"] == "simple" and cfg["max_batch_size"] == 8
    assert cfg["input"][0]["dims"] == [16] and cfg["input"][0]["data_type"] == "TYPE_INT32"
    assert cfg["backend"] == "onnxruntime" and cfg["platform"] == "onnxruntime_onnx"


def test_not_found_and_method_not_allowed(server):
    status, body = get(server, "/v2/bogus/path")
    assert status == 404 and json.loads(body) == {"error": "Not Found"}
    status, body = get(server, "/v2/models/simple/infer")
    assert status == 405 and json.loads(body) == {"error": "Method Not Allowed"}


def test_repository_index(client):
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["simple"]["state"] == "READY" and index["simple"]["version"] == "1"


def test_statistics(client):
    import numpy as np
    from tests.integration.test_http_infer import simple_inputs
    a = np.ones((1, 16), np.int32)
    client.infer("simple", simple_inputs(a, a))
    stats = client.get_inference_statistics("simple")["model_stats"][0]
    assert stats["name"] == "simple" and stats["inference_count"] >= 1
    assert stats["inference_stats"]["success"]["count"] >= 1
