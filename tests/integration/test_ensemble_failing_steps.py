"""An ensemble whose composing model is in the repository but fails: its config does not
parse (Triton's poll fails: the model is no node of the dependency graph) or its version
fails to load. As core's model_repository_manager.cc: the first refuses the ensemble in
ConnectDependencyGraph ("ensemble <e> contains models that are not available or
ambiguous: <m>"), the second in CheckNode ("ensemble '<e>' depends on '<m>' which has no
loaded version. Model '<m>' loading failed with error: <m's load status>"); loading the
ensemble answers INVALID_ARG "load failed for model '<e>': <reason>\\n" (HTTP 400), the
ensemble has a name-only index row, and the other models keep serving. Once the
composing model is fixed, loading it (or an ensemble using it) makes the ensemble READY."""
from __future__ import annotations

import time

import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.integration.pipeline_repo import IDENTITY_PY, PYTHON
from tests.integration.test_ensemble_dependencies import (
    _IO, _add_python, _ensemble, _logged, _refused, _rows, _serves)
from tests.server import Server

RAISING_PY = '''
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("badload refuses to start")

    def execute(self, requests):
        return []
'''
NOT_AVAILABLE = "ensemble ensp contains models that are not available or ambiguous: badcfg"


def _no_loaded_version(reason: str) -> str:
    return ("ensemble 'ensl' depends on 'badload' which has no loaded version. Model 'badload' "
            f"loading failed with error: version 1 is at UNAVAILABLE state: {reason};")


def _break_config(repo) -> None:
    (repo / "badcfg" / "config.pbtxt").write_text('name: "badcfg"\nbackend: "python"\n{{{\n')


def _repo(root):
    repo = root / "repo"
    for name in ("good", "badcfg", "badload"):
        _add_python(repo, name)
    _break_config(repo)
    (repo / "badload" / "1" / "model.py").write_text(RAISING_PY)
    for name, model in (("ensp", "badcfg"), ("ensp2", "badcfg"), ("ensl", "badload")):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(_ensemble(name, model, "OUT"))
    return repo


def _fix(repo) -> None:
    time.sleep(0.01)           # a new mtime
    (repo / "badcfg" / "config.pbtxt").write_text(
        PYTHON.format(name="badcfg", io=_IO, count=1, extra=""))
    (repo / "badload" / "1" / "model.py").write_text(IDENTITY_PY)


def _badload_reason(url: str) -> str:
    row = _rows(url)["badload"]
    assert row["state"] == "UNAVAILABLE" and "badload refuses to start" in row["reason"]
    return row["reason"]


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    repo = _repo(tmp_path_factory.mktemp("ensfail"))
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=good")
    yield srv, repo
    srv.stop()


def test_a_step_model_whose_config_does_not_parse(explicit):
    srv, _ = explicit
    _refused(srv, "ensp", f"load failed for model 'ensp': {NOT_AVAILABLE}\n")
    assert _rows(srv.url)["badcfg"] == {"name": "badcfg"}
    assert httpclient.InferenceServerClient(srv.url).is_server_ready()
    assert "Poll failed for model directory 'badcfg'" in srv.output()


def test_a_step_model_that_fails_to_load(explicit):
    srv, _ = explicit
    r = requests.post(f"http://{srv.url}/v2/repository/models/ensl/load", timeout=60)
    reason = _badload_reason(srv.url)
    assert (r.status_code, r.json()) == (400, {"error": (
        f"load failed for model 'ensl': {_no_loaded_version(reason)}\n")})
    _refused(srv, "ensl", f"load failed for model 'ensl': {_no_loaded_version(reason)}\n")


def test_once_fixed_loading_them_makes_the_ensembles_ready(explicit):
    srv, repo = explicit
    _fix(repo)
    # badcfg loads as ensp2's step: ensp, refused for it, is loaded too (Triton's graph)
    grpcclient.InferenceServerClient(srv.grpc_url).load_model("ensp2")
    rows = _rows(srv.url)
    assert rows["ensp2"]["state"] == "READY" and rows["ensp"]["state"] == "READY"
    assert _serves(srv.url, "ensp") and _serves(srv.url, "ensp2")
    httpclient.InferenceServerClient(srv.url).load_model("badload")
    assert _rows(srv.url)["ensl"]["state"] == "READY"
    assert _serves(srv.url, "ensl") and _serves(srv.url, "good")


@pytest.mark.parametrize("mode", ["none", "poll", "explicit"])
def test_at_startup_the_others_serve_without_them(tmp_path, mode):
    repo = _repo(tmp_path)
    loads = ["--load-model=good", "--load-model=ensp", "--load-model=ensl"]
    # (badload's failed version makes a strictly ready server not ready, as any model's)
    srv = Server([repo], f"--model-control-mode={mode}", "--repository-poll-secs=1",
                 "--strict-readiness=false", *(loads if mode == "explicit" else ()))
    try:
        rows = _rows(srv.url)
        assert rows["ensp"] == {"name": "ensp"} and rows["ensl"] == {"name": "ensl"}
        assert rows["badcfg"] == {"name": "badcfg"}
        assert rows["good"]["state"] == "READY" and _serves(srv.url, "good")
        assert _logged(srv, NOT_AVAILABLE)
        assert _logged(srv, _no_loaded_version(_badload_reason(srv.url)))
        client = grpcclient.InferenceServerClient(srv.grpc_url)
        assert not client.is_model_ready("ensl") and not client.is_model_ready("ensp")
        if mode == "none":      # mode none never looks at the repository again
            return
        _fix(repo)
        if mode == "explicit":
            client.load_model("badcfg")
            client.load_model("ensl")
        end = time.monotonic() + 60
        while time.monotonic() < end and any(
                _rows(srv.url)[m].get("state") != "READY" for m in ("ensp", "ensl")):
            time.sleep(0.2)
        assert _serves(srv.url, "ensp") and _serves(srv.url, "ensl")
    finally:
        srv.stop()
