"""Python-based backends in explicit mode, as Triton's own QA drives them
(qa/L0_backend_python/python_based_backends): a model of two versions loaded with a config
override, each version told its own number, and loaded again with the same override on
every test's setUp. Checked against Triton 2.51: the second load logs "loading: add:1",
"loading: add:2", "successfully loaded 'add'" without starting a new instance (core's
ModelLifeCycle::AsyncLoad updates a version in place when its files and its config as
given, before the backend's runtime is resolved, are unchanged), so both versions keep
their statistics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.integration import pybackend_repo as pb
from tests.server import Server

_OVERRIDE = json.dumps({"backend": "scale", "version_policy": {"latest": {"num_versions": 2}}})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("pybackend_reloads")
    pb.backend(base / "backends", "scale")
    pb.model(base / "repo", "twice", 'backend: "scale"\n', {1: 2, 2: 20})
    server = Server([str(base / "repo")], "--model-control-mode=explicit",
                    f"--backend-directory={base / 'backends'}")
    try:
        yield server
    finally:
        server.stop()


def _infer(client, version: str) -> tuple[list[float], dict]:
    data = np.arange(4, dtype=np.float32)
    inp = grpcclient.InferInput("IN0", [4], "FP32")
    inp.set_data_from_numpy(data)
    result = client.infer("twice", [inp], model_version=version)
    return result.as_numpy("OUT0").tolist(), json.loads(result.as_numpy("ARGS")[0])


def _executions(client) -> dict[str, int]:
    stats = client.get_inference_statistics("twice", as_json=True)["model_stats"]
    return {s["version"]: int(s.get("execution_count", 0)) for s in stats}


def test_an_unchanged_reload_keeps_every_version_serving(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.load_model("twice", config=_OVERRIDE)
    for version, factor in (("2", 20), ("1", 2)):
        assert client.is_model_ready("twice", model_version=version)
        out, args = _infer(client, version)
        assert out == [0.0, factor, 2.0 * factor, 3.0 * factor]
        assert args["model_version"] == version and args["runtime"] == "model.py"
    assert _executions(client) == {"1": 1, "2": 1}
    # The backend's runtime, resolved once per version at load, is not a config change:
    # a second version used to be reloaded here (its statistics gone)
    client.load_model("twice", config=_OVERRIDE)
    client.load_model("twice", config=_OVERRIDE)
    client.load_model("twice")
    assert _executions(client) == {"1": 1, "2": 1}
    index = {(m.name, m.version): m.state for m in client.get_model_repository_index().models}
    assert index == {("twice", "1"): "READY", ("twice", "2"): "READY"}
    assert client.get_model_config("twice").config.runtime == "model.py"
