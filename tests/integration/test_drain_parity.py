"""What a draining server (after SIGTERM) answers, as Triton's core does once ServerStop ran.

Triton (core src/server.cc): health live and ready fail UNAVAILABLE "Server exiting"
(HTTP 503 with the message, gRPC status UNAVAILABLE; the grpc.health Check too); model
ready, the repository index, load and unload fail UNAVAILABLE "Server not ready"; an
accepted request still finishes. One request held in its model keeps the drain going
while the test asks.
"""
import json
import signal
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

GATE_PY = '''
import os
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.dir = args["model_repository"]

    def execute(self, requests):
        open(os.path.join(self.dir, "waiting"), "w").close()
        end = time.monotonic() + 60
        while not os.path.exists(os.path.join(self.dir, "open")) and time.monotonic() < end:
            time.sleep(0.01)
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]
'''


@pytest.fixture(scope="module")
def draining(tmp_path_factory):
    repo = tmp_path_factory.mktemp("drainrepo")
    model = repo / "gate"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(GATE_PY)
    (model / "config.pbtxt").write_text(
        'name: "gate"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=gate",
                 "--exit-timeout-secs=60")
    result = {}

    def held():
        c = httpclient.InferenceServerClient(srv.url, network_timeout=90)
        inp = httpclient.InferInput("IN", [1], "INT32")
        inp.set_data_from_numpy(np.array([7], np.int32))
        result["out"] = c.infer("gate", [inp]).as_numpy("OUT").tolist()
    thread = threading.Thread(target=held)
    try:
        thread.start()
        end = time.monotonic() + 30
        while not (model / "waiting").exists() and time.monotonic() < end:
            time.sleep(0.02)
        srv.proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + 30
        while "received SIGTERM" not in srv.output() and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.2)          # the frontends heard of it
        yield srv
        (model / "open").write_text("")
        thread.join(60)
        assert result.get("out") == [7]          # the accepted request finished
        assert srv.proc.wait(60) == 0
    finally:
        (model / "open").write_text("")
        srv.stop()


def http(srv, path, method="GET", body=None):
    req = urllib.request.Request(f"http://{srv.url}{path}", method=method, data=body)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def grpc_error(call):
    with pytest.raises(InferenceServerException) as exc:
        call()
    return exc.value.status(), exc.value.message()


def test_health_answers_server_exiting(draining):
    for path in ("/v2/health/live", "/v2/health/ready"):
        status, body = http(draining, path)
        assert (status, json.loads(body)) == (503, {"error": "Server exiting"}), path
    c = grpcclient.InferenceServerClient(draining.grpc_url)
    assert grpc_error(c.is_server_live) == ("StatusCode.UNAVAILABLE", "Server exiting")
    assert grpc_error(c.is_server_ready) == ("StatusCode.UNAVAILABLE", "Server exiting")
    from tritond.protos import health_pb2
    with grpc.insecure_channel(draining.grpc_url) as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                               response_deserializer=health_pb2.HealthCheckResponse.FromString)
        with pytest.raises(grpc.RpcError) as exc:
            check(health_pb2.HealthCheckRequest(), timeout=5)
        assert (exc.value.code(), exc.value.details()) == (
            grpc.StatusCode.UNAVAILABLE, "Server exiting")


def test_repository_api_answers_server_not_ready(draining):
    for path, body in (("/v2/repository/index", b"{}"), ("/v2/repository/models/gate/load", b""),
                       ("/v2/repository/models/gate/unload", b""), ("/v2/models/gate/ready", None)):
        status, got = http(draining, path, "GET" if body is None else "POST", body)
        assert (status, json.loads(got)) == (503, {"error": "Server not ready"}), path
    c = grpcclient.InferenceServerClient(draining.grpc_url)
    for call in (c.get_model_repository_index, lambda: c.load_model("gate"),
                 lambda: c.unload_model("gate"), lambda: c.is_model_ready("gate")):
        assert grpc_error(call) == ("StatusCode.UNAVAILABLE", "Server not ready")
