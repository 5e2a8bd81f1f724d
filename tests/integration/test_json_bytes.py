"""BYTES outputs in JSON responses keep their bytes, UTF-8 or not (as Triton's writer)."""
import http.client
import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

IDENTITY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT0", pb_utils.get_input_tensor_by_name(r, "IN0").as_numpy())]) for r in requests]
'''
CONFIG = ('name: "bytes_identity"\nbackend: "python"\n'
          'input [ { name: "IN0" data_type: TYPE_STRING dims: [ 3 ] } ]\n'
          'output [ { name: "OUT0" data_type: TYPE_STRING dims: [ 3 ] } ]\n'
          'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
NOT_UTF8 = np.array([b"\xff\xfe", b'q"\\', b"\x01ok"], dtype=object)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    (repo / "bytes_identity" / "1").mkdir(parents=True)
    (repo / "bytes_identity" / "1" / "model.py").write_text(IDENTITY)
    (repo / "bytes_identity" / "config.pbtxt").write_text(CONFIG)
    srv = Server([repo])
    yield srv
    srv.stop()


def request(sample):
    inp = httpclient.InferInput("IN0", [3], "BYTES")
    inp.set_data_from_numpy(sample, binary_data=True)
    return [inp], [httpclient.InferRequestedOutput("OUT0", binary_data=False)]


def infer(c, sample):
    inputs, outputs = request(sample)
    return c.infer("bytes_identity", inputs, outputs=outputs)


def post(server, sample) -> bytes:
    inputs, outputs = request(sample)
    body, hlen = httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    conn = http.client.HTTPConnection(server.url)
    conn.request("POST", "/v2/models/bytes_identity/infer", body,
                 {"Inference-Header-Content-Length": str(hlen)})
    resp = conn.getresponse()
    raw = resp.read()
    assert resp.status == 200, raw
    return raw


def test_bytes_not_utf8_sent_verbatim(server):
    raw = post(server, NOT_UTF8)
    assert b'"data":["\xff\xfe","q\\"\\\\","\\u0001ok"]' in raw
    assert "\ufffd".encode() not in raw


def test_client_raises_on_bytes_not_utf8(server):
    c = httpclient.InferenceServerClient(server.url)
    with pytest.raises(InferenceServerException) as exc:   # as tritonclient does with Triton
        infer(c, NOT_UTF8)
    assert "Failed to encode using UTF-8" in exc.value.message()
    assert "can't decode byte 0xff" in exc.value.message()


def test_utf8_bytes_round_trip_in_json(server):
    sample = np.array(["é".encode(), b"", b"plain"], dtype=object)
    doc = json.loads(post(server, sample))
    assert doc["outputs"][0]["data"] == ["é", "", "plain"]
    c = httpclient.InferenceServerClient(server.url)
    got = infer(c, sample).as_numpy("OUT0")
    assert [x if isinstance(x, bytes) else x.encode() for x in got] == list(sample)
