"""Answers checked against the real Triton 2.51 binary (differential probes, session 11):
python_backend's ``TritonError`` and ``parameters`` argument checks, and HTTP edge cases
(methods, trailing slashes, ``Inference-Header-Content-Length`` values, empty bodies).

Each case is a request whose answer tritond gave differently from tritonserver 2.51 on
the same repository (the newest Triton sources agree unless a case says otherwise); the
expected text is Triton's.
"""
from __future__ import annotations

import json
import socket

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.integration.test_triton_parity2 import ADD_PY, IO   # the same add_sub model
from tests.server import Server

# CASE (a string input) picks what the model does; its answer is one string.
CASES_PY = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


def _x():
    return [pb_utils.Tensor("CASE", np.array([b"ok"], dtype=object))]


def _call(**kw):
    try:
        pb_utils.InferenceRequest(model_name="cases", inputs=_x(),
                                  requested_output_names=["OUT"], **kw)
        return "built"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


class TritonPythonModel:
    def execute(self, requests):
        E = pb_utils.TritonError
        out = []
        for r in requests:
            case = pb_utils.get_input_tensor_by_name(r, "CASE").as_numpy().flatten()[0].decode()
            text, error = case, None
            if case == "int_code":
                error = E("int code", 3)
            elif case == "big_code":
                error = E("big", 99)
            elif case == "none_code":
                error = E("none code", None)
            elif case == "int_message":
                error = E(5)
            elif case == "code_type":
                text = type(E("m", E.UNAVAILABLE).code()).__name__
            elif case == "bytes_message":
                e = E(b"bytes")
                text = "%s %s" % (e.message(), e.code())
            elif case == "request_params":
                text = json.dumps([_call(parameters=p) for p in
                                   ({"a": 1.5}, {1: 1}, {"a": None}, '{"a": 1}', 5)])
            elif case == "response_params":
                rows = []
                for p in ({"a": [1]}, {2: "x"}, "{}", {"s": "x", "i": -3, "b": False}):
                    try:
                        rows.append(pb_utils.InferenceResponse([], parameters=p).parameters())
                    except Exception as e:
                        rows.append("%s: %s" % (type(e).__name__, e))
                text = json.dumps(rows)
            t = pb_utils.Tensor("OUT", np.array([text.encode()], dtype=object))
            out.append(pb_utils.InferenceResponse([t], error=error))
        return out
'''
# Decoupled: one answer, then a final response that failed.
ANSWER_THEN_FAIL_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        E = pb_utils.TritonError
        for r in requests:
            s = r.get_response_sender()
            s.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.array([1], np.int32))]))
            s.send(pb_utils.InferenceResponse(error=E("not here", E.NOT_FOUND)),
                   flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''
DEC_CFG = '''backend: "python"
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]
model_transaction_policy { decoupled: true }
'''
CASES_CFG = '''backend: "python"
input [ { name: "CASE" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_STRING dims: [ 1 ] } ]
'''
ADD_BODY = json.dumps({"inputs": [
    {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
    {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]}]}).encode()
SIGNATURE = ("TypeError: __init__(): incompatible constructor arguments. The following "
             "argument types are supported:\n    1. c_python_backend_utils.TritonError("
             "message: str, code: c_python_backend_utils.TritonError.__ErrorCode = "
             "<__ErrorCode.INTERNAL: 1>)\n\nInvoked with: ")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity3")
    for name, cfg, code in (("add", f'backend: "python"\n{IO}', ADD_PY),
                            ("spare", f'backend: "python"\n{IO}', ADD_PY),
                            ("cases", CASES_CFG, CASES_PY),
                            ("dec", DEC_CFG, ANSWER_THEN_FAIL_PY)):
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(cfg)
        (root / name / "1" / "model.py").write_text(code)
    server = Server([root], "--model-control-mode=explicit", "--load-model=*")
    server.root = root
    yield server
    server.stop()


def _exchange(srv, method: str, path: str, body: bytes = b"", headers=(),
              length: bool = True, content_type: bool = False) -> tuple:
    """(status, body) of one HTTP/1.1 exchange on a socket of its own (headers as sent);
    (status, content types, body) with ``content_type``."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += "".join(h + "\r\n" for h in headers)
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    host, port = srv.url.split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    head, _, answer = rest.partition(b"\r\n\r\n")
    if content_type:
        types = [line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-type:")]
        return int(status_line.split()[1]), types, answer
    return int(status_line.split()[1]), answer


def _case(srv, case: str) -> tuple[int, str]:
    """(status, the answer's text or error) of the ``cases`` model for ``case``."""
    body = json.dumps({"inputs": [{"name": "CASE", "datatype": "BYTES", "shape": [1],
                                   "data": [case]}]}).encode()
    status, answer = _exchange(srv, "POST", "/v2/models/cases/infer", body)
    doc = json.loads(answer)
    return status, doc["error"] if status != 200 else doc["outputs"][0]["data"][0]


def _model_error(text: str) -> str:
    """The exception line python_backend writes for a failed ``execute``."""
    return text.split("message: ", 1)[1].split("\n\nAt:", 1)[0]


# ------------------------------------------------------------------ pb_utils.TritonError


@pytest.mark.parametrize("case, invoked", [
    ("int_code", "'int code', 3"), ("big_code", "'big', 99"),
    ("none_code", "'none code', None"), ("int_message", "5")])
def test_triton_error_takes_only_its_own_codes_and_a_string(srv, case, invoked):
    # tritond took any int (a code past CANCELLED failed the frontend: 500 "ValueError")
    # and any message (an int one left the request unanswered); pybind11 refuses both.
    status, text = _case(srv, case)
    assert status == 500
    assert _model_error(text) == SIGNATURE + invoked
    assert _case(srv, "ok") == (200, "ok")


def test_triton_error_code_and_message_forms(srv):
    assert _case(srv, "code_type") == (200, "__ErrorCode")
    assert _case(srv, "bytes_message") == (200, "bytes __ErrorCode.INTERNAL")


# ------------------------------------------------------------------ parameters arguments


def test_request_parameters_refused_in_python_backends_words(srv):
    # tritond wrote its own texts and read a JSON string as the dict
    status, text = _case(srv, "request_params")
    assert status == 200
    assert json.loads(text) == [
        "TritonModelException: Expect parameters values to have type bool/int/str, "
        "found type <class 'float'>",
        "TritonModelException: Expect parameters keys to have type str, found type "
        "<class 'int'>",
        "TritonModelException: Expect parameters values to have type bool/int/str, "
        "found type <class 'NoneType'>",
        "TritonModelException: Expect N8pybind114dictE, got <class 'str'>",
        "TritonModelException: Expect N8pybind114dictE, got <class 'int'>"]


def test_response_parameters_refused_in_python_backends_words(srv):
    # Triton 2.51's InferenceResponse takes no parameters; the newest checks them so
    status, text = _case(srv, "response_params")
    assert status == 200
    rows = json.loads(text)
    assert rows[:3] == [
        "TritonModelException: Expect parameters values to have type bool/int/str, "
        "found type <class 'list'>",
        "TritonModelException: Expect parameters keys to have type str, found type "
        "<class 'int'>",
        "TritonModelException: Expect N8pybind114dictE, got <class 'str'>"]
    assert json.loads(rows[3]) == {"s": "x", "i": -3, "b": False}


# ------------------------------------------------------------------ HTTP edges


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/models/add", "/v2/models/add/ready",
                                  "/v2/models/add/infer"])
def test_head_is_not_allowed(srv, path):
    # Starlette answered HEAD on every GET route (200); Triton routes HEAD to no handler
    assert _exchange(srv, "HEAD", path)[0] == 405


@pytest.mark.parametrize("path", ["/v2/health/live/", "/v2/models/add/",
                                  "/v2/models/add/versions/1/", "/v2/models/add/stats/"])
def test_a_trailing_slash_is_an_unknown_route(srv, path):
    # tritond redirected (307) to the path without the slash
    assert _exchange(srv, "GET", path) == (404, b'{"error":"Not Found"}')


RAW_TWO_INPUTS = ("[request id: <id_unknown>] Raw request must only have 1 input (found 1) "
                  "to be deduced but got 2 inputs in 'add' model configuration")


@pytest.mark.parametrize("headers, body, text", [
    # no header and no body: the header length is the body's, 0: a raw request
    ((), b"", RAW_TWO_INPUTS),
    # std::stoi reads the leading number: " 5" is 5, "1.5" is 1 (then a bad JSON header)
    (("Inference-Header-Content-Length: 1.5",), ADD_BODY, "failed to parse the request "
     "JSON buffer: "),
    (("Inference-Header-Content-Length:  5",), ADD_BODY, "failed to parse the request "
     "JSON buffer: "),
    (("Inference-Header-Content-Length: -0",), ADD_BODY, RAW_TWO_INPUTS),
    (("Inference-Header-Content-Length: x5",), ADD_BODY, "Unable to parse "
     "Inference-Header-Content-Length, got: x5"),
])
def test_inference_header_length_read_as_stoi(srv, headers, body, text):
    status, answer = _exchange(srv, "POST", "/v2/models/add/infer", body, headers)
    assert status == 400
    assert json.loads(answer)["error"].startswith(text)


# ------------------------------------------------------------------ statistics versions


@pytest.mark.parametrize("version, text", [
    ("abc", "failed to get model version from specified version string 'abc' (details: "
            "stol), version should be an integral value > 0"),
    ("-1", "invalid model version specified '-1' , version should be an integral value > 0")])
def test_statistics_of_every_model_still_read_the_version(srv, version, text):
    # tritond passed over the version when no model was named (OK, every model's)
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    with pytest.raises(InferenceServerException) as e:
        client.get_inference_statistics("", version)
    assert (e.value.status(), e.value.message()) == ("StatusCode.INVALID_ARGUMENT", text)


@pytest.mark.parametrize("version", ["01", " 1", "1.0"])
def test_statistics_version_read_as_stol(srv, version):
    # std::stol reads the leading number; tritond compared the text to "1" (not available)
    stats = grpcclient.InferenceServerClient(srv.grpc_url).get_inference_statistics(
        "add", version, as_json=True)
    assert [(s["name"], s["version"]) for s in stats["model_stats"]] == [("add", "1")]


@pytest.mark.parametrize("method, path, headers, status", [
    ("POST", "/v2/models/nope/infer", (), 404),
    ("POST", "/v2/models/add/versions/7/infer", (), 404),
    ("POST", "/v2/models/add/versions/99999999999999999999/infer", (), 400),
    ("POST", "/v2/models/add/infer", ("Content-Encoding: br",), 501),
    ("POST", "/v2/models/add/infer", ("Inference-Header-Content-Length: 999",), 400),
    ("GET", "/v2/models/add/infer", (), 405),
])
def test_infer_errors_before_the_request_is_built_are_plain_text(srv, method, path, headers,
                                                                    status):
    # Triton's infer handler sets application/json only once it has built the request
    got = _exchange(srv, method, path, ADD_BODY if method == "POST" else b"", headers,
                    content_type=True)
    assert got[:2] == (status, ["text/plain"])
    assert set(json.loads(got[2])) == {"error"}


def test_infer_errors_after_the_request_is_built_stay_json(srv):
    got = _exchange(srv, "POST", "/v2/models/add/infer", b"{bad", content_type=True)
    assert got[:2] == (400, ["application/json"])


# ------------------------------------------------------------------ control bodies


def test_load_and_unload_answers_are_typed_json(srv):
    for action in ("unload", "load"):
        got = _exchange(srv, "POST", f"/v2/repository/models/spare/{action}", b"{}",
                        content_type=True)
        assert got == (200, ["application/json"], b"")


@pytest.mark.parametrize("action, body, status", [
    # Triton finds parameters only in an object body; an unload looks no further
    ("load", b'"x"', 200), ("load", b"[]", 200),
    ("unload", b'{"parameters": "x"}', 200), ("load", b'{"parameters": "x"}', 400)])
def test_control_bodies_without_an_object_of_parameters(srv, action, body, status):
    got = _exchange(srv, "POST", f"/v2/repository/models/spare/{action}", body)
    assert got[0] == status
    if status == 400:      # TritonJson's text (Triton answers it 500)
        assert json.loads(got[1]) == {"error": "attempt to get members for non-object"}
    _exchange(srv, "POST", "/v2/repository/models/spare/load", b"{}")


@pytest.mark.parametrize("path", ["/v2/logging", "/v2/trace/setting"])
def test_settings_bodies_other_than_an_object_change_nothing(srv, path):
    # Triton looks each setting up in an object only; tritond refused the body (400)
    before = _exchange(srv, "GET", path)
    assert _exchange(srv, "POST", path, b"[]") == before
    assert before[0] == 200


def test_repository_index_passes_over_a_repository_name(srv):
    # only load and unload refuse one (tritond refused it here too: 501)
    status, body = _exchange(srv, "POST", "/v2/repository/elsewhere/index", b"{}")
    assert status == 200
    assert {row["name"] for row in json.loads(body)} == {"add", "cases", "dec", "spare"}


# ------------------------------------------------------------------ generate


def test_generate_counts_a_failed_second_response(srv):
    # tritond answered the failure (404 "not here"); Triton counts it as a second response
    status, body = _exchange(srv, "POST", "/v2/models/dec/generate", b'{"X": [0]}')
    assert (status, json.loads(body)) == (200, {"error": (
        "generate expects model to produce exactly 1 response, use generate stream for "
        "model that generates various number of responses")})
