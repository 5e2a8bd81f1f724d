"""Answers checked against the real Triton 2.51 binary (differential probes, session 10):
``generate`` / ``generate_stream`` bodies, BLS calls from an ``async def execute``, client
shared memory through an ensemble and the HTTP shared-memory register request.

Each case is a request whose answer tritond gave differently from tritonserver 2.51 on
the same repository (the newest Triton sources agree unless a case says otherwise); the
expected text is Triton's.
"""
from __future__ import annotations

import json
import math
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.server import Server

IO = '''input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
         { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
'''
ADD_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            a = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(r, "INPUT1").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", a + b),
                                                   pb_utils.Tensor("OUTPUT1", a - b)]))
        return out
'''
RAISER_PY = '''
class TritonPythonModel:
    def execute(self, requests):
        raise ValueError("boom from raiser")
'''
# Decoupled: ``count`` responses with a NaN and two infinities.
GEN_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            word = pb_utils.get_input_tensor_by_name(r, "text_input").as_numpy().flatten()[0]
            n = int(pb_utils.get_input_tensor_by_name(r, "count").as_numpy().flatten()[0])
            s = r.get_response_sender()
            for i in range(n):
                s.send(pb_utils.InferenceResponse(
                    [pb_utils.Tensor("text_output", np.array([word + b"-%d" % i], dtype=object)),
                     pb_utils.Tensor("val", np.array([np.nan, np.inf, -np.inf, 1.5], np.float32)),
                     pb_utils.Tensor("A_first", np.array([7], np.int32))]))
            s.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''
GEN_CFG = '''backend: "python"
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] },
        { name: "count" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ -1 ] },
         { name: "val" data_type: TYPE_FP32 dims: [ -1 ] },
         { name: "A_first" data_type: TYPE_INT32 dims: [ 1 ] } ]
model_transaction_policy { decoupled: true }
'''
ENS_CFG = '''platform: "ensemble"
input [ { name: "A" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "B" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "S" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "D" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling { step [ { model_name: "add" model_version: -1
  input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" }
  output_map { key: "OUTPUT0" value: "S" } output_map { key: "OUTPUT1" value: "D" } } ] }
'''
INIT_RAISES_PY = '''
def _helper():
    raise RuntimeError("init went wrong")


class TritonPythonModel:
    def initialize(self, args):
        _helper()
'''
# BLS from an async execute: MODE names the call; OUT describes each answer.
BLS_PY = '''
import asyncio
import numpy as np
import triton_python_backend_utils as pb_utils


def _ab():
    return [pb_utils.Tensor("INPUT0", np.ones(4, np.float32)),
            pb_utils.Tensor("INPUT1", np.ones(4, np.float32))]


def _desc(resp):
    if resp.has_error():
        return "ERR %d %s" % (int(resp.error().code()), resp.error().message())
    return "OK " + ",".join(sorted(t.name() for t in resp.output_tensors()))


class TritonPythonModel:
    async def execute(self, requests):
        out = []
        for r in requests:
            mode = pb_utils.get_input_tensor_by_name(r, "MODE").as_numpy().flatten()[0].decode()
            if mode == "raise":
                await self._fail()
            names = {"badout": ["NOPE"], "gather": ["OUTPUT0"]}[mode]
            calls = [pb_utils.InferenceRequest(model_name="add", inputs=_ab(),
                                               requested_output_names=names)
                     for _ in range(3 if mode == "gather" else 1)]
            answers = await asyncio.gather(*[c.async_exec() for c in calls])
            lines = np.array([_desc(a).encode() for a in answers], dtype=object)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", lines)]))
        return out

    async def _fail(self):
        raise ValueError("plain value error")
'''
BLS_CFG = '''backend: "python"
input [ { name: "MODE" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_STRING dims: [ -1 ] } ]
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity2")
    models = {"add": (f'backend: "python"\n{IO}', ADD_PY),
              "v0": (f'backend: "python"\n{IO}', ADD_PY),           # only version 0
              "ens0": (ENS_CFG.replace('"add"', '"v0"'), None),
              "initraise": (f'backend: "python"\n{IO}', INIT_RAISES_PY),
              "syntax": (f'backend: "python"\n{IO}', "class TritonPythonModel:\n    def f(:\n"),
              "importerr": (f'backend: "python"\n{IO}', "import no_such_module_xyz\n"),
              "raiser": (f'backend: "python"\n{IO}', RAISER_PY),
              "gen": (GEN_CFG, GEN_PY), "bls": (BLS_CFG, BLS_PY), "ens": (ENS_CFG, None)}
    for name, (cfg, code) in models.items():
        version = root / name / ("0" if name == "v0" else "1")
        version.mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(cfg)
        if code is not None:
            (version / "model.py").write_text(code)
    # explicit: the load API answers; not strict: the broken models leave the server ready
    server = Server([root], "--allow-client-shm=true", "--model-control-mode=explicit",
                    "--load-model=*", "--strict-readiness=false")
    server.root = root
    yield server
    server.stop()


def _post(srv, path: str, body) -> tuple[int, str, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{srv.url}{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


# ------------------------------------------------------------------ generate


def test_generate_writes_nan_and_infinities_and_sorted_keys(srv):
    # Triton's generate response is a std::map written by TritonJson (rapidjson with
    # kWriteNanAndInfFlag): keys in byte order, NaN / Infinity / -Infinity as tokens.
    status, ctype, body = _post(srv, "/v2/models/gen/generate",
                                {"text_input": "hi", "count": 1})
    assert (status, ctype) == (200, "application/json")
    assert body == (b'{"A_first":7,"model_name":"gen","model_version":"1",'
                    b'"text_output":"hi-0","val":[NaN,Infinity,-Infinity,1.5]}')
    doc = json.loads(body)                  # Python's json reads the tokens back
    assert math.isnan(doc["val"][0]) and doc["val"][1:] == [math.inf, -math.inf, 1.5]


def test_generate_stream_events_write_nan_and_sorted_keys(srv):
    status, ctype, body = _post(srv, "/v2/models/gen/generate_stream",
                                {"text_input": "hi", "count": 2})
    assert (status, ctype) == (200, "text/event-stream; charset=utf-8")
    assert body == b"".join(
        b'data: {"A_first":7,"model_name":"gen","model_version":"1","text_output":"hi-%d",'
        b'"val":[NaN,Infinity,-Infinity,1.5]}\n\n' % i for i in range(2))


def test_generate_stream_failing_first_response_is_an_event(srv):
    # Triton starts the chunked reply with the first response, error or not: the stream's
    # content type and a `data:` event (the status is the error's).
    status, ctype, body = _post(srv, "/v2/models/raiser/generate_stream",
                                {"INPUT0": [1, 2, 3, 4], "INPUT1": [1, 1, 1, 1]})
    assert ctype == "text/event-stream; charset=utf-8"
    assert body.startswith(b'data: {"error":"Failed to process the request(s) for model '
                           b"'raiser_0', message: ValueError: boom from raiser")
    assert body.endswith(b'"}\n\n')
    status, ctype, body = _post(srv, "/v2/models/raiser/generate",
                                {"INPUT0": [1, 2, 3, 4], "INPUT1": [1, 1, 1, 1]})
    assert ctype == "application/json" and body.startswith(b'{"error":"Failed to process')


@pytest.mark.parametrize("params, text", [
    ({"a": [1]}, "Converting keyword: 'parameters': parameter 'a' has invalid type. It "
                 "should be either 'int', 'bool', or 'string'."),
    (5, "Expected JSON object for keyword: 'parameters': attempt to access JSON "
        "non-object as object"),
])
def test_generate_bad_parameters_object(srv, params, text):
    status, _, body = _post(srv, "/v2/models/gen/generate",
                            {"text_input": "hi", "count": 1, "parameters": params})
    assert status == 400 and json.loads(body) == {"error": text}


# ------------------------------------------------------------------ BLS from async execute


def _bls(srv, mode: str) -> list[str]:
    c = httpclient.InferenceServerClient(srv.url)
    try:
        i = httpclient.InferInput("MODE", [1], "BYTES")
        i.set_data_from_numpy(np.array([mode.encode()], dtype=object))
        return [x.decode() for x in c.infer("bls", [i]).as_numpy("OUT")]
    finally:
        c.close()


def test_bls_async_exec_gathered(srv):
    assert _bls(srv, "gather") == ["OK OUTPUT0"] * 3


def test_async_execute_failure_names_the_innermost_coroutine_only(srv):
    # pybind11 walks the innermost frame's callers: an awaited coroutine that raised has
    # returned, so Triton names it alone (tritond added execute and concurrent.futures').
    line = BLS_PY.splitlines().index('        raise ValueError("plain value error")') + 1
    with pytest.raises(InferenceServerException) as e:
        _bls(srv, "raise")
    head = ("Failed to process the request(s) for model 'bls_0', message: ValueError: plain "
            f"value error\n\nAt:\n  {srv.root}/bls/1/model.py({line}): _fail\n")
    if sys.version_info[:2] == (3, 11):      # the oracle's stub was built for 3.11
        assert e.value.message() == head
    else:
        # from 3.12 a finished coroutine's frame keeps its f_back, so pybind11's walk (and
        # ours) goes on to its callers: the innermost line is still the coroutine's
        assert e.value.message().startswith(head)


def test_bls_unknown_requested_output_fails_the_call(srv):
    # Triton core refuses the request (INVALID_ARG), python_backend's executor words it
    # (INTERNAL); tritond answered OK with no outputs.
    assert _bls(srv, "badout") == [
        "ERR 1 Model add - Error when running inference: unexpected inference output 'NOPE' "
        "for model 'add'"]


# ------------------------------------------------------------------ client shm, ensembles


def test_ensemble_output_region_too_small_names_the_ensemble_output(srv):
    region = shm.create_shared_memory_region("p2small", "/p2small", 8)
    c = httpclient.InferenceServerClient(srv.url)
    try:
        c.register_system_shared_memory("p2small", "/p2small", 8)
        inputs = []
        for n in ("A", "B"):
            i = httpclient.InferInput(n, [4], "FP32")
            i.set_data_from_numpy(np.ones(4, np.float32))
            inputs.append(i)
        out = httpclient.InferRequestedOutput("S", binary_data=True)
        out.set_shared_memory("p2small", 8)
        with pytest.raises(InferenceServerException) as e:
            c.infer("ens", inputs, outputs=[out])
        # Triton names the ensemble's output ('S'), not its step model's ('OUTPUT0').
        assert e.value.message() == (
            "in ensemble 'ens', shared memory size specified with the request for output "
            "'S' (8 bytes) should be at least 16 bytes to hold the results")
    finally:
        c.unregister_system_shared_memory("p2small")
        c.close()
        shm.destroy_shared_memory_region(region)


_REG = "/v2/systemsharedmemory/region/p2r/register"


@pytest.mark.parametrize("body, text", [
    ({"key": "/p2reg", "offset": 0}, "Shared memory register request has no 'byte_size' field"),
    ({"byte_size": 16}, "Shared memory register request has no 'key' field"),
    ({}, "Shared memory register request has no 'key' field"),
    (b"", "Shared memory register request has no 'key' field"),
    (b"[1]", "Shared memory register request has no 'key' field"),
    # A value of the wrong JSON type: tritond's words, then TritonJson's (Triton's whole
    # text, which it answers 500 where tritond answers a client's mistake 400).
    ({"key": 5, "byte_size": 16},
     "Unable to parse 'key': attempt to access JSON non-string as string"),
    ({"key": "/p2reg", "byte_size": "16"},
     "Unable to parse 'byte_size': attempt to access JSON non-unsigned-integer as "
     "unsigned-integer"),
])
def test_system_shm_register_body_fields(srv, body, text):
    status, ctype, got = _post(srv, _REG, body)
    assert (status, ctype, json.loads(got)) == (400, "application/json", {"error": text})


@pytest.mark.parametrize("body, text", [
    ({"device_id": 0, "byte_size": 16},
     "Shared memory register request has no 'raw_handle' field"),
    ({"raw_handle": {}, "device_id": 0, "byte_size": 16},
     "Unable to parse 'raw_handle': attempt to access non-existing object member 'b64'"),
])
def test_cuda_shm_register_body_fields(srv, body, text):
    status, _, got = _post(srv, "/v2/cudasharedmemory/region/p2c/register", body)
    assert (status, json.loads(got)) == (400, {"error": text})


def test_shm_register_and_unregister_answer_json(srv):
    # Triton sets the JSON content type on every shared-memory answer, an empty 200 too.
    region = shm.create_shared_memory_region("p2ok", "/p2ok", 16)
    try:
        assert _post(srv, "/v2/systemsharedmemory/region/p2ok/register",
                     {"key": "/p2ok", "byte_size": 16}) == (200, "application/json", b"")
        assert _post(srv, "/v2/systemsharedmemory/region/p2ok/unregister", b"") == (
            200, "application/json", b"")
    finally:
        shm.destroy_shared_memory_region(region)


# ------------------------------------------------------------------ version directory 0


def test_version_directory_zero_is_served(srv):
    # Triton (2.51 binary and the newest core) takes a directory named "0" for version 0;
    # only names with a leading zero and more digits are ignored. tritond ignored "0" and
    # left the model UNAVAILABLE ("at least one version must be available ...").
    c = httpclient.InferenceServerClient(srv.url)
    try:
        assert c.is_model_ready("v0") and c.is_model_ready("v0", "0")
        assert c.get_model_metadata("v0")["versions"] == ["0"]
        inputs = []
        for n in ("INPUT0", "INPUT1"):
            i = httpclient.InferInput(n, [4], "FP32")
            i.set_data_from_numpy(np.full(4, 2, np.float32))
            inputs.append(i)
        res = c.infer("v0", inputs)
        assert res.get_response()["model_version"] == "0"
        assert res.as_numpy("OUTPUT0").tolist() == [4.0] * 4
        c.infer("v0", inputs, model_version="0")
        stats = c.get_inference_statistics("v0")["model_stats"]
        assert [(s["version"], s["inference_count"]) for s in stats] == [("0", 2)]
        for n, i in zip(("A", "B"), inputs):        # an ensemble step on version 0 (latest)
            i._name = n
        res = c.infer("ens0", inputs)
        assert res.as_numpy("S").tolist() == [4.0] * 4
    finally:
        c.close()


# ------------------------------------------------------------------ content types


def _request(srv, method: str, path: str) -> tuple[int, str, bytes]:
    req = urllib.request.Request(f"http://{srv.url}{path}", method=method,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


@pytest.mark.parametrize("method, path, answer", [
    # Triton's health handlers and its unknown-route answer set no content type (its HTTP
    # library then says text/plain), the JSON error body notwithstanding.
    ("GET", "/v2/health/live", (200, "text/plain", b"")),
    ("GET", "/v2/health/ready", (200, "text/plain", b"")),
    ("GET", "/v2/models/add/ready", (200, "text/plain", b"")),
    ("GET", "/v2/models/nope/ready", (400, "text/plain", b'{"error":"Model version not ready"}')),
    ("GET", "/v2/bogus", (404, "text/plain", b'{"error":"Not Found"}')),
    ("GET", "/v2/models/add/bogus", (404, "text/plain", b'{"error":"Not Found"}')),
    ("POST", "/v2/health/live", (405, "text/plain", b'{"error":"Method Not Allowed"}')),
    # The other handlers set JSON first.
    ("DELETE", "/v2/models/add", (405, "application/json", b'{"error":"Method Not Allowed"}')),
])
def test_content_types_of_health_and_route_errors(srv, method, path, answer):
    assert _request(srv, method, path) == answer


# ------------------------------------------------------------------ Python load failures


def test_python_load_failure_reasons(srv):
    # Triton's reason is its Status text ("Internal: " first) of the stub's what(): the
    # frames from the innermost up its callers; a SyntaxError has none (the import strips
    # importlib's frames), a failed import inside model.py shows importlib's up to the load.
    rows = {r["name"]: r for r in httpclient.InferenceServerClient(srv.url)
            .get_model_repository_index()}
    model_py = f"{srv.root}/initraise/1/model.py"
    assert rows["initraise"]["reason"] == (
        f"Internal: RuntimeError: init went wrong\n\nAt:\n  {model_py}(3): _helper\n"
        f"  {model_py}(8): initialize\n")
    assert rows["syntax"]["reason"] == ("Internal: SyntaxError: invalid syntax (model.py, "
                                        "line 2)")
    reason = rows["importerr"]["reason"]
    assert reason.startswith("Internal: ModuleNotFoundError: No module named "
                             "'no_such_module_xyz'\n\nAt:\n  "
                             f"{srv.root}/importerr/1/model.py(1): <module>\n")
    frames = [line.rsplit(": ", 1)[1] for line in reason.splitlines()[4:]]
    assert frames == ["_call_with_frames_removed", "exec_module", "_load_unlocked",
                      "_find_and_load_unlocked", "_find_and_load"]


def test_load_failure_answer_ends_each_model_with_a_newline(srv):
    status, _, body = _post(srv, "/v2/repository/models/syntax/load", {})
    assert status == 400
    assert json.loads(body)["error"] == (
        "load failed for model 'syntax': version 1 is at UNAVAILABLE state: Internal: "
        "SyntaxError: invalid syntax (model.py, line 2);\n")
