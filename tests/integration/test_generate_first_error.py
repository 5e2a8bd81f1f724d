"""generate_stream whose FIRST response fails, through a real tritond over raw HTTP.

Triton (server src/http_server.cc, GenerateRequestClass::InferResponseComplete and
StartResponse) starts the chunked SSE reply with the first response of a request its
core accepted, a failed one too: the stream's content type, the error's status
(HttpCodeFromError) and a ``data: {"error": ...}`` event. A request refused before it
runs (TRITONSERVER_ServerInferAsync failing: a bad input, a full queue) is a plain JSON
error. The origin decides, not the error's code.
"""
from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.server import Server

SSE = "text/event-stream; charset=utf-8"

FAILS = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            mode = int(pb_utils.get_input_tensor_by_name(request, "MODE").as_numpy()[0])
            if mode == 0:
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "bad", pb_utils.TritonError.INVALID_ARG)))
            elif mode == 1:
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("boom")))
            else:
                out.append(pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUT", np.array([mode], np.int32))]))
        return out
'''

DFAILS = '''
import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            mode = int(pb_utils.get_input_tensor_by_name(request, "MODE").as_numpy()[0])
            sender = request.get_response_sender()
            bad = pb_utils.InferenceResponse(error=pb_utils.TritonError(
                "bad", pb_utils.TritonError.INVALID_ARG))
            if mode == 0:           # a failed response first, then the stream goes on
                sender.send(bad)
                sender.send(pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUT", np.array([1], np.int32))]))
                sender.send(flags=FINAL)
            else:                   # the failed response is the final one
                sender.send(bad, flags=FINAL)
        return None
'''

GATE = '''
import pathlib, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import json
        params = json.loads(args["model_config"])["parameters"]
        self.flag = pathlib.Path(params["FLAG"]["string_value"])

    def execute(self, requests):
        out = []
        for request in requests:
            ms = float(pb_utils.get_input_tensor_by_name(request, "MS").as_numpy().reshape(-1)[0])
            if ms:
                self.flag.touch()
                time.sleep(ms / 1000)
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUT", np.array([[ms]], np.float32))]))
        return out
'''


def _model(repo, name, code, config):
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(code)
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n{config}')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("genfirst")
    repo = tmp / "repo"
    io = ('input [ { name: "MODE" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
          'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
          'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    _model(repo, "fails", FAILS, "max_batch_size: 0\n" + io)
    _model(repo, "dfails", DFAILS, "max_batch_size: 0\n"
           "model_transaction_policy { decoupled: true }\n" + io)
    _model(repo, "gate", GATE, (
        "max_batch_size: 1\n"
        'input [ { name: "MS" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n"
        "dynamic_batching { default_queue_policy { max_queue_size: 1 timeout_action: REJECT "
        "default_timeout_microseconds: 300000 } }\n"
        f'parameters {{ key: "FLAG" value: {{ string_value: "{tmp / "started"}" }} }}\n'))
    srv = Server([repo])
    srv.flag = tmp / "started"
    yield srv
    srv.stop()


def _post(srv, path: str, doc) -> tuple[int, str, bytes]:
    host, port = srv.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(doc),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def test_a_first_response_failing_with_invalid_arg_is_an_event_with_400(served):
    assert _post(served, "/v2/models/fails/generate_stream", {"MODE": 0}) == (
        400, SSE, b'data: {"error":"bad"}\n\n')


def test_a_first_response_failing_with_internal_is_an_event_with_500(served):
    assert _post(served, "/v2/models/fails/generate_stream", {"MODE": 1}) == (
        500, SSE, b'data: {"error":"boom"}\n\n')


def test_a_decoupled_model_failing_its_first_response_streams_on(served):
    # The first (failed, not final) response set the status; the responses after it follow.
    assert _post(served, "/v2/models/dfails/generate_stream", {"MODE": 0}) == (
        400, SSE,
        b'data: {"error":"bad"}\n\ndata: {"OUT":1,"model_name":"dfails","model_version":"1"}\n\n')
    assert _post(served, "/v2/models/dfails/generate_stream", {"MODE": 1}) == (
        400, SSE, b'data: {"error":"bad"}\n\n')


def test_a_bad_input_is_plain_json(served):
    status, ctype, body = _post(served, "/v2/models/fails/generate_stream", {"MODE": [0, 1]})
    assert (status, ctype) == (400, "application/json")
    assert json.loads(body) == {"error": "The schema can not convert input 'MODE' to tensor "
                                         "with proper shape"}


def test_generate_keeps_the_failed_response_as_json(served):
    assert _post(served, "/v2/models/fails/generate", {"MODE": 0}) == (
        400, "application/json", b'{"error":"bad"}')


ONE = (b'{"error":"generate expects model to produce exactly 1 response, use generate '
       b'stream for model that generates various number of responses"}')


def test_generate_counts_a_failed_first_response_among_several(served):
    # Triton's SendChunkResponse: two responses (the failed one counted) -> its "exactly 1
    # response" error, under the status the failed first response set (StartResponse).
    assert _post(served, "/v2/models/dfails/generate", {"MODE": 0}) == (
        400, "application/json", ONE)
    assert _post(served, "/v2/models/dfails/generate", {"MODE": 1}) == (
        400, "application/json", b'{"error":"bad"}')


def test_a_full_queue_is_json_and_a_queue_timeout_an_event(served):
    # Triton's dynamic batcher: a full queue fails Enqueue (ServerInferAsync returns it),
    # a request timed out in the queue gets an error response (RespondIfError).
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(_post, served, "/v2/models/gate/generate_stream", {"MS": 2500})
        deadline = time.monotonic() + 20
        while not served.flag.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert served.flag.exists()
        queued = pool.submit(_post, served, "/v2/models/gate/generate_stream", {"MS": 0})
        time.sleep(0.1)               # "queued" waits in the queue (300 ms timeout)
        status, ctype, body = _post(served, "/v2/models/gate/generate_stream", {"MS": 0})
        assert (status, ctype) == (503, "application/json")
        assert json.loads(body)["error"].endswith("Exceeds maximum queue size")
        status, ctype, body = queued.result()
        assert (status, ctype) == (503, SSE)
        assert body.startswith(b'data: {"error":"') and body.endswith(b'"}\n\n')
        assert b"Request timeout expired" in body
        assert blocker.result()[:2] == (200, SSE)
