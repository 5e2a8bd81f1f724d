"""How an ensemble request ends when its last step's outcome is not the plain one, on both
paths: ``gate_chain`` asked by a client (its last step answers directly) and the same
chain inside ``wrapped_gate`` (the scheduler asks it: the forwarded path).

``gate`` (add_sub's interface) answers through its response sender. On SUM[0] == -4 it
marks itself started and waits for a ``go`` file, ignoring cancellation; on -5 it
answers an error from a thread after ``execute`` returned (so its Executed reports no
failure).
"""
from __future__ import annotations

import queue
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.pipeline_repo import ADD_SUB_IN, PYTHON, _IO2, _step, ensemble, write_repo
from tests.server import Server

GATE_PY = '''
import pathlib, threading, time
import numpy as np
import triton_python_backend_utils as pb_utils

HERE = pathlib.Path(__file__).parent
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            a = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(r, "INPUT1").as_numpy()
            sender = r.get_response_sender()
            if a[0] == -5:
                threading.Thread(target=self.refuse, args=(sender,)).start()
                continue
            if a[0] == -6:           # leaves OUTPUT1 out
                sender.send(pb_utils.InferenceResponse([
                    pb_utils.Tensor("OUTPUT0", (a + b).astype(np.float32))]), flags=FINAL)
                continue
            if a[0] == -4:
                (HERE / "started").touch()
                end = time.monotonic() + 60
                while not (HERE / "go").exists() and time.monotonic() < end:
                    time.sleep(0.01)
            sender.send(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", (a + b).astype(np.float32)),
                pb_utils.Tensor("OUTPUT1", (a - b).astype(np.float32))]), flags=FINAL)
        return None

    def refuse(self, sender):
        time.sleep(0.2)          # after execute returned: the answer comes later
        sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError("gate refuses -5")),
                    flags=FINAL)
'''

GATE_CHAIN = ensemble("gate_chain", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "SUM", "OUTPUT1": "DIFF"}),
    _step("gate", {"INPUT0": "SUM", "INPUT1": "DIFF"}, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])
WRAPPED_GATE = ensemble("wrapped_gate", [
    _step("gate_chain", ADD_SUB_IN, {"OUT0": "OUT0", "OUT1": "OUT1"})])
# INPUT1 optional in the ensemble, required by add_sub; add_sub_opt's own INPUT1 is optional
_OPT_IO = ('input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
           '        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] optional: true } ]\n'
           'output [ { name: "OUT0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
           '         { name: "OUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
OPTIONAL_IN = ensemble("optional_in", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})], io=_OPT_IO)
OPT_ADD_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            a = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(r, "INPUT1")
            b = b.as_numpy() if b is not None else np.zeros_like(a)
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", (a + b).astype(np.float32)),
                pb_utils.Tensor("OUTPUT1", (a - b).astype(np.float32))]))
        return out
'''
_OPT_ADD_IO = ('input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
               '        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] optional: true } ]\n'
               'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
               '         { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
GATE_OPT = ensemble("gate_opt", [
    _step("gate", ADD_SUB_IN, {"OUTPUT0": "SUM", "OUTPUT1": "DIFF"}),
    _step("opt_add", {"INPUT0": "SUM", "INPUT1": "DIFF"}, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])
GATE_FIRST = ensemble("gate_first", [
    _step("gate", ADD_SUB_IN, {"OUTPUT0": "SUM", "OUTPUT1": "DIFF"}),
    _step("add_sub", {"INPUT0": "SUM", "INPUT1": "DIFF"}, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])
B = np.array([10, 20, 30, 40], np.float32)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = write_repo(tmp_path_factory.mktemp("outcomes"), with_invalid=False)
    (repo / "gate" / "1").mkdir(parents=True)
    (repo / "gate" / "1" / "model.py").write_text(GATE_PY)
    (repo / "gate" / "config.pbtxt").write_text(PYTHON.format(
        name="gate", io=_IO2.format(o0="OUTPUT0", o1="OUTPUT1"), count=1, extra=""))
    (repo / "opt_add" / "1").mkdir(parents=True)
    (repo / "opt_add" / "1" / "model.py").write_text(OPT_ADD_PY)
    (repo / "opt_add" / "config.pbtxt").write_text(PYTHON.format(
        name="opt_add", io=_OPT_ADD_IO, count=1, extra=""))
    for name, text in (("gate_chain", GATE_CHAIN), ("wrapped_gate", WRAPPED_GATE),
                       ("gate_first", GATE_FIRST), ("optional_in", OPTIONAL_IN),
                       ("gate_opt", GATE_OPT)):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(text)
    server = Server([repo])
    server.gate = repo / "gate" / "1"
    yield server
    server.stop()


def _inputs(first_sum: float):
    a = np.array([first_sum - B[0], 2, 3, 4], np.float32)    # add_sub's SUM[0] = first_sum
    ins = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("INPUT1", [4], "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(B)
    return ins


def _counts(http, model: str) -> tuple[int, int]:
    st = http.get_inference_statistics(model)["model_stats"][0]["inference_stats"]
    return st["success"]["count"], st["fail"]["count"]


def _wait(what, until, timeout=30.0):
    end = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < end, what
        time.sleep(0.02)


@pytest.mark.parametrize("model", ["gate_chain", "wrapped_gate"])
def test_a_cancel_while_the_last_step_runs_lets_its_success_stand_as_in_triton(srv, model):
    # Triton checks a cancel between steps (ensemble_scheduler.cc): with no step left to
    # start, the ensemble ends with what its running step answers and counts a success
    http = httpclient.InferenceServerClient(srv.url)
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)
    for name in ("started", "go"):
        (srv.gate / name).unlink(missing_ok=True)
    before = {m: _counts(http, m) for m in (model, "gate_chain", "gate")}
    results: queue.Queue = queue.Queue()
    call = grpc.async_infer(model, _inputs(-4), lambda result, error: results.put(error))
    _wait("the last step started", (srv.gate / "started").exists)
    call.cancel()                              # the gRPC client cancels the call
    error = results.get(timeout=30)
    assert error is not None and "CANCELLED" in str(error.status()).upper()
    (srv.gate / "go").touch()                  # the model ignored the cancel: it succeeds
    ok, failed = before[model]
    _wait("the request counted", lambda: sum(_counts(http, model)) == ok + failed + 1)
    assert _counts(http, model) == (ok + 1, failed)
    ok, failed = before["gate_chain"]          # wrapped_gate's step too
    assert _counts(http, "gate_chain") == (ok + 1, failed)
    assert _counts(http, "gate")[1] == before["gate"][1]
    result = grpc.infer(model, _inputs(1.0))   # the server goes on
    np.testing.assert_array_equal(result.as_numpy("OUT0")[1:], [4, 6, 8])


@pytest.mark.parametrize("model", ["gate_chain", "wrapped_gate"])
def test_a_senders_later_error_in_the_last_step_counts_a_failure(srv, model):
    http = httpclient.InferenceServerClient(srv.url)
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)
    ok, failed = _counts(http, model)
    with pytest.raises(InferenceServerException) as err:
        grpc.infer(model, _inputs(-5))
    prefix = "in ensemble 'wrapped_gate', " if model == "wrapped_gate" else ""
    assert err.value.message() == prefix + "in ensemble 'gate_chain', gate refuses -5"
    _wait("the request counted", lambda: sum(_counts(http, model)) == ok + failed + 1)
    assert _counts(http, model) == (ok, failed + 1)


def _gate_inputs(model: str):
    if model in ("gate_first", "gate_opt"):
        ins = _inputs(0.0)
        ins[0].set_data_from_numpy(np.array([-6, 2, 3, 4], np.float32))
        return ins
    return _inputs(-6.0)


@pytest.mark.parametrize("model", ["gate_chain", "wrapped_gate"])
def test_an_ensemble_output_a_step_left_out_is_omitted_from_the_answer(srv, model):
    # Triton (2.41+, checked on 2.51) puts a placeholder for every mapped output a step's
    # response lacks, so the ensemble still answers, without that output; last step or not,
    # direct answer or forwarded
    http = httpclient.InferenceServerClient(srv.url)
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)
    ok, failed = _counts(http, model)
    asked = [grpcclient.InferRequestedOutput("OUT0"), grpcclient.InferRequestedOutput("OUT1")]
    for outputs in (None, asked):
        result = grpc.infer(model, _gate_inputs(model), outputs=outputs)
        assert [o.name for o in result.get_response().outputs] == ["OUT0"]
        np.testing.assert_array_equal(result.as_numpy("OUT0")[1:], [4, 6, 8])    # 2 * INPUT0
    _wait("the requests counted", lambda: sum(_counts(http, model)) == ok + failed + 2)
    assert _counts(http, model) == (ok + 2, failed)
    np.testing.assert_array_equal(grpc.infer(model, _inputs(1.0)).as_numpy("OUT1")[1:],
                                  [40, 60, 80])    # the same model, nothing left out


def test_a_left_out_tensor_a_later_step_requires_fails_that_steps_input_check(srv):
    http = httpclient.InferenceServerClient(srv.url)
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)
    ok, failed = _counts(http, "gate_first")
    with pytest.raises(InferenceServerException) as err:
        grpc.infer("gate_first", _gate_inputs("gate_first"))
    assert err.value.message() == (
        "in ensemble 'gate_first', [request id: <id_unknown>] expected 2 inputs but got 1 "
        "inputs for model 'add_sub'. "
        "Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. "
        "Please provide all required input(s).")
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
    # one failure per request (Triton 2.51 counts this one twice on the ensemble)
    _wait("the request counted", lambda: sum(_counts(http, "gate_first")) == ok + failed + 1)
    assert _counts(http, "gate_first") == (ok, failed + 1)


def test_a_left_out_tensor_read_as_an_optional_input_runs_the_step_without_it(srv):
    # Triton's L0_optional_input optional_connecting_tensor: add_sub_opt runs with INPUT1
    # absent (it then subtracts nothing)
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)
    result = grpc.infer("gate_opt", _gate_inputs("gate_opt"))
    np.testing.assert_array_equal(result.as_numpy("OUT0"), [-6 + 10, 22, 33, 44])
    result = grpc.infer("gate_opt", _inputs(1.0))
    np.testing.assert_array_equal(result.as_numpy("OUT0")[1:], [22 + -18, 33 + -27, 44 + -36])


def test_an_optional_ensemble_input_left_out_that_a_step_requires_fails_that_step(srv):
    # Triton's step request fails its composing model's input check (InferenceRequest::
    # Normalize), named by the ensemble: the model never runs without the input
    http = httpclient.InferenceServerClient(srv.url)
    ok, failed = _counts(http, "add_sub")
    t = httpclient.InferInput("INPUT0", [4], "FP32")
    t.set_data_from_numpy(np.ones(4, np.float32))
    with pytest.raises(InferenceServerException) as err:
        http.infer("optional_in", [t])
    assert err.value.message() == (
        "in ensemble 'optional_in', [request id: <id_unknown>] expected 2 inputs but got 1 "
        "inputs for model 'add_sub'. "
        "Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. "
        "Please provide all required input(s).")
    assert err.value.status() == "400"
    assert _counts(http, "add_sub") == (ok, failed)    # add_sub never saw it
    both = [t, httpclient.InferInput("INPUT1", [4], "FP32")]
    both[1].set_data_from_numpy(np.ones(4, np.float32))
    np.testing.assert_array_equal(http.infer("optional_in", both).as_numpy("OUT0"), [2] * 4)
