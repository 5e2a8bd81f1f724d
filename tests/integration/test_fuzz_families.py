"""Fuzz, second round: the request families ``test_fuzz`` does not reach.

One real tritond (explicit model control, client shm allowed) with an ensemble,
a BLS model, a sequence model, a decoupled model and identity models per dtype.
Every case is a fixed, seeded table (about 20 s in all on 2 cores); each answer
must be the protocol's error naming what was wrong (Triton's message where the
sources give one), never HTTP 500 / gRPC INTERNAL or UNKNOWN unless Triton
answers so, every tritond process alive after each test, nothing left in
/dev/shm, and inference still working.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import random
import shutil

import grpc
import numpy as np
import posix_ipc
import pytest
import tritonclient.http as httpclient

from tests.integration import decoupled_repo, pipeline_repo, seq_repo
from tests.server import REPO, Server
from tritond.protos import grpc_service_pb2 as pb

SEED = 8
HANG_S = 10.0
T = pb.ModelInferRequest.InferInputTensor
IDENTITY_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]
'''
DTYPES = ("BF16", "FP16", "FP32", "INT8", "UINT8", "INT64", "UINT64", "BOOL", "STRING")


def _write_repo(root):
    repo = root / "repo"
    for name, code, io, extra in (
            ("add_sub", pipeline_repo.ADD_SUB_PY, pipeline_repo._IO2.format(
                o0="OUTPUT0", o1="OUTPUT1"), ""),
            ("bls", pipeline_repo.BLS_PY, pipeline_repo._IO2.format(o0="OUTPUT0", o1="OUTPUT1"),
             'parameters { key: "mode" value { string_value: "sync" } }')):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(code)
        (repo / name / "config.pbtxt").write_text(
            pipeline_repo.PYTHON.format(name=name, io=io, count=1, extra=extra))
    (repo / "chain" / "1").mkdir(parents=True)
    (repo / "chain" / "config.pbtxt").write_text(pipeline_repo.CHAIN)
    seq_repo._model(repo, "seq_direct", f'''backend: "python"
max_batch_size: 4
sequence_batching {{
  direct {{ }}
  {seq_repo._controls("TYPE_UINT64")}
}}
{seq_repo.IO}''', seq_repo.ACCUMULATOR_PY)
    seq_repo._model(repo, "seq_str", f'''backend: "python"
max_batch_size: 1
sequence_batching {{ {seq_repo._controls("TYPE_STRING")} }}
{seq_repo.IO}''', seq_repo.ACCUMULATOR_PY)
    decoupled_repo.decoupled_repo(repo, names=["repeat_int32"])
    for dt in DTYPES:
        seq_repo._model(repo, f"id_{dt.lower()}", f'''backend: "python"
max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_{dt} dims: [ -1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_{dt} dims: [ -1 ] }} ]''', IDENTITY_PY)
    for name in ("simple", "identity_fp32"):
        shutil.copytree(REPO / name, repo / name)
    return repo


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = _write_repo(tmp_path_factory.mktemp("fuzz_families"))
    s = Server([repo], "--model-control-mode=explicit", "--load-model=*",
               "--allow-client-shm=true", timeout=240)
    s.pids = set(s.children())
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def alive(srv):
    start = len(srv.output())
    yield
    assert srv.proc.poll() is None, srv.output()
    assert set(srv.children()) == srv.pids, "a tritond process died or was replaced"
    c = httpclient.InferenceServerClient(srv.url)
    try:
        assert c.get_system_shared_memory_status() == []
        x = np.arange(8, dtype=np.float32)
        inp = httpclient.InferInput("INPUT0", [8], "FP32")
        inp.set_data_from_numpy(x)
        assert np.array_equal(c.infer("identity_fp32", [inp]).as_numpy("OUTPUT0"), x)
    finally:
        c.close()
    for pid in srv.pids | {srv.proc.pid}:       # no process still maps a client region
        with open(f"/proc/{pid}/maps") as maps:
            assert "/dev/shm/fuzz8-" not in maps.read(), pid
    assert "Traceback" not in srv.output()[start:]


def _http(srv, method: str, path: str, body=None) -> tuple[int, dict | bytes]:
    """One request on a fresh connection: (status, JSON body or raw bytes). Fails on a hang."""
    host, port = srv.url.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=HANG_S)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
    except TimeoutError:
        pytest.fail(f"no answer in {HANG_S}s to {method} {path} {str(body)[:200]}")
    finally:
        c.close()
    try:
        return r.status, json.loads(data) if data else {}
    except ValueError:
        return r.status, data


def _expect(srv, method: str, path: str, body, status: int, words: str = "") -> dict:
    got, doc = _http(srv, method, path, body)
    assert got == status, (path, str(body)[:200], got, doc)
    if words:
        assert isinstance(doc, dict) and words in doc.get("error", ""), (path, body, doc)
    return doc


def _grpc_call(srv, method: str, request):
    with grpc.insecure_channel(srv.grpc_url) as channel:
        call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}",
                                   request_serializer=lambda m: m.SerializeToString())
        try:
            call(request, timeout=HANG_S)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def _stream(srv, requests) -> list:
    with grpc.insecure_channel(srv.grpc_url) as channel:
        stream = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.ModelStreamInferResponse.FromString)
        return list(stream(iter(requests), timeout=HANG_S))


# ------------------------------------------------------------------ gRPC streams


def _simple(rid: str) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(
        model_name="simple", id=rid,
        inputs=[T(name=f"INPUT{i}", datatype="INT32", shape=[1, 16]) for i in (0, 1)],
        raw_input_contents=[bytes(64), bytes(64)])


def _seq(rid: str, **params) -> pb.ModelInferRequest:
    r = pb.ModelInferRequest(model_name="seq_direct", id=rid, raw_input_contents=[bytes(4)],
                             inputs=[T(name="INPUT", datatype="INT32", shape=[1, 1])])
    for key, (kind, value) in params.items():
        setattr(r.parameters[key], kind, value)
    return r


def _stream_cases():
    """(request, the words its error must contain); '' = must succeed."""
    r = _simple("short")
    r.raw_input_contents[0] = bytes(60)
    yield r, "input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60"
    r = _simple("long")
    r.raw_input_contents[1] = bytes(65)
    yield r, "input byte size mismatch for input 'INPUT1' for model 'simple'. Expected 64, got 65"
    r = _simple("few")
    del r.raw_input_contents[1]
    yield r, "unable to find data for input tensor 'INPUT1' for model 'simple'"
    r = _simple("contents")
    del r.raw_input_contents[:]
    r.inputs[0].contents.int_contents.extend([1] * 15)
    r.inputs[1].contents.int_contents.extend([1] * 16)
    yield r, "input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60"
    r = _simple("wrongkind")
    del r.raw_input_contents[:]
    r.inputs[0].contents.fp32_contents.extend([1.0] * 16)
    r.inputs[1].contents.int_contents.extend([1] * 16)
    yield r, "unexpected explicit tensor data for input tensor 'INPUT0'"
    r = _simple("both")
    r.inputs[0].contents.int_contents.extend([1] * 16)
    yield r, "contents field must not be specified when using raw_input_contents for 'INPUT0'"
    r = _simple("ghost")
    r.model_name = "ghost"
    yield r, "Request for unknown model: 'ghost' is not found"
    for key, kind, value, expected in (
            ("priority", "string_param", "high", "int64_param or uint64_param"),
            ("timeout", "bool_param", True, "int64_param"),
            ("sequence_id", "double_param", 1.5, "int64_param or string_param"),
            ("sequence_start", "int64_param", 1, "bool_param"),
            ("triton_x", "bool_param", True, "triton_enable_empty_final_response")):
        r = _simple(f"param-{key}")
        setattr(r.parameters[key], kind, value)
        yield r, f"'{key}'" if key != "triton_x" else expected
    yield _seq("no-id", sequence_start=("bool_param", True)), \
        "inference request to model 'seq_direct' must specify a non-zero or non-empty correlation ID"
    yield _seq("no-start", sequence_id=("int64_param", 4242)), \
        "must specify the START flag on the first request of the sequence"
    yield _seq("long-id", sequence_id=("string_param", "x" * 200),
               sequence_start=("bool_param", True)), "cannot be longer than 128 characters"


def test_stream_errors_keep_the_stream(srv):
    """Each malformed message gets its error on the stream, in its own response (the
    request id says which), and a valid request after every one of them is answered."""
    cases = list(_stream_cases())
    requests = []
    for i, (bad, _) in enumerate(cases):
        requests += [bad, _simple(f"good-{i}")]
    replies = _stream(srv, requests)
    assert len(replies) == len(requests)
    by_id = {r.infer_response.id: r for r in replies}
    for i, (bad, words) in enumerate(cases):
        assert words in by_id[bad.id].error_message, (bad.id, by_id[bad.id].error_message)
        good = by_id[f"good-{i}"]
        assert not good.error_message and len(good.infer_response.raw_output_contents) == 2


def _repeat(rid: str, values, dtype: str = "INT32") -> pb.ModelInferRequest:
    n = len(values)
    return pb.ModelInferRequest(
        model_name="repeat_int32", id=rid,
        inputs=[T(name="IN", datatype=dtype, shape=[n]), T(name="DELAY", datatype="UINT32", shape=[n]),
                T(name="WAIT", datatype="UINT32", shape=[1])],
        raw_input_contents=[np.array(values, np.int32).tobytes(), bytes(4 * n), bytes(4)])


def test_decoupled_stream_errors_keep_the_stream(srv):
    rng = random.Random(SEED)
    cases = []
    r = _repeat("short", [1, 2])
    r.raw_input_contents[0] = bytes(7)
    cases.append((r, "input byte size mismatch for input 'IN' for model 'repeat_int32'"))
    cases.append((_repeat("dtype", [1, 2], "FP32"),
                  "inference input 'IN' data-type is 'FP32', but model 'repeat_int32' expects"))
    r = _repeat("p-final", [1])
    r.parameters["triton_enable_empty_final_response"].string_param = "yes"
    cases.append((r, "'triton_enable_empty_final_response' parameter, expected bool_param"))
    r = _repeat("p-end", [1])
    r.parameters["sequence_end"].int64_param = 1
    cases.append((r, "'sequence_end' parameter, expected bool_param"))
    r = _repeat("dims", [1])
    r.inputs[0].shape[:] = [-1]
    cases.append((r, "All input dimensions should be specified for input 'IN'"))
    r = _repeat("ghost", [1])
    r.model_name = "ghost"
    cases.append((r, "Request for unknown model: 'ghost' is not found"))
    requests, counts = [], {}
    for i, (bad, _) in enumerate(cases):
        n = rng.randrange(1, 4)
        counts[f"good-{i}"] = n
        requests += [bad, _repeat(f"good-{i}", list(range(n)))]
    replies = _stream(srv, requests)
    errors = {r.infer_response.id: r.error_message for r in replies if r.error_message}
    for bad, words in cases:
        assert words in errors.get(bad.id, ""), (bad.id, errors)
    for rid, n in counts.items():
        assert sum(1 for r in replies if r.infer_response.id == rid and not r.error_message) == n


# ------------------------------------------------------------------ pipelines and sequences


def _fp32(name: str, values, dtype: str = "FP32") -> dict:
    return {"name": name, "shape": [len(values)], "datatype": dtype, "data": values}


def test_pipeline_wrong_inputs_http(srv):
    ok = _fp32("INPUT1", [1.0, 2.0, 3.0, 4.0])
    path = "/v2/models/chain/infer"
    _expect(srv, "POST", path, {"inputs": [_fp32("INPUT0", [1, 2, 3, 4], "INT32"), ok]}, 400,
            "inference input 'INPUT0' data-type is 'INT32', but model 'chain' expects 'FP32'")
    _expect(srv, "POST", path, {"inputs": [_fp32("INPUT0", [1.0] * 5), ok]}, 400,
            "unexpected shape for input 'INPUT0' for model 'chain'. Expected [4], got [5]")
    _expect(srv, "POST", path, {"inputs": [ok]}, 400,
            "missing required input(s) ['INPUT0']")
    _expect(srv, "POST", path, {"inputs": [_fp32("INPUT0", [1.0] * 4), ok],
                                "outputs": [{"name": "SUM"}]}, 400,
            "unexpected inference output 'SUM' for model 'chain'")
    # A step's own error, named with its ensemble; its code (INVALID_ARG) kept.
    _expect(srv, "POST", path, {"inputs": [_fp32("INPUT0", [-1.0, 2, 3, 4]), ok]}, 400,
            "in ensemble 'chain', add_sub refuses -1")
    # A BLS model answers its callee's error as its own TritonError (INTERNAL by default,
    # as python_backend's): the message names the missing model.
    _expect(srv, "POST", "/v2/models/bls/infer",
            {"inputs": [_fp32("INPUT0", [1.0] * 4), ok], "parameters": {"target": "ghost"}},
            500, "BLS call failed: Model ghost - Error when running inference: Failed for "
                 "execute the inference request. Model 'ghost' is not ready.")
    _expect(srv, "POST", "/v2/models/bls/infer",
            {"inputs": [_fp32("INPUT0", [1.0] * 4), _fp32("INPUT1", [1] * 4, "INT32")]}, 400,
            "inference input 'INPUT1' data-type is 'INT32', but model 'bls' expects 'FP32'")


def test_pipeline_wrong_inputs_grpc(srv):
    def chain(dt1="FP32", n0=4):
        return pb.ModelInferRequest(
            model_name="chain", inputs=[T(name="INPUT0", datatype="FP32", shape=[n0]),
                                        T(name="INPUT1", datatype=dt1, shape=[4])],
            raw_input_contents=[bytes(4 * n0), bytes(16)])
    code, details = _grpc_call(srv, "ModelInfer", chain(dt1="INT32"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "model 'chain' expects 'FP32'" in details
    code, details = _grpc_call(srv, "ModelInfer", chain(n0=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Expected [4], got [5]" in details
    bad = chain()
    bad.raw_input_contents[0] = np.array([-1, 0, 0, 0], np.float32).tobytes()
    code, details = _grpc_call(srv, "ModelInfer", bad)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert details == "in ensemble 'chain', add_sub refuses -1"


SEQ_ID_ERRORS = [(-5, "Unable to parse 'sequence_id'"), (1.5, "Unable to parse 'sequence_id'"),
                 (2.0, "Unable to parse 'sequence_id'"), (2 ** 64, "Unable to parse 'sequence_id'"),
                 (True, "Unable to parse 'sequence_id'"), ([1], "Unable to parse 'sequence_id'"),
                 (None, "Unable to parse 'sequence_id'"), ({}, "Unable to parse 'sequence_id'"),
                 (0, "must specify a non-zero or non-empty correlation ID"),
                 # "" is a string id (Triton's HTTP frontend sets it as one), and Triton's
                 # Normalize checks its type against the CORRID control before the batcher
                 # looks at its value
                 ("", "sequence batching control 'CORRID' data-type is 'BYTES', but model "
                      "'seq_direct' expects 'UINT64'")]


@pytest.mark.parametrize("seq_id,words", SEQ_ID_ERRORS)
def test_sequence_id_wrong_http(srv, seq_id, words):
    body = {"inputs": [{"name": "INPUT", "shape": [1, 1], "datatype": "INT32", "data": [1]}],
            "parameters": {"sequence_id": seq_id, "sequence_start": True, "sequence_end": True}}
    _expect(srv, "POST", "/v2/models/seq_direct/infer", body, 400, words)


def test_sequence_controls_wrong_http(srv):
    base = {"inputs": [{"name": "INPUT", "shape": [1, 1], "datatype": "INT32", "data": [1]}]}
    path = "/v2/models/seq_direct/infer"
    _expect(srv, "POST", path, {**base, "parameters": {"sequence_id": "x" * 129,
                                                       "sequence_start": True}},
            501, "string correlation ID cannot be longer than 128 characters")
    for key, value in (("sequence_start", "true"), ("sequence_start", 1),
                       ("sequence_end", None), ("priority", -1), ("timeout", 1.5)):
        _expect(srv, "POST", path, {**base, "parameters": {"sequence_id": 77, key: value}}, 400,
                f"Unable to parse '{key}'")
    _expect(srv, "POST", path, {**base, "parameters": {"sequence_id": 78}}, 400,
            "inference request for sequence 78 to model 'seq_direct' must specify the START flag")
    _expect(srv, "POST", "/v2/models/chain/infer", {
        "inputs": [_fp32("INPUT0", [1.0] * 4), _fp32("INPUT1", [1.0] * 4)],
        "parameters": {"sequence_id": 1.5}}, 400, "Unable to parse 'sequence_id'")


def test_sequence_id_type_must_suit_corrid(srv):
    """Triton's ValidateCorrelationId: a string id for an integer CORRID control, or an
    integer id for a string one, is INVALID_ARG naming the control. A string id reached
    a UINT64 CORRID as 0 (or as its digits); an integer one a STRING CORRID as digits."""
    one = [{"name": "INPUT", "shape": [1, 1], "datatype": "INT32", "data": [1]}]
    flags = {"sequence_start": True, "sequence_end": True}
    for model, seq_id, got, want in (("seq_direct", "abc", "BYTES", "UINT64"),
                                     ("seq_direct", "12", "BYTES", "UINT64"),
                                     ("seq_str", 12, "UINT64", "BYTES")):
        _expect(srv, "POST", f"/v2/models/{model}/infer",
                {"inputs": one, "parameters": {"sequence_id": seq_id, **flags}}, 400,
                f"sequence batching control 'CORRID' data-type is '{got}', but model "
                f"'{model}' expects '{want}'")
    r = _seq("str-id", sequence_id=("string_param", "abc"), sequence_start=("bool_param", True),
             sequence_end=("bool_param", True))
    code, details = _grpc_call(srv, "ModelInfer", r)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert "data-type is 'BYTES', but model 'seq_direct' expects 'UINT64'" in details
    doc = _expect(srv, "POST", "/v2/models/seq_str/infer",       # the right kinds still work
                  {"inputs": one, "parameters": {"sequence_id": "12", **flags}}, 200)
    assert doc["outputs"][0]["data"] == [13]


def test_grpc_sequence_id_is_uint64(srv):
    """Triton's gRPC frontend hands an int64 ``sequence_id`` to SetCorrelationId(uint64):
    -5 is sequence 2**64 - 5 (how a C++ client sends an id of 2**63 or more). It was
    refused with HTTP's "Unable to parse 'sequence_id'"."""
    def step(value, start):
        r = _seq(f"s{value}", sequence_id=("int64_param", -5))
        r.raw_input_contents[0] = np.array([value], np.int32).tobytes()
        if start:
            r.parameters["sequence_start"].bool_param = True
        return r
    replies = _stream(srv, [step(1, True), step(2, False)])
    assert [r.error_message for r in replies] == ["", ""], replies
    assert [np.frombuffer(r.infer_response.raw_output_contents[0], np.int32)[0]
            for r in replies] == [1, 3]
    doc = _expect(srv, "POST", "/v2/models/seq_direct/infer", {   # the same sequence
        "inputs": [{"name": "INPUT", "shape": [1, 1], "datatype": "INT32", "data": [4]}],
        "parameters": {"sequence_id": 2 ** 64 - 5}}, 200)
    assert doc["outputs"][0]["data"] == [7]      # (left to end at its idle timeout)


def test_request_parameters_beyond_64_bits_http(srv):
    """priority / timeout must fit uint64 (Triton: MemberAsUInt, "Unable to parse"); a
    custom integer beyond int64 is a double parameter there. Neither may reach the
    process channels as an int msgpack cannot carry: that was a 500, or no answer at
    all when the request went out batched."""
    body = {"inputs": [_fp32("INPUT0", [1.0, 2.0])]}
    for key in ("priority", "timeout"):
        for value in (2 ** 64, 2 ** 70):
            _expect(srv, "POST", "/v2/models/identity_fp32/infer",
                    {**body, "parameters": {key: value}}, 400, f"Unable to parse '{key}'")
    _expect(srv, "POST", "/v2/models/seq_direct/infer", {
        "inputs": [{"name": "INPUT", "shape": [1, 1], "datatype": "INT32", "data": [1]}],
        "parameters": {"priority": 2 ** 64}}, 400, "Unable to parse 'priority'")
    for value in (2 ** 64, -(2 ** 64), 2 ** 63):
        doc = _expect(srv, "POST", "/v2/models/identity_fp32/infer",
                      {**body, "parameters": {"custom": value}}, 200)
        assert doc["outputs"][0]["data"] == [1.0, 2.0]
    _expect(srv, "POST", "/v2/models/identity_fp32/infer",
            {**body, "parameters": {"custom": [1]}}, 400,
            "parameter 'custom' has invalid type. It should be either 'int', 'bool', or 'string'.")


# ------------------------------------------------------------------ control endpoints


def test_model_control_bad_bodies(srv):
    load = "/v2/repository/models/{}/load"
    config = json.dumps({"backend": "python"})
    b64 = base64.b64encode(b"x = 1\n").decode()
    _expect(srv, "POST", load.format("ghost"), None, 500,
            "failed to load 'ghost', failed to poll from model repository")
    _expect(srv, "POST", load.format("add_sub"), b"{not json", 400, "JSON is malformed")
    _expect(srv, "POST", load.format("add_sub"), {"parameters": []}, 400,
            "attempt to get members for non-object")        # TritonJson's (Triton: 500)
    _expect(srv, "POST", load.format("add_sub"), {"parameters": {"config": "{bad"}}, 500,
            "Invalid config override: failed to parse model configuration JSON")
    _expect(srv, "POST", load.format("add_sub"), {"parameters": {"config": "[1, 2]"}}, 500,
            "model configuration JSON must be an object")
    _expect(srv, "POST", load.format("add_sub"),
            {"parameters": {"config": json.dumps({"max_batch_size": "lots"})}}, 500,
            "max_batch_size")
    _expect(srv, "POST", load.format("add_sub"),
            {"parameters": {"config": json.dumps({"no_such_field": 1})}}, 500, "no_such_field")
    for path in ("../../evil.py", "1/../../evil.py", "/etc/evil"):
        _expect(srv, "POST", load.format("newmodel"),
                {"parameters": {"config": config, f"file:{path}": b64}}, 500,
                f"Invalid file parameter 'file:{path}'")
    _expect(srv, "POST", load.format("newmodel"),
            {"parameters": {"config": config, "file:1/model.py": "!!not base64!!"}}, 400,
            "failed to decode base64 value of 'file:1/model.py'")
    _expect(srv, "POST", load.format("newmodel"), {"parameters": {"file:1/model.py": b64}}, 500,
            "Load parameter 'config' must be specified for model file override")
    _expect(srv, "POST", load.format(".."), None, 400, "path traversal")
    _expect(srv, "POST", "/v2/repository/models/ghost/unload", None, 200)
    for body in ({"ready": "yes"}, {"ready": 1}, {"ready": None}):     # Triton's text
        _expect(srv, "POST", "/v2/repository/index", body, 400,
                "Invalid value for 'ready': expected a boolean")
    _expect(srv, "POST", "/v2/repository/index", [], 200)     # Triton finds no 'ready' in it
    _expect(srv, "POST", "/v2/repository/index", b"{bad", 400, "JSON is malformed")
    # the model the bad overrides named is untouched
    assert _http(srv, "GET", "/v2/models/add_sub/ready")[0] == 200


def _states(srv) -> dict:
    return {m["name"]: m["state"] for m in _http(srv, "POST", "/v2/repository/index", {})[1]}


@pytest.mark.parametrize("flag", ["false", "yes", 1, None])
def test_unload_dependents_must_be_a_bool_http(srv, flag):
    """Triton reads ``unload_dependents`` with AsBool: anything but a JSON bool leaves it
    false (its parse error is overwritten by the unload's answer: 200). It was Python
    truthiness: the string "false" unloaded the ensembles using the model, which then
    stayed unloaded when the model came back."""
    _expect(srv, "POST", "/v2/repository/models/add_sub/unload",
            {"parameters": {"unload_dependents": flag}}, 200)
    assert _states(srv)["add_sub"] == "UNAVAILABLE"
    _expect(srv, "POST", "/v2/repository/models/add_sub/load", None, 200)
    srv.pids = set(srv.children())               # add_sub's worker was replaced, on purpose
    states = _states(srv)
    assert (states["add_sub"], states["chain"]) == ("READY", "READY"), states


def test_log_settings_beyond_64_bits(srv):
    """log_verbose_level must be a uint64 (Triton's AsUInt). 2**64 was a 500 and stayed
    stored, so every later log update answered 500 too. The answers are Triton's
    (triton_json's INTERNAL errors for a value of the wrong JSON type)."""
    for value in (-1, 1.5, "1", 2 ** 64):
        _expect(srv, "POST", "/v2/logging", {"log_verbose_level": value}, 500,
                "attempt to access JSON non-unsigned-integer as unsigned-integer")
    doc = _expect(srv, "POST", "/v2/logging", {"log_info": True}, 200)
    assert doc["log_verbose_level"] == 0
    _expect(srv, "POST", "/v2/logging", {"log_info": "yes"}, 500,
            "attempt to access JSON non-boolean as boolean")
    _expect(srv, "POST", "/v2/logging", {"log_format": "xml"}, 503,
            "invalid argument for --log_format, got: xml")
    _expect(srv, "POST", "/v2/logging", {"log_file": "/tmp/x"}, 501,
            "log file location can not be updated through network protocol")


def test_log_settings_null_is_no_change_http(srv):
    """Triton's HTTP logging endpoint skips a null setting (``if (!IsNull())``), as
    tritonclient sends a settings dict it was given; they were 400 (503 for log_format)."""
    before = _http(srv, "GET", "/v2/logging")[1]
    doc = _expect(srv, "POST", "/v2/logging", {"log_info": None, "log_warning": None,
                                               "log_error": None, "log_verbose_level": None,
                                               "log_format": None, "log_file": None}, 200)
    assert doc == before
    doc = _expect(srv, "POST", "/v2/logging", {"log_info": None, "log_verbose_level": 1}, 200)
    assert doc == {**before, "log_verbose_level": 1}
    _expect(srv, "POST", "/v2/logging", {"log_verbose_level": before["log_verbose_level"]}, 200)


@pytest.mark.parametrize("key", ["trace_rate", "trace_count", "log_frequency"])
def test_trace_settings_out_of_range(srv, key):
    """Triton parses these with std::stoi: beyond int32 is "value is out of range"
    (qa/L0_trace sends "10000000000" and expects a failure); this accepted it."""
    before = _http(srv, "GET", "/v2/trace/setting")[1]
    for value in ("10000000000", str(2 ** 64)):
        _expect(srv, "POST", "/v2/trace/setting", {key: value}, 400,
                f"Unable to parse '{key}', value is out of range")
        _expect(srv, "POST", "/v2/models/simple/trace/setting", {key: value}, 400,
                f"Unable to parse '{key}', value is out of range")
        request = pb.TraceSettingRequest()
        request.settings[key].value.append(value)
        code, details = _grpc_call(srv, "TraceSetting", request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert "value is out of range" in details
    request = pb.TraceSettingRequest()
    request.settings[key].value.extend(["1", "2"])
    code, details = _grpc_call(srv, "TraceSetting", request)
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT,
                               f"expect only 1 value for '{key}'")
    _expect(srv, "POST", "/v2/trace/setting", {key: "abc"}, 400, "got: abc")
    _expect(srv, "POST", "/v2/trace/setting", {key: 5}, 500,      # Triton's AsString
            "attempt to access JSON non-string as string")
    assert _http(srv, "GET", "/v2/trace/setting")[1] == before


# ------------------------------------------------------------------ shared memory


def test_shm_registration_bad_bodies(srv):
    key = f"/fuzz8-{os.getpid()}"
    seg = posix_ipc.SharedMemory(key, posix_ipc.O_CREX, size=4096)
    reg = "/v2/systemsharedmemory/region/{}/register"
    try:
        for body, words in (({"key": key, "offset": -1, "byte_size": 64}, "'offset'"),
                            ({"key": key, "offset": 0, "byte_size": -64}, "'byte_size'"),
                            ({"key": key, "offset": "0", "byte_size": 64}, "'offset'"),
                            ({"key": key, "offset": 1.5, "byte_size": 64}, "'offset'"),
                            ({"key": key, "offset": 2 ** 64, "byte_size": 64}, "'r'"),
                            ({"key": key, "offset": 0, "byte_size": 2 ** 64}, "'r'"),
                            ({"key": key, "offset": 4000, "byte_size": 200}, "'r'"),
                            ({"key": 5, "byte_size": 64}, "'key'"),
                            ({"byte_size": 64}, "'key'"),
                            ([1], "Shared memory register request has no 'key' field")):
            _expect(srv, "POST", reg.format("r"), body, 400, words)
        _expect(srv, "POST", reg.format("r"), {"key": key, "byte_size": 64}, 200)
        _expect(srv, "POST", reg.format("r"), {"key": key, "byte_size": 64}, 400,
                "shared memory region 'r' already in manager")
        # overlapping regions of one segment, odd names: all fine, as in Triton
        _expect(srv, "POST", reg.format("s"), {"key": key, "offset": 32, "byte_size": 64}, 200)
        _expect(srv, "POST", reg.format("%E2%98%83%20x"), {"key": key, "byte_size": 8}, 200)
        names = {r["name"] for r in _http(srv, "GET", "/v2/systemsharedmemory/status")[1]}
        assert names == {"r", "s", "%E2%98%83%20x"}     # as sent: Triton does not unescape
        _expect(srv, "POST", "/v2/systemsharedmemory/region/ghost/unregister", None, 200)
        _expect(srv, "POST", "/v2/systemsharedmemory/unregister", None, 200)
        # CUDA: a raw_handle that is not {"b64": ...} is a client error, not a 500
        cuda = "/v2/cudasharedmemory/region/c/register"
        for handle in ("x", 5, [1], {"b64": 5}):
            _expect(srv, "POST", cuda, {"raw_handle": handle, "device_id": 0, "byte_size": 64},
                    400, "'raw_handle'")
        _expect(srv, "POST", cuda, {"raw_handle": {"b64": "!!"}, "device_id": 0,
                                    "byte_size": 64}, 400, "'raw_handle'")
    finally:
        seg.close_fd()
        seg.unlink()


def test_shm_unregister_all_while_in_use(srv):
    """Unregister-all while requests read and write a region: each request answers (its
    output or a client error naming the region), the regions go, nothing is left."""
    key = f"/fuzz8-live-{os.getpid()}"
    seg = posix_ipc.SharedMemory(key, posix_ipc.O_CREX, size=8192)
    x = np.arange(1024, dtype=np.float32)
    os.pwrite(seg.fd, x.tobytes(), 0)
    c = httpclient.InferenceServerClient(srv.url, concurrency=8)
    try:
        c.register_system_shared_memory("in", key, 4096)
        c.register_system_shared_memory("out", key, 4096, 4096)
        inp = httpclient.InferInput("INPUT0", [1024], "FP32")
        inp.set_shared_memory("in", 4096)
        out = httpclient.InferRequestedOutput("OUTPUT0")
        out.set_shared_memory("out", 4096)
        pending = [c.async_infer("identity_fp32", [inp], outputs=[out]) for _ in range(24)]
        c.unregister_system_shared_memory()
        outcomes = []
        for p in pending:
            try:
                p.get_result()
                outcomes.append(200)
            except httpclient.InferenceServerException as exc:
                assert int(exc.status()) == 400, (exc.status(), exc.message())
                assert "'in'" in exc.message() or "'out'" in exc.message(), exc.message()
                outcomes.append(400)
        assert len(outcomes) == 24
        assert c.get_system_shared_memory_status() == []
    finally:
        c.close()
        seg.close_fd()
        seg.unlink()


# ------------------------------------------------------------------ JSON edge values


_NUM = "Unable to parse 'data': expected a number"
JSON_CASES = [
    # (model dtype, JSON data text, shape, status, words)
    # Triton's parser takes NaN and infinities (rapidjson kParseNanAndInfFlag, L0_nan_inf)
    ("FP32", "[NaN]", [1], 200, ""),
    ("FP32", "[Infinity]", [1], 200, ""),
    ("FP32", "[-Infinity]", [1], 200, ""),
    ("FP32", "[NaNa]", [1], 400, "JSON is malformed"),
    ("FP32", "[1e400]", [1], 400, "Number out of range"),
    ("FP32", "[-0.0]", [1], 200, ""),
    ("FP32", '["1.5"]', [1], 400, _NUM),
    ("FP32", "[true]", [1], 400, _NUM),
    ("FP32", "[null]", [1], 400, _NUM),
    ("FP32", "[[1,2],[3]]", [2, 2], 400, "Failed to parse 'data' field: shape does not match "
                                         "true shape"),
    ("FP32", "[[]]", [1], 400, "Failed to parse 'data' field: shape does not match true shape"),
    ("FP32", "{}", [1], 400, "Unable to parse 'data'"),
    ("FP32", "[[[1]],[[2]]]", [2], 200, ""),           # Triton flattens any nesting
    ("FP16", "[-0.0]", [1], 400, "receiving FP16 data via JSON is not supported"),
    ("FP16", "[70000]", [1], 400, "receiving FP16 data via JSON is not supported"),
    ("BF16", "[1.5]", [1], 400, "receiving BF16 data via JSON is not supported"),
    ("INT8", "[128]", [1], 400, "out of bounds for int8"),
    ("INT8", "[-129]", [1], 400, "out of bounds for int8"),
    ("INT8", "[1.0]", [1], 400, "expected an integer, got 1.0"),
    ("UINT8", "[-1]", [1], 400, "out of bounds for uint8"),
    ("UINT8", "[256]", [1], 400, "out of bounds for uint8"),
    ("INT64", "[9223372036854775808]", [1], 400, "Unable to parse 'data'"),
    ("INT64", '["5"]', [1], 400, "expected an integer, got '5'"),
    ("UINT64", "[18446744073709551615]", [1], 200, ""),
    ("UINT64", "[18446744073709551616]", [1], 400, "Unable to parse 'data'"),
    ("UINT64", "[-1]", [1], 400, "out of bounds for uint64"),
    ("BOOL", "[1]", [1], 400, "expected a boolean, got 1"),
    ("BOOL", '["true"]', [1], 400, "expected a boolean, got 'true'"),
    ("BOOL", "[null]", [1], 400, "expected a boolean, got None"),
    ("BOOL", "[[true]]", [1], 200, ""),
    ("STRING", "[1]", [1], 400, "Unable to parse JSON bytes array: attempt to access JSON"),
    ("STRING", "[null]", [1], 400, "Unable to parse JSON bytes array: attempt to access JSON"),
    ("STRING", '["a","b"]', [1], 400, "Shape does not match true shape of 'data' field"),
    ("STRING", '"ab"', [1], 400, "Unable to parse 'data'"),
    ("STRING", '["\\u0000"]', [1], 200, ""),
]


@pytest.mark.parametrize("dtype,data,shape,status,words", JSON_CASES)
def test_json_edge_values(srv, dtype, data, shape, status, words):
    wire = "BYTES" if dtype == "STRING" else dtype
    body = ('{"inputs":[{"name":"IN","shape":%s,"datatype":"%s","data":%s}]}'
            % (json.dumps(shape), wire, data))
    doc = _expect(srv, "POST", f"/v2/models/id_{dtype.lower()}/infer", body, status, words)
    if status == 200:
        sent = json.loads(data)
        flat = np.array(sent, dtype=object).reshape(-1).tolist() if sent else []
        def same(values):            # NaN == NaN for this comparison
            return ["NaN" if x != x else x for x in values]
        assert same(doc["outputs"][0]["data"]) == same(flat)


GENERATE_CASES = [
    # (model, the generate body, status, words)
    ("id_fp32", {"IN": [1.0, 2]}, 200, ""),
    ("id_fp32", {"IN": [True]}, 400, "expected a number, got True"),
    ("id_fp32", {"IN": None}, 400, "expected a number, got None"),
    ("id_fp32", {"IN": ["1.5"]}, 400, "expected a number, got '1.5'"),
    ("id_fp32", {"IN": [[1.0], [2.0, 3.0]]}, 400, "Shape does not match true shape"),
    ("id_string", {"IN": ["a", "b"]}, 200, ""),
    ("id_string", {"IN": [1.0, 2.0]}, 400, "Unable to parse JSON bytes array: attempt to"),
    ("id_string", {"IN": {"a": 1}}, 400, "Unable to parse JSON bytes array: attempt to"),
    ("id_string", {"IN": None}, 400, "Unable to parse JSON bytes array: attempt to"),
    ("id_bool", {"IN": [1]}, 400, "expected a boolean, got 1"),
    ("id_int8", {"IN": [128]}, 400, "out of bounds for int8"),
    ("id_int64", {"IN": [1.5]}, 400, "expected an integer, got 1.5"),
    ("id_fp16", {"IN": [1.0]}, 400, "receiving FP16 data via JSON is not supported"),
]


_ROW = json.dumps(list(range(16)))


@pytest.mark.parametrize("model,body,status,words", [
    # QA L0_http generate_endpoint_test test_invalid_input_types: TritonJson's words.
    ("id_string", '{"IN": 123}', 400, "attempt to access JSON non-string as string"),
    ("id_bool", '{"IN": "false"}', 400, "attempt to access JSON non-boolean as boolean"),
    ("id_int8", '{"IN": 1.5}', 400, "non-signed-integer as signed-integer"),
    ("id_uint8", '{"IN": -1.5}', 400, "non-unsigned-integer as unsigned-integer"),
    ("id_fp32", '{"IN": "x"}', 400, "attempt to access JSON non-number as double"),
    # test_duplicate_inputs: a key written twice that names an input, the first repeat.
    ("id_fp32", '{"IN": [1.0], "IN": [2.0]}', 400, "input 'IN' already exists in request"),
    ("simple", '{"INPUT0": %s, "INPUT1": %s, "INPUT1": %s, "INPUT0": %s}' % ((_ROW,) * 4), 400,
     "input 'INPUT1' already exists in request"),
    ("id_fp32", '{"k": 1, "k": 2, "IN": [1.0]}', 200, ""),      # a repeated parameter
])
def test_generate_names_tritonjson_reasons_and_repeated_inputs(srv, model, body, status, words):
    _expect(srv, "POST", f"/v2/models/{model}/generate", body, status, words)


@pytest.mark.parametrize("model,body,status,words", GENERATE_CASES)
def test_generate_values_follow_json_data_rules(srv, model, body, status, words):
    """Triton's generate reads each input with ReadDataFromJson, infer's JSON rules: a
    number for a BYTES input, a bool for FP32, null are errors. They were converted
    (str(1.0), 1.0 for true, NaN for null) and the model ran on them."""
    doc = _expect(srv, "POST", f"/v2/models/{model}/generate", body, status, words)
    if status == 200:
        want = body["IN"]
        assert doc["OUT"] == (want[0] if len(want) == 1 else want)
