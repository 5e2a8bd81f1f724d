"""Triton core's ``[request id: <id>] `` in front of the errors it gives a request it holds
(``InferenceRequest::LogRequest``): the client's id (HTTP ``id``, gRPC ``id``) or
``<id_unknown>``; through an ensemble, after ``in ensemble '<name>', `` with the
ensemble request's id (its step request carries it). The model's own name checks
(model.cc, "unexpected inference input") and the frontends' parse errors have none.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.pipeline_repo import ADD_SUB_IN, _step, ensemble, write_repo
from tests.server import Server

# INPUT1 optional in the ensemble, required by add_sub
_OPT_IO = ('input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
           '        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] optional: true } ]\n'
           'output [ { name: "OUT0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
           '         { name: "OUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
E_OPTIN = ensemble("e_optin", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})], io=_OPT_IO)
MISSING = ("expected 2 inputs but got 1 inputs for model 'add_sub'. Got input(s) ['INPUT0'], "
           "but missing required input(s) ['INPUT1']. Please provide all required input(s).")
IDS = [("", "<id_unknown>"), ("r9", "r9")]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = write_repo(tmp_path_factory.mktemp("reqid"), with_invalid=False)
    (repo / "e_optin" / "1").mkdir(parents=True)
    (repo / "e_optin" / "config.pbtxt").write_text(E_OPTIN)
    server = Server([repo])
    yield server
    server.stop()


def _call(srv, protocol: str, model: str, inputs: list,
          request_id: str) -> InferenceServerException:
    """The error of ``model`` asked with ``inputs`` [(name, datatype, array)]."""
    lib = httpclient if protocol == "http" else grpcclient
    client = (lib.InferenceServerClient(srv.url) if protocol == "http"
              else lib.InferenceServerClient(srv.grpc_url))
    ins = []
    for name, datatype, arr in inputs:
        t = lib.InferInput(name, list(arr.shape), datatype)
        t.set_data_from_numpy(arr)
        ins.append(t)
    with pytest.raises(InferenceServerException) as err:
        client.infer(model, ins, request_id=request_id)
    return err.value


def _status(protocol: str) -> str:
    return "400" if protocol == "http" else "StatusCode.INVALID_ARGUMENT"


ONE = [("INPUT0", "FP32", np.ones(4, np.float32))]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("request_id,shown", IDS)
def test_a_direct_request_missing_an_input_names_its_id(srv, protocol, request_id, shown):
    err = _call(srv, protocol, "add_sub", ONE, request_id)
    assert err.message() == f"[request id: {shown}] {MISSING}"
    assert err.status() == _status(protocol)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("request_id,shown", IDS)
def test_an_ensemble_step_missing_an_input_names_the_ensembles_id(srv, protocol, request_id,
                                                                   shown):
    err = _call(srv, protocol, "e_optin", ONE, request_id)
    assert err.message() == f"in ensemble 'e_optin', [request id: {shown}] {MISSING}"
    assert err.status() == _status(protocol)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("request_id,shown", IDS)
def test_the_cores_input_checks_name_the_id(srv, protocol, request_id, shown):
    four = np.ones(4, np.float32)
    err = _call(srv, protocol, "add_sub",
                [("INPUT0", "INT32", four.astype(np.int32)), ("INPUT1", "FP32", four)], request_id)
    assert err.message() == (f"[request id: {shown}] inference input 'INPUT0' data-type is "
                             "'INT32', but model 'add_sub' expects 'FP32'")
    err = _call(srv, protocol, "add_sub",
                [("INPUT0", "FP32", np.ones(3, np.float32)), ("INPUT1", "FP32", four)],
                request_id)
    assert err.message() == (f"[request id: {shown}] unexpected shape for input 'INPUT0' for "
                             "model 'add_sub'. Expected [4], got [3]. ")
    assert err.status() == _status(protocol)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_models_own_name_check_has_no_id(srv, protocol):
    # model.cc's "unexpected inference input" is not the request's: no prefix in Triton
    err = _call(srv, protocol, "add_sub", ONE + [("NOPE", "FP32", np.ones(4, np.float32))], "r9")
    assert err.message() == "unexpected inference input 'NOPE' for model 'add_sub'"


def test_a_json_parse_error_has_no_id(srv):
    # Triton's HTTP frontend fails the body before a request exists
    req = urllib.request.Request(f"http://{srv.url}/v2/models/add_sub/infer",
                                 data=b'{"id": "r9", ', method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
    assert "[request id" not in json.loads(err.value.read())["error"]
