"""The sequence parameters on an ensemble's responses, as Triton's ensemble writes them:
``sequence_id``, ``sequence_start``, ``sequence_end`` on every answer with an output, the
request's unless a step's response overrode them (which its next step's request then
carries too). ``one`` answers from its only step's worker (the direct path); ``two``'s
answer goes through the scheduler (its outputs come from two steps)."""
from __future__ import annotations

import json
import queue

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient

from tests.server import Server

TAG_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils

OVERRIDES = {1: {"sequence_id": 55, "sequence_end": True}, 2: {"sequence_start": 1},
             3: {"sequence_id": "s9", "note": "kept out"}}


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("Y", x)], parameters=OVERRIDES.get(int(x[0]), {})))
        return out
'''

REPORT_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("R", np.array(
            [str(r.correlation_id()), str(r.flags())], dtype=object))]) for r in requests]
'''

GEN_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            sender = r.get_response_sender()
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x)]))
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x + 1)],
                                                   parameters={"sequence_end": True}))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''


def _python(name, io):
    return f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n{io}'


def _ensemble(name, io, steps):
    return f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: 0\n{io}' \
        f'ensemble_scheduling {{ step [ {", ".join(steps)} ] }}\n'


_X = 'input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
_Y = 'output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
_TAG = '{ model_name: "tag" model_version: -1 input_map { key: "X" value: "X" } ' \
       'output_map { key: "Y" value: "%s" } }'
_REPORT = '{ model_name: "report" model_version: -1 input_map { key: "X" value: "mid" } ' \
          'output_map { key: "R" value: "R" } }'
MODELS = {
    "tag": (_python("tag", _X + _Y), TAG_PY),
    "report": (_python("report", _X + 'output [ { name: "R" data_type: TYPE_STRING '
                       'dims: [ 2 ] } ]\n'), REPORT_PY),
    "gen": (_python("gen", _X + _Y + "model_transaction_policy { decoupled: true }\n"),
            GEN_PY),
    "one": (_ensemble("one", _X + _Y, [_TAG % "Y"]), None),
    "stream": (_ensemble("stream", _X + _Y + "model_transaction_policy { decoupled: true }\n",
                         ['{ model_name: "gen" model_version: -1 input_map { key: "X" value: "X" }'
                          ' output_map { key: "Y" value: "Y" } }']), None),
    "two": (_ensemble("two", _X + 'output [ { name: "R" data_type: TYPE_STRING dims: [ 2 ] } ]\n',
                      [_TAG % "mid", _REPORT]), None),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("ensparams") / "repo"
    for name, (config, code) in MODELS.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(config)
        if code:
            (repo / name / "1" / "model.py").write_text(code)
    srv = Server((repo,))
    yield srv
    srv.stop()


def _infer(server, model, x, **params):
    body = {"inputs": [{"name": "X", "datatype": "INT32", "shape": [1], "data": [x]}]}
    if params:
        body["parameters"] = params
    r = requests.post(f"http://{server.url}/v2/models/{model}/infer", data=json.dumps(body),
                      timeout=30)
    return r.status_code, r.json()


@pytest.mark.parametrize("model", ["one", "two"])
def test_an_ensemble_answer_carries_the_requests_sequence_parameters(server, model):
    assert _infer(server, model, 0)[1]["parameters"] == {
        "sequence_id": 0, "sequence_start": False, "sequence_end": False}
    assert _infer(server, model, 0, sequence_id=7, sequence_start=True)[1]["parameters"] == {
        "sequence_id": 7, "sequence_start": True, "sequence_end": False}
    assert _infer(server, model, 0, sequence_id="abc", sequence_end=True)[1]["parameters"] == {
        "sequence_id": "abc", "sequence_start": False, "sequence_end": True}


def test_a_single_model_answer_carries_none(server):
    assert "parameters" not in _infer(server, "tag", 0)[1]


@pytest.mark.parametrize("model", ["one", "two"])
def test_a_steps_response_overrides_them_and_only_the_sequence_keys_pass(server, model):
    code, body = _infer(server, model, 1, sequence_id=7, sequence_start=True)
    assert code == 200 and body["parameters"] == {
        "sequence_id": 55, "sequence_start": False, "sequence_end": True}
    code, body = _infer(server, model, 3, sequence_id=7, sequence_end=True)
    assert body["parameters"] == {"sequence_id": "s9", "sequence_start": False,
                                  "sequence_end": False}


def test_the_next_step_is_asked_with_the_override(server):
    out = {o["name"]: o["data"] for o in _infer(server, "two", 1, sequence_id=7)[1]["outputs"]}
    assert out["R"] == ["55", "2"]          # flags: SEQUENCE_END
    out = {o["name"]: o["data"] for o in _infer(server, "two", 0, sequence_id=7,
                                                sequence_start=True)[1]["outputs"]}
    assert out["R"] == ["7", "1"]           # no override: the request's own


@pytest.mark.parametrize("model", ["one", "two"])
def test_an_override_of_the_wrong_type_fails_the_request_with_tritons_text(server, model):
    code, body = _infer(server, model, 2)
    assert code == 400 and body["error"] == (
        "expect parameter 'sequence_start' to be TRITONSERVER_PARAMETER_BOOL")
    assert _infer(server, model, 0)[0] == 200      # the server keeps going


def test_grpc_answers_carry_them_too(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    x = grpcclient.InferInput("X", [1], "INT32")
    x.set_data_from_numpy(np.array([0], np.int32))
    params = client.infer("one", [x], sequence_id=9, sequence_end=True).get_response().parameters
    assert (params["sequence_id"].int64_param, params["sequence_start"].bool_param,
            params["sequence_end"].bool_param) == (9, False, True)


def test_a_decoupled_ensembles_responses_carry_them_each_with_its_own(server):
    got = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    x = grpcclient.InferInput("X", [1], "INT32")
    x.set_data_from_numpy(np.array([4], np.int32))
    client.async_stream_infer("stream", [x], sequence_id=7, sequence_start=True,
                              enable_empty_final_response=True)
    seen = []
    while True:
        result, error = got.get(timeout=30)
        assert error is None
        params = result.get_response().parameters
        seen.append({k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in params.items()})
        if params["triton_final_response"].bool_param:
            break
    client.stop_stream()
    assert seen == [
        {"sequence_id": 7, "sequence_start": True, "sequence_end": False,
         "triton_final_response": False},
        {"sequence_id": 7, "sequence_start": False, "sequence_end": True,
         "triton_final_response": False},
        {"triton_final_response": True}]
