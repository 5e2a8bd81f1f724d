"""The load API's answer depends on where Triton meets a model's problem (checked against
Triton 2.51 and core's newest model repository manager): a config that fails its checks
is met polling the repository (INTERNAL "failed to poll from model repository", the model
stays out of the index's states), a file the model needs is met loading it (INVALID_ARG
"load failed for model ...", the version UNAVAILABLE with the reason). Each message ends
with the newline Triton's load status puts after each model."""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

_IO = ('input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
       'output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] %s } ]\n')
MODELS = {
    "badcfg": 'backend: "python"\nmax_batch_size: 4\n' + _IO % ""
              + "dynamic_batching { preferred_batch_size: [ 8 ] }\n",
    "nolabels": 'backend: "python"\nmax_batch_size: 0\n' + _IO % 'label_filename: "nope.txt"',
    "optin": ('backend: "python"\nmax_batch_size: 0\n' + _IO % "" +
              'input [ { name: "C" data_type: TYPE_INT32 dims: [ 1 ] optional: true } ]\n'),
}
MODEL_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X")
            if x is None:       # "optin" asked with C alone
                c = pb_utils.get_input_tensor_by_name(r, "C")
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"no X; C is {c.as_numpy().tolist()}")))
                continue
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x.as_numpy())]))
        return out
'''

OK_CONFIG = 'backend: "python"\nmax_batch_size: 0\n' + _IO % ""
TWOFAIL_PY = '''
import time


class TritonPythonModel:
    def initialize(self, args):
        time.sleep(%s)
        raise RuntimeError("version %d is broken")
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("stages") / "repo"
    for name, config in MODELS.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(config)
        (repo / name / "1" / "model.py").write_text(MODEL_PY)
    for version, delay in ((1, 1.5), (2, 0)):       # version 2 fails first
        (repo / "twofail" / str(version)).mkdir(parents=True)
        (repo / "twofail" / str(version) / "model.py").write_text(TWOFAIL_PY % (delay, version))
    (repo / "twofail" / "config.pbtxt").write_text(
        OK_CONFIG + "version_policy { all {} }\n")
    srv = Server([repo], "--model-control-mode=explicit")
    srv.repo = repo
    yield srv, httpclient.InferenceServerClient(srv.url)
    srv.stop()


def _load_error(client, name):
    with pytest.raises(InferenceServerException) as exc:
        client.load_model(name)
    return exc.value.status(), exc.value.message()


def test_a_config_that_fails_its_checks_fails_polling(server):
    srv, client = server
    assert _load_error(client, "badcfg") == ("500", (
        "failed to load 'badcfg', failed to poll from model repository: dynamic batching "
        "preferred size must be <= max batch size for badcfg"))
    assert {"name": "badcfg"} in client.get_model_repository_index()    # no state
    assert client.is_server_ready()


def test_a_missing_label_file_fails_loading_with_tritons_text(server):
    srv, client = server
    path = srv.repo / "nolabels" / "nope.txt"
    assert _load_error(client, "nolabels") == ("400", (
        "load failed for model 'nolabels': version 1 is at UNAVAILABLE state: Internal: failed to "
        f"open text file for read {path}: No such file or directory;\n"))
    row = next(r for r in client.get_model_repository_index() if r["name"] == "nolabels")
    assert row["state"] == "UNAVAILABLE" and row["reason"].startswith("Internal: failed to open text")




def test_every_failed_version_is_in_the_load_status(server):
    """core's ModelLifeCycle::OnLoadComplete adds "version <v> is at UNAVAILABLE state:
    <reason>;" for each failed version as its load ends (no separator: each ends with
    ';'); LoadModelByDependency puts "load failed for model '<m>': " before and "\\n" after.
    The index keeps each version's own reason."""
    srv, client = server
    status, message = _load_error(client, "twofail")
    rows = {r["version"]: r for r in client.get_model_repository_index()
            if r["name"] == "twofail"}
    assert status == "400" and set(rows) == {"1", "2"}
    assert all(r["state"] == "UNAVAILABLE" for r in rows.values())
    assert "version 1 is broken" in rows["1"]["reason"]
    assert "version 2 is broken" in rows["2"]["reason"]
    assert message == (
        f"load failed for model 'twofail': version 2 is at UNAVAILABLE state: "
        f"{rows['2']['reason']};version 1 is at UNAVAILABLE state: {rows['1']['reason']};\n")
    with grpcclient.InferenceServerClient(srv.grpc_url) as grpc:    # loads it again
        with pytest.raises(InferenceServerException) as exc:
            grpc.load_model("twofail")
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert exc.value.message() == message


def _unparsable_repo(root):
    repo = root / "repo"
    for name, config in (("ok", OK_CONFIG), ("garbled", 'backend: "python"\nthis is { not\n')):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(config)
        (repo / name / "1" / "model.py").write_text(MODEL_PY)
    return repo


@pytest.mark.parametrize("args", [(), ("--model-control-mode=poll",),
                                  ("--model-control-mode=explicit", "--load-model=garbled",
                                   "--load-model=ok")])
def test_a_config_that_does_not_parse_at_start_is_a_poll_failure(tmp_path, args):
    """Triton 2.51 (an oracle run; core's PollModels at HEAD): a model directory whose
    config does not parse fails polling, which gives the model no state: a name-only
    index row, a strictly ready server, metadata "is not found", an error line "Poll
    failed for model directory ..."; a later load answers the poll failure."""
    srv = Server([_unparsable_repo(tmp_path)], "--strict-readiness=true", *args)
    try:
        client = httpclient.InferenceServerClient(srv.url)
        assert client.is_server_ready()
        index = client.get_model_repository_index()
        assert {"name": "garbled"} in index and {"name": "ok", "version": "1",
                                                 "state": "READY"} in index
        assert not client.is_model_ready("garbled")
        with pytest.raises(InferenceServerException) as exc:
            client.get_model_metadata("garbled")
        assert exc.value.message() == "Request for unknown model: 'garbled' is not found"
        if "--model-control-mode=explicit" in args:
            status, message = _load_error(client, "garbled")
            assert status == "500" and message.startswith(
                "failed to load 'garbled', failed to poll from model repository: failed to "
                "parse model configuration")
            assert {"name": "garbled"} in client.get_model_repository_index()
        assert "Poll failed for model directory 'garbled': failed to parse model " \
               "configuration" in srv.output()
    finally:
        srv.stop()


def test_a_config_that_does_not_parse_stops_the_start_under_exit_on_error(tmp_path):
    """Triton's default (--exit-on-error=true): the poll failure fails the start."""
    srv = Server([_unparsable_repo(tmp_path)], "--exit-on-error=true", wait_ready=False)
    try:
        assert srv.proc.wait(timeout=90) == 1
    finally:
        srv.kill()


def test_an_optional_input_in_a_required_ones_place_reaches_the_model(server):
    """Triton's input check (2.51 and core's ValidateRequestInputs at HEAD) counts the
    inputs only: C (optional) given where X (required) is missing is within the bounds, and
    the model meets the request without X."""
    srv, client = server
    client.load_model("optin")
    c = httpclient.InferInput("C", [1], "INT32")
    c.set_data_from_numpy(np.array([5], np.int32))
    with pytest.raises(InferenceServerException) as exc:
        client.infer("optin", [c])
    assert exc.value.message() == "no X; C is [5]"
    with pytest.raises(InferenceServerException) as exc:
        client.infer("optin", [])
    assert "expected number of inputs between 1 and 2 but got 0 inputs" in exc.value.message()
