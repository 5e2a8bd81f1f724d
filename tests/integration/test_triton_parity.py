"""Texts checked against the real Triton 2.51 binary (a differential probe, session 9).

Each case is a request whose answer tritond gave differently from tritonserver 2.51 on
the same repository; the expected text is Triton's, as the binary answered it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

MODEL_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            a = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(r, "INPUT1").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", a + b)]))
        return out
'''
IO = '''input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    for name, head in (("add", ""), ("addb", "max_batch_size: 8\n")):
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.py").write_text(MODEL_PY)
        (root / name / "config.pbtxt").write_text(f'backend: "python"\n{head}{IO}')
    server = Server([root])
    yield server
    server.stop()


def _inputs(mod, shape=(4,)):
    out = []
    for n in ("INPUT0", "INPUT1"):
        i = mod.InferInput(n, list(shape), "FP32")
        i.set_data_from_numpy(np.ones(shape, np.float32))
        out.append(i)
    return out


def _grpc_error(srv, call, *args, **kw) -> InferenceServerException:
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        with pytest.raises(InferenceServerException) as e:
            getattr(c, call)(*args, **kw)
        return e.value
    finally:
        c.close()


def _http_error(srv, call, *args, **kw) -> InferenceServerException:
    c = httpclient.InferenceServerClient(srv.url)
    try:
        with pytest.raises(InferenceServerException) as e:
            getattr(c, call)(*args, **kw)
        return e.value
    finally:
        c.close()


def test_statistics_of_a_version_not_ready(srv):
    # Triton: a model with no ready version is "not available"; a named version that
    # is not ready names the model only ("requested model version is not available").
    text = "requested model version is not available for model 'add'"
    e = _http_error(srv, "get_inference_statistics", "add", "7")
    assert (e.status(), e.message()) == ("400", text)
    e = _grpc_error(srv, "get_inference_statistics", "add", "7")
    assert (e.status(), e.message()) == ("StatusCode.INVALID_ARGUMENT", text)
    e = _grpc_error(srv, "get_inference_statistics", "nope", "7")
    assert e.message() == "requested model 'nope' is not available"


def test_unexpected_shape_text_ends_as_tritons(srv):
    # Triton writes "got [2,2]. " then its batch note (empty without batching).
    e = _grpc_error(srv, "infer", "add", _inputs(grpcclient, (2, 2)))
    assert e.message().endswith("for model 'add'. Expected [4], got [2,2]. ")
    e = _http_error(srv, "infer", "addb", _inputs(httpclient, (4,)))
    assert "for model 'addb'. Expected [-1,4], got [4]. NOTE: Setting" in e.message()


def test_duplicate_input_named_before_the_count(srv):
    # Triton refuses a repeated input as it reads the request, before counting inputs.
    body = {"inputs": [{"name": n, "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}
                       for n in ("INPUT0", "INPUT1", "INPUT0")]}
    import http.client
    host, port = srv.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", "/v2/models/add/infer", body=json.dumps(body))
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())) == (
            400, {"error": "[request id: <id_unknown>] input 'INPUT0' already exists in request"})
    finally:
        conn.close()


def test_version_string_texts(srv):
    # Triton's GetModelVersionFromString: std::stol's failure, then the rule.
    e = _grpc_error(srv, "get_model_metadata", "add", "x")
    assert (e.status(), e.message()) == (
        "StatusCode.INVALID_ARGUMENT", "failed to get model version from specified version "
        "string 'x' (details: stol), version should be an integral value > 0")
    e = _grpc_error(srv, "get_inference_statistics", "add", "x")
    assert e.message().endswith("(details: stol), version should be an integral value > 0")
    e = _grpc_error(srv, "get_model_config", "add", "-2")
    assert (e.status(), e.message()) == (
        "StatusCode.INVALID_ARGUMENT",
        "invalid model version specified '-2' , version should be an integral value > 0")


def _post(srv, path, body) -> tuple[int, dict]:
    import http.client
    host, port = srv.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=body if isinstance(body, str) else json.dumps(body))
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def _good(**top):
    return {"inputs": [{"name": n, "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}
                       for n in ("INPUT0", "INPUT1")], **top}


def _one(**fields):
    body = _good()
    body["inputs"][0].update(fields)
    body["inputs"][0] = {k: v for k, v in body["inputs"][0].items() if v is not None}
    return body


NON = "attempt to access JSON non-"
JSON_REASONS = [       # (body, Triton 2.51's text; its code is 500, ours 400: compatibility.md)
    ({"inputs": "x"}, f"Unable to parse 'inputs': {NON}array as array"),
    ({}, "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'"),
    (_one(name=None), "Unable to parse 'name': attempt to access non-existing object member "
                      "'name'"),
    (_one(name=5), f"Unable to parse 'name': {NON}string as string"),
    (_good(id=5), f"Unable to parse 'id': {NON}string as string"),
    (_good(outputs="x"), f"Unable to parse 'outputs': {NON}array as array"),
    (_good(outputs=[{}]), "Unable to parse 'name': attempt to access non-existing object "
                          "member 'name'"),
    (_good(outputs=[{"name": "OUTPUT0", "parameters": {"binary_data": "x"}}]),
     f"Unable to parse 'binary_data': {NON}boolean as boolean"),
    (_good(outputs=[{"name": "OUTPUT0", "parameters": {"classification": "x"}}]),
     f"Unable to set 'classification': {NON}unsigned-integer as unsigned-integer"),
    (_good(parameters={"binary_data_output": "yes"}),
     f"Unable to parse 'binary_data_output': {NON}boolean as boolean"),
    (_good(parameters={"priority": "x"}),
     f"Unable to parse 'priority': {NON}unsigned-integer as unsigned-integer"),
    (_good(parameters={"timeout": -1}),
     f"Unable to parse 'timeout': {NON}unsigned-integer as unsigned-integer"),
    (_good(parameters={"sequence_id": 1.5}), f"Unable to parse 'sequence_id': {NON}string as "
                                             "string"),
    (_good(parameters="x"), "failed to get request params.: attempt to get members for "
                            "non-object"),
]


@pytest.mark.parametrize("body,text", JSON_REASONS, ids=[t[:40] for _, t in JSON_REASONS])
def test_json_errors_name_tritonjsons_reason(srv, body, text):
    assert _post(srv, "/v2/models/add/infer", body) == (400, {"error": text})
