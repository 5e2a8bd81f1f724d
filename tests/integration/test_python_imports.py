"""What a Python model's imports find: python_backend's stub (src/pb_stub.cc
ModelContext::StubSetup) appends the version directory and the model directory to
``sys.path``, so a module installed (here: the standard library's ``colorsys``) wins over a
file of the same name shipped beside model.py, while the model's own modules still import."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server import Server

MODEL_PY = '''
import json
import sys

import colorsys            # the standard library's, not the one beside this file
import beside_version      # <model>/1/beside_version.py
import beside_model        # <model>/beside_model.py

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        seen = json.dumps({"colorsys": colorsys.__file__, "version": beside_version.WHERE,
                           "model": beside_model.WHERE, "path": sys.path})
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
                    "OUT", np.array([seen.encode()], dtype=object))]) for _ in requests]
'''

CONFIG = '''backend: "python"
input [{ name: "IN", data_type: TYPE_INT32, dims: [1] }]
output [{ name: "OUT", data_type: TYPE_STRING, dims: [1] }]
'''


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    repo = tmp_path_factory.mktemp("pyimports")
    model = repo / "shadow"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG)
    (model / "1" / "model.py").write_text(MODEL_PY)
    (model / "1" / "colorsys.py").write_text("# the model folder's colorsys\n")
    (model / "1" / "beside_version.py").write_text("WHERE = 'version'\n")
    (model / "beside_model.py").write_text("WHERE = 'model'\n")
    (repo / "beside_model.py").write_text("WHERE = 'repository'\n")
    server = Server([str(repo)])
    try:
        client = httpclient.InferenceServerClient(server.url)
        request = httpclient.InferInput("IN", [1], "INT32")
        request.set_data_from_numpy(np.array([1], dtype=np.int32))
        out = client.infer("shadow", [request]).as_numpy("OUT")[0]
        yield json.loads(out), repo
    finally:
        server.stop()


def test_an_installed_module_wins_over_one_beside_model_py(seen):
    found, repo = seen
    assert not found["colorsys"].startswith(str(repo)), found["colorsys"]


def test_the_model_folders_come_last_on_sys_path(seen):
    found, repo = seen
    assert (found["version"], found["model"]) == ("version", "model")
    model = str(repo / "shadow")
    assert found["path"][-2:] == [f"{model}/1", model]
    assert str(repo) not in found["path"]        # the stub does not add the repository
