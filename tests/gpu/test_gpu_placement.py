"""On a GPU host: discovery agrees with CUDA, GPU instances load and see their device."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server import Server
from tritond import gpus

# A Python model that answers with what Triton told it about its instance.
WHOAMI_PY = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.me = json.dumps({k: args[k] for k in ("model_instance_kind",
                                                   "model_instance_device_id",
                                                   "model_instance_name")})

    def execute(self, requests):
        out = np.array([self.me.encode()], dtype=object)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", out)]) for _ in requests]
'''


def _whoami(repo, name: str, groups: str):
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(WHOAMI_PY)
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\n'
        'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_STRING dims: [ 1 ] } ]\n' + groups)


def test_count_matches_cuda():
    cuda = None
    try:
        import cupy
        cuda = cupy.cuda.runtime.getDeviceCount()
    except ImportError:
        torch = pytest.importorskip("torch")
        cuda = torch.cuda.device_count()
    assert gpus.count() == cuda


def test_gpu_instances_see_their_device(tmp_path):
    n = gpus.count()
    _whoami(tmp_path, "auto", "")
    _whoami(tmp_path, "last", f'instance_group [ {{ kind: KIND_GPU count: 2 gpus: [ {n - 1} ] }} ]\n')
    srv = Server([tmp_path])
    try:
        client = httpclient.InferenceServerClient(srv.url)
        inp = httpclient.InferInput("IN", [1], "FP32")
        inp.set_data_from_numpy(np.zeros(1, np.float32))
        seen = set()
        deadline = time.monotonic() + 30
        while len(seen) < n and time.monotonic() < deadline:
            me = json.loads(client.infer("auto", [inp]).as_numpy("OUT")[0])
            assert me["model_instance_kind"] == "GPU"
            seen.add(me["model_instance_device_id"])
        assert seen == {str(i) for i in range(n)}
        me = json.loads(client.infer("last", [inp]).as_numpy("OUT")[0])
        assert (me["model_instance_kind"], me["model_instance_device_id"]) == ("GPU", str(n - 1))
        config = client.get_model_config("auto")
        assert config["instance_group"][0]["kind"] == "KIND_GPU"
        assert config["instance_group"][0]["gpus"] == list(range(n))
    finally:
        srv.stop()


def test_unknown_gpu_id_fails_with_tritons_message(tmp_path):
    n = gpus.count()
    _whoami(tmp_path, "bad", f'instance_group [ {{ name: "g" kind: KIND_GPU gpus: [ {n} ] }} ]\n')
    srv = Server([tmp_path], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(srv.url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            [row] = client.get_model_repository_index()
            if row.get("state") == "UNAVAILABLE":
                break
            time.sleep(0.2)
        assert row["reason"].startswith(f"instance group g of model bad specifies invalid or "
                                        f"unsupported gpu id {n}.")
    finally:
        srv.stop()
