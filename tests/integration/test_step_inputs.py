"""Requests no frontend checked get Triton's input checks in the scheduler: ensemble steps
(a dynamic ensemble shape fed to a fixed-shape model) and BLS calls (wrong shape, datatype,
a missing or unknown input). Compared with the Triton 2.51 binary: the texts are its core's,
and python_backend puts "Model <m> - Error when running inference: " before a BLS call's
refusal (Triton lists the inputs it got in its map's order; tritond in the request's)."""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

ADD4 = '''name: "add4"
backend: "python"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
'''
ADD4_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0",
                pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
                + pb_utils.get_input_tensor_by_name(r, "INPUT1").as_numpy())])
                for r in requests]
'''
E_DYN = '''name: "e_dyn"
platform: "ensemble"
input [ { name: "A" data_type: TYPE_FP32 dims: [ -1 ] },
        { name: "B" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "C" data_type: TYPE_FP32 dims: [ -1 ] } ]
ensemble_scheduling { step [ { model_name: "add4" model_version: -1
  input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" }
  output_map { key: "OUTPUT0" value: "C" } } ] }
'''
CALLER = '''name: "caller"
backend: "python"
input [ { name: "MODE" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "MSG" data_type: TYPE_STRING dims: [ 1 ] } ]
'''
CALLER_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils

FOUR = np.ones(4, np.float32)
CALLS = [
    [("INPUT0", FOUR), ("INPUT1", np.ones(3, np.float32))],
    [("INPUT0", FOUR), ("INPUT1", np.ones(4, np.int32))],
    [("INPUT0", FOUR)],
    [("INPUT0", FOUR), ("INPUT1", FOUR), ("EXTRA", FOUR)],
    [("INPUT0", FOUR), ("INPUT1", FOUR)],
]


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            mode = int(pb_utils.get_input_tensor_by_name(r, "MODE").as_numpy()[0])
            ins = [pb_utils.Tensor(n, a) for n, a in CALLS[mode]]
            resp = pb_utils.InferenceRequest(model_name="add4", inputs=ins,
                                             requested_output_names=["OUTPUT0"]).exec()
            msg = (resp.error().message() if resp.has_error()
                   else "ok %s" % resp.output_tensors()[0].as_numpy().tolist())
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("MSG", np.array([msg.encode()], dtype=object))]))
        return out
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = tmp_path_factory.mktemp("step_inputs")
    for name, cfg, py in (("add4", ADD4, ADD4_PY), ("e_dyn", E_DYN, None),
                          ("caller", CALLER, CALLER_PY)):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(cfg)
        if py:
            (repo / name / "1" / "model.py").write_text(py)
    server = Server([repo])
    yield server
    server.stop()


def _ensemble(http, n: int):
    a = httpclient.InferInput("A", [n], "FP32")
    a.set_data_from_numpy(np.ones(n, np.float32))
    b = httpclient.InferInput("B", [4], "FP32")
    b.set_data_from_numpy(np.ones(4, np.float32))
    return http.infer("e_dyn", [a, b], request_id="r3")


def test_a_step_fed_the_wrong_shape_fails_its_models_input_check(srv):
    http = httpclient.InferenceServerClient(srv.url)
    np.testing.assert_array_equal(_ensemble(http, 4).as_numpy("C"), [2] * 4)
    with pytest.raises(InferenceServerException) as err:
        _ensemble(http, 3)             # add4 never runs on 3 elements
    assert err.value.message() == (
        "in ensemble 'e_dyn', [request id: r3] unexpected shape for input 'INPUT0' for model "
        "'add4'. Expected [4], got [3]. ")
    assert err.value.status() == "400"


@pytest.mark.parametrize("mode, tail", [
    (0, "[request id: <id_unknown>] unexpected shape for input 'INPUT1' for model 'add4'. "
        "Expected [4], got [3]. "),
    (1, "[request id: <id_unknown>] inference input 'INPUT1' data-type is 'INT32', but model "
        "'add4' expects 'FP32'"),
    (2, "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'add4'. "
        "Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. "
        "Please provide all required input(s)."),
    (3, "[request id: <id_unknown>] expected 2 inputs but got 3 inputs for model 'add4'. Got "
        "input(s) ['INPUT0','INPUT1','EXTRA'], but missing required input(s) []. Please "
        "provide all required input(s)."),
    (4, "ok [2.0, 2.0, 2.0, 2.0]"),
])
def test_a_bls_call_gets_its_callees_input_check(srv, mode, tail):
    http = httpclient.InferenceServerClient(srv.url)
    m = httpclient.InferInput("MODE", [1], "INT32")
    m.set_data_from_numpy(np.array([mode], np.int32))
    msg = http.infer("caller", [m]).as_numpy("MSG")[0].decode()
    if mode == 4:
        assert msg == tail
    else:
        assert msg == "Model add4 - Error when running inference: " + tail
