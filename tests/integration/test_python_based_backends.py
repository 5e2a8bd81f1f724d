"""Python-based backends through a real tritond and the real tritonclient: a config naming
backend '<name>' runs <backend-directory>/<name>/model.py, each model with its own args
(core's backend_model.cc, python_backend's stub); the missing backend's load errors are
Triton's; the bundled Python backend is unaffected."""
from __future__ import annotations

import json
import queue
import re

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration import pybackend_repo as pb
from tests.server import Server

_TWICE = 'backend: "scale"\nversion_policy { all { } }\n'
_THRICE = ('backend: "scale"\nmax_batch_size: 8\n'
           'parameters { key: "tag" value { string_value: "thrice" } }\n')


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("pybackends")
    backends, other, repo = base / "backends", base / "other", base / "repo"
    pb.backend(backends, "scale")
    pb.backend(other, "scale", sign=-1)      # the same backend name, another directory
    (backends / "python").mkdir()
    (backends / "python" / "model.py").write_text(pb.DECOY_PY)
    pb.model(repo, "twice", _TWICE, {1: 2, 2: 20})
    pb.model(repo, "thrice", _THRICE, {1: 3})
    pb.model(repo, "plain", 'backend: "python"\n', {1: 5}, model_py=pb.PLAIN_PY)
    pb.model(repo, "nosuch", 'backend: "nosuch"\n', {1: 1})
    pb.model(repo, "noruntime", 'backend: "gone"\nruntime: "model.py"\n', {1: 1})
    # the backend's model.py wins over one in the version directory (Triton 2.51)
    pb.model(repo, "ownfile", 'backend: "scale"\n', {1: 4}, model_py=pb.DECOY_PY)
    for name, text in (("noclass", pb.NO_CLASS_PY), ("syntax", pb.SYNTAX_PY),
                       ("boom", pb.BOOM_PY), ("stream", pb.STREAM_PY)):
        pb.source(backends, name, text)
        pb.model(repo, name, f'backend: "{name}"\n' + pb.IO, {1: 1})
    (repo / "stream" / "config.pbtxt").write_text(
        'backend: "stream"\nmodel_transaction_policy { decoupled: true }\n' + pb.IO)
    pb.model(repo, "plainnoclass", 'backend: "python"\n' + pb.IO, {1: 1},
             model_py=pb.NO_CLASS_PY)
    # Triton 2.51 resolves a Python-based backend's --backend-config under "python": its
    # backend table shows "probe" with python's settings only, "probe,key=value" reaches
    # nothing. tritond accepts the flag the same way.
    server = Server([str(repo)], f"--backend-directory={backends}",
                    "--backend-config=scale,some-setting=1", "--strict-readiness=false")
    try:
        yield server, repo, backends, other
    finally:
        server.stop()


def _infer(url: str, model: str, version: str = "", batch: bool = False):
    client = httpclient.InferenceServerClient(url)
    data = np.arange(4, dtype=np.float32).reshape([1, 4] if batch else [4])
    inp = httpclient.InferInput("IN0", list(data.shape), "FP32")
    inp.set_data_from_numpy(data)
    result = client.infer(model, [inp], model_version=version)
    return result.as_numpy("OUT0").ravel().tolist(), json.loads(result.as_numpy("ARGS").ravel()[0])


def test_each_model_runs_the_backend_with_its_own_args(setup):
    server, repo, backends, _ = setup
    for version, factor in (("1", 2), ("2", 20)):
        out, args = _infer(server.url, "twice", version)
        assert out == [0.0, factor, 2.0 * factor, 3.0 * factor]
        assert args["model_repository"] == str(repo / "twice")
        assert args["model_version"] == version
        assert args["model_name"] == "twice" and args["config_name"] == "twice"
        assert args["model_dir"] == str(repo / "twice" / version)    # the version dir
        assert args["model_instance_kind"] == "CPU"
        # core sets the runtime it found; the stub imports the file as module "model"
        assert args["runtime"] == "model.py" and args["default_model_filename"] == ""
        assert args["module"] == "model" and args["file"] == str(backends / "scale" / "model.py")
    out, args = _infer(server.url, "thrice", batch=True)
    assert out == [0.0, 3.0, 6.0, 9.0]
    assert args["model_repository"] == str(repo / "thrice")
    assert args["parameters"] == {"tag": {"string_value": "thrice"}}
    assert args["model_version"] == "1"


def test_served_config_shows_the_runtime_and_completed_io(setup):
    server = setup[0]
    config = httpclient.InferenceServerClient(server.url).get_model_config("twice")
    assert config["backend"] == "scale" and config["runtime"] == "model.py"
    assert [i["name"] for i in config["input"]] == ["IN0"]
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    assert grpc.get_model_config("thrice").config.runtime == "model.py"


def test_the_bundled_python_backend_is_unaffected(setup):
    # <backend-directory>/python/model.py exists but the built-in Python backend wins
    server, repo, _, _ = setup
    out, args = _infer(server.url, "plain")
    assert out == [0.0, 5.0, 10.0, 15.0]
    assert args["runtime"] == "" and args["default_model_filename"] == "model.py"
    assert args["module"] == "1.model" and args["model_dir"] == str(repo / "plain" / "1")
    assert args["model_repository"] == str(repo / "plain")


def test_missing_backends_fail_the_load_with_tritons_text(setup):
    server, _, backends, _ = setup
    rows = {r["name"]: r for r in
            httpclient.InferenceServerClient(server.url).get_model_repository_index()}
    assert rows["nosuch"]["state"] == "UNAVAILABLE"
    assert rows["nosuch"]["reason"] == (
        "Invalid argument: unable to find backend library for backend 'nosuch', try "
        "specifying runtime on the model configuration.")
    assert rows["noruntime"]["state"] == "UNAVAILABLE"
    assert rows["noruntime"]["reason"] == (
        "Invalid argument: unable to find Python backend based backend library 'model.py' "
        f"for model 'noruntime', searched: '{backends / 'gone' / 'model.py'}'")


def test_backend_directory_override_and_default(setup):
    _, repo, _, other = setup
    server = Server([str(repo)], f"--backend-directory={other}", "--model-control-mode=explicit",
                    "--load-model=twice")
    try:
        out, args = _infer(server.url, "twice", "1")
        assert out == [0.0, -2.0, -4.0, -6.0]           # the other directory's backend
        assert args["file"] == str(other / "scale" / "model.py")
    finally:
        server.stop()
    # tritonserver's default directory (/opt/tritonserver/backends) has no such backend
    server = Server([str(repo)], "--model-control-mode=explicit")
    try:
        with pytest.raises(InferenceServerException) as err:
            httpclient.InferenceServerClient(server.url).load_model("twice")
        assert "unable to find backend library for backend 'scale', try specifying runtime " \
               "on the model configuration." in err.value.message()
    finally:
        server.stop()


def test_a_model_py_in_the_version_directory_is_not_used(setup):
    # Triton 2.51 runs the backend's model.py; the version's own file is never imported
    server, _, backends, _ = setup
    out, args = _infer(server.url, "ownfile", "1")
    assert out == [0.0, 4.0, 8.0, 12.0]
    assert args["file"] == str(backends / "scale" / "model.py") and args["module"] == "model"


def _reasons(url: str) -> dict[str, str]:
    rows = httpclient.InferenceServerClient(url).get_model_repository_index()
    assert all(r["state"] == "UNAVAILABLE" for r in rows if "reason" in r)
    return {r["name"]: r.get("reason", "") for r in rows}


def test_a_broken_backend_file_fails_the_load_as_the_stub_reports_it(setup):
    # Texts checked against Triton 2.51: the stub imports the file (C import: importlib's
    # frames are stripped from a SyntaxError) and then reads its TritonPythonModel.
    server, _, backends, _ = setup
    reasons = _reasons(server.url)
    assert reasons["noclass"] == \
        "Internal: AttributeError: module 'model' has no attribute 'TritonPythonModel'"
    assert reasons["plainnoclass"] == \
        "Internal: AttributeError: module '1.model' has no attribute 'TritonPythonModel'"
    assert reasons["syntax"] == "Internal: SyntaxError: expected ':' (model.py, line 2)"
    # Triton 2.51: "Internal: RuntimeError: boom at import\n\nAt:\n  <file>(2): f\n
    # <file>(4): <module>\n" then importlib's frames up to _find_and_load (their line
    # numbers are the Python build's)
    head, _, frames = reasons["boom"].partition("\n\nAt:\n")
    assert head == "Internal: RuntimeError: boom at import"
    at = re.findall(r"  (.+)\((\d+)\): (.+)\n", frames)
    path = str(backends / "boom" / "model.py")
    assert at[:2] == [(path, "2", "f"), (path, "4", "<module>")]
    assert [f for _, _, f in at[2:]] == ["_call_with_frames_removed", "exec_module",
                                        "_load_unlocked", "_find_and_load_unlocked",
                                        "_find_and_load"]


def test_a_decoupled_backend_streams_over_grpc(setup):
    server = setup[0]
    responses: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    assert client.get_model_config("stream").config.runtime == "model.py"
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    try:
        inp = grpcclient.InferInput("IN0", [4], "FP32")
        inp.set_data_from_numpy(np.arange(4, dtype=np.float32))
        client.async_stream_infer("stream", [inp], request_id="r1",
                                  enable_empty_final_response=True)
        seen = []
        while True:
            result, error = responses.get(timeout=30)
            assert error is None
            response = result.get_response()
            if response.parameters["triton_final_response"].bool_param:
                assert not response.outputs          # the final flag alone, as in Triton
                break
            seen.append(result.as_numpy("OUT0").tolist())
    finally:
        client.stop_stream()
    assert seen == [[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 4.0, 6.0], [0.0, 3.0, 6.0, 9.0]]
