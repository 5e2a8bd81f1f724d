"""``pb_utils.is_model_ready`` asks what the newest python_backend asks: the core's
ModelIsReady, which also asks a Python model's own ``is_ready()`` (every instance); its
version string is read as python_backend reads it. A real tritond, a real Python model
calling it, the real tritonclient. (Triton 2.51 agrees on every answer here but those of
models defining ``is_ready()``, which it does not call.)"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server import Server

# ``manager`` calls pb_utils.is_model_ready with the JSON list of arguments it is sent
# and answers repr(result), or the exception it raised.
MANAGER_PY = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            args = json.loads(pb_utils.get_input_tensor_by_name(r, "Q").as_numpy()[0])
            try:
                status = repr(pb_utils.is_model_ready(*args))
            except Exception as exc:
                status = f"raised {type(exc).__name__}: {exc}"
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("STATUS", np.array([status.encode()], dtype=object))]))
        return out
'''

IDENTITY_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
{ready}
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy())]) for r in requests]
'''

READY = {
    "notready": "    def is_ready(self):\n        return False\n",
    "fine": "    def is_ready(self):\n        return True\n",
    "raising": "    def is_ready(self):\n        raise ValueError('boom')\n",
    "plain": "",
}

CONFIG = '''name: "{name}"
backend: "python"
input [ {{ name: "{i}" data_type: {t} dims: [ 1 ] }} ]
output [ {{ name: "{o}" data_type: {t} dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: {count} }} ]
'''


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    repo = tmp_path_factory.mktemp("bls_ready")
    (repo / "manager" / "1").mkdir(parents=True)
    (repo / "manager" / "1" / "model.py").write_text(MANAGER_PY)
    (repo / "manager" / "config.pbtxt").write_text(
        CONFIG.format(name="manager", i="Q", o="STATUS", t="TYPE_STRING", count=1))
    for name, ready in READY.items():
        versions = (1, 2) if name == "notready" else (1,)
        for v in versions:
            (repo / name / str(v)).mkdir(parents=True)
            (repo / name / str(v) / "model.py").write_text(IDENTITY_PY.format(ready=ready))
        policy = 'version_policy: { all { } }\n' if len(versions) > 1 else ""
        (repo / name / "config.pbtxt").write_text(policy + CONFIG.format(
            name=name, i="X", o="Y", t="TYPE_FP32", count=2 if name == "fine" else 1))
    # not strict: a model whose is_ready() says no would keep the server not ready
    s = Server([repo], "--strict-readiness=false")
    yield httpclient.InferenceServerClient(s.url)
    s.stop()


def _ask(client, *args) -> str:
    q = httpclient.InferInput("Q", [1], "BYTES")
    q.set_data_from_numpy(np.array([json.dumps(args).encode()], dtype=object))
    return client.infer("manager", [q]).as_numpy("STATUS")[0].decode()


@pytest.mark.parametrize("name,version,answer", [
    ("notready", "", "False"),       # the latest ready version (2) asked: its is_ready() says no
    ("notready", "1", "False"),
    ("notready", "2", "False"),
    ("raising", "", "False"),        # an exception in is_ready(): not ready, the call succeeds
    ("fine", "", "True"),            # both instances asked
    ("fine", "1", "True"),
    ("fine", "2", "False"),          # no such version
    ("plain", "", "True"),           # no is_ready(): the table answers
    ("plain", "7", "False"),
    ("plain", "0", "False"),
    ("plain", "1abc", "True"),       # read as std::stol reads it
    ("manager", "", "True"),         # itself, while it executes
    ("ghost", "", "False"),
])
def test_the_model_and_its_own_is_ready_answer(client, name, version, answer):
    assert _ask(client, name, version) == answer


def test_the_version_is_read_as_python_backend_reads_it(client):
    prefix = ("raised TritonModelException: Failed to check model readiness: Failed to process "
              "the request for model 'manager_0_0', message: failed to get model version from "
              "specified version string ")
    assert _ask(client, "fine", "x") == prefix + (
        "'x' (details: stol), version should be an integral value > 0")
    assert _ask(client, "fine", "-1") == prefix + "'-1', version should be an integral value > 0"
    assert _ask(client, "fine") == "True"


def test_arguments_are_checked_as_by_the_binding(client):
    assert _ask(client, "plain", 1) == (
        "raised TypeError: is_model_ready(): incompatible function arguments. The following "
        "argument types are supported:\n    1. (model_name: str, model_version: str = '') -> "
        "bool\n\nInvoked with: 'plain', 1")


def test_clients_still_see_the_same_readiness(client):
    assert not client.is_model_ready("notready") and not client.is_model_ready("raising")
    assert client.is_model_ready("fine") and client.is_model_ready("plain")
