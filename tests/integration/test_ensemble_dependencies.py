"""An ensemble that Triton's dependency graph refuses: a step names a model the repository
lacks ("contains models that are not available or ambiguous"), or maps a tensor from an
output its model does not have ("is mapped from non-existing output"). Checked against
Triton 2.51 and core's model_repository_manager.cc / ensemble_utils.cc: the load API
answers INVALID_ARG "load failed for model '<m>': <reason>\\n" (HTTP 400), the ensemble has
no version state (a name-only index row, no cost to readiness), the reason is logged as
"Invalid argument: <reason>", and loading the model it waits for loads it too."""
from __future__ import annotations

import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.pipeline_repo import IDENTITY_PY, PYTHON
from tests.server import Server

_IO = ('input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
       'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]')
MISSING = ("load failed for model 'ens': ensemble ens contains models that are not available "
           "or ambiguous: nosuch\n")
BAD_MAP = ("load failed for model 'ensbad': in ensemble ensbad, ensemble tensor OUT is mapped "
           "from non-existing output NOPE in model good\n")


def _ensemble(name: str, model: str, output: str) -> str:
    return (f'name: "{name}"\nplatform: "ensemble"\n{_IO}\nensemble_scheduling {{ step [ {{ '
            f'model_name: "{model}" model_version: -1 input_map {{ key: "IN" value: "IN" }} '
            f'output_map {{ key: "{output}" value: "OUT" }} }} ] }}\n')


def _add_python(repo, name: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(IDENTITY_PY)
    (repo / name / "config.pbtxt").write_text(
        PYTHON.format(name=name, io=_IO, count=1, extra=""))


def _repo(root):
    repo = root / "repo"
    _add_python(repo, "good")
    for name, model, output in (("ens", "nosuch", "OUT"), ("ensbad", "good", "NOPE")):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(_ensemble(name, model, output))
    return repo


def _rows(url: str) -> dict:
    return {r["name"]: r for r in requests.post(f"http://{url}/v2/repository/index",
                                                timeout=30).json()}


def _serves(url: str, model: str) -> bool:
    body = {"inputs": [{"name": "IN", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]}
    r = requests.post(f"http://{url}/v2/models/{model}/infer", json=body, timeout=30)
    return r.status_code == 200 and r.json()["outputs"][0]["data"] == [1, 2, 3, 4]


def _grpc_load_error(srv: Server, model: str) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        grpcclient.InferenceServerClient(srv.grpc_url).load_model(model)
    return info.value


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    repo = _repo(tmp_path_factory.mktemp("ensdeps"))
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=good")
    yield srv, repo
    srv.stop()


def _logged(srv: Server, reason: str) -> bool:
    """Whether Triton's log line of ``reason`` is in the log (its first line: the log
    escapes a reason's newlines)."""
    return "Invalid argument: " + reason.split("\n")[0] in srv.output()


def _refused(srv: Server, model: str, text: str) -> None:
    """Loading ``model`` over HTTP and gRPC answers ``text``; it keeps a name-only row and
    costs no readiness (a failed version of its step model does, as any failed model)."""
    r = requests.post(f"http://{srv.url}/v2/repository/models/{model}/load", timeout=60)
    assert (r.status_code, r.json()) == (400, {"error": text})
    err = _grpc_load_error(srv, model)
    assert (err.status(), err.message()) == ("StatusCode.INVALID_ARGUMENT", text)
    assert _rows(srv.url)[model] == {"name": model}
    grpc_rows = grpcclient.InferenceServerClient(srv.grpc_url).get_model_repository_index(
        as_json=True)["models"]
    assert {"name": model} in grpc_rows
    assert _rows(srv.url)["good"]["state"] == "READY" and _serves(srv.url, "good")
    client = httpclient.InferenceServerClient(srv.url)
    assert not client.is_model_ready(model)
    assert _logged(srv, text.split("': ", 1)[1])


@pytest.mark.parametrize("model, text", [("ens", MISSING), ("ensbad", BAD_MAP)])
def test_load_answers_invalid_arg_and_leaves_a_name_only_row(explicit, model, text):
    srv, _ = explicit
    _refused(srv, model, text)
    assert httpclient.InferenceServerClient(srv.url).is_server_ready()
    assert "Invalid argument: " + text.split("': ", 1)[1].rstrip("\n") in srv.output()


def test_loading_the_missing_model_loads_the_ensemble_waiting_for_it(explicit):
    srv, repo = explicit
    _add_python(repo, "nosuch")
    httpclient.InferenceServerClient(srv.url).load_model("nosuch")
    assert _rows(srv.url)["ens"]["state"] == "READY"      # Triton's graph rechecks it
    assert _serves(srv.url, "ens")
    grpcclient.InferenceServerClient(srv.grpc_url).load_model("ens")
    assert _serves(srv.url, "ens")


def test_loading_the_fixed_ensemble_serves(explicit):
    srv, repo = explicit
    (repo / "ensbad" / "config.pbtxt").write_text(_ensemble("ensbad", "good", "OUT"))
    httpclient.InferenceServerClient(srv.url).load_model("ensbad")
    assert _rows(srv.url)["ensbad"]["state"] == "READY"
    assert _serves(srv.url, "ensbad") and _serves(srv.url, "good")


def test_a_reload_that_is_refused_unloads_the_ensemble(explicit):
    srv, repo = explicit           # ensbad serves (the test before)
    (repo / "ensbad" / "config.pbtxt").write_text(_ensemble("ensbad", "good", "NOPE"))
    time.sleep(0.01)
    r = requests.post(f"http://{srv.url}/v2/repository/models/ensbad/load", timeout=60)
    assert (r.status_code, r.json()) == (400, {"error": BAD_MAP})
    row = _rows(srv.url)["ensbad"]     # Triton's graph unloads it: its lifecycle's row
    assert (row.get("state"), row.get("reason")) == ("UNAVAILABLE", "unloaded")
    assert _serves(srv.url, "good")


@pytest.mark.parametrize("mode", ["none", "poll"])
def test_at_startup_the_server_is_ready_without_them(tmp_path, mode):
    repo = _repo(tmp_path)
    srv = Server([repo], f"--model-control-mode={mode}", "--repository-poll-secs=1")
    try:
        rows = _rows(srv.url)
        assert rows["ens"] == {"name": "ens"} and rows["ensbad"] == {"name": "ensbad"}
        assert rows["good"]["state"] == "READY" and _serves(srv.url, "good")
        log = srv.output()
        assert "Invalid argument: " + MISSING.split("': ", 1)[1].rstrip("\n") in log
        assert "Invalid argument: " + BAD_MAP.split("': ", 1)[1].rstrip("\n") in log
        client = grpcclient.InferenceServerClient(srv.grpc_url)
        assert client.is_server_ready() and not client.is_model_ready("ens")
        if mode == "poll":        # the missing model appears: the ensemble loads with it
            _add_python(repo, "nosuch")
            end = time.monotonic() + 60
            while _rows(srv.url)["ens"].get("state") != "READY" and time.monotonic() < end:
                time.sleep(0.2)
            assert _serves(srv.url, "ens")
    finally:
        srv.stop()


def test_exit_on_error_stops_the_start(tmp_path):
    srv = Server([_repo(tmp_path)], "--exit-on-error=true", wait_ready=False)
    try:
        assert srv.proc.wait(90) == 1     # Triton: "failed to load all models"
    finally:
        srv.stop()


def test_a_nested_ensemble_names_the_refused_one(tmp_path):
    repo = _repo(tmp_path)
    (repo / "outer" / "1").mkdir(parents=True)
    (repo / "outer" / "config.pbtxt").write_text(_ensemble("outer", "ens", "OUT"))
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=good")
    try:
        r = requests.post(f"http://{srv.url}/v2/repository/models/outer/load", timeout=60)
        assert (r.status_code, r.json()) == (400, {"error": (
            "load failed for model 'outer': ensemble 'outer' depends on 'ens' which is not "
            "valid. Model 'ens' failed with error: " + MISSING.split("': ", 1)[1].rstrip("\n")
            + "\n")})
        assert _rows(srv.url)["outer"] == {"name": "outer"}
    finally:
        srv.stop()
