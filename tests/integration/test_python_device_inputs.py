"""FORCE_CPU_ONLY_INPUT_TENSORS on a real tritond (Triton's Python backend parameter).

"no" lets CUDA shared-memory inputs reach the model on the GPU (tests/gpu covers
that); on a CPU-only path inputs stay numpy and the model still answers. A value
other than "yes"/"no" fails the load with Triton's message.
"""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.integration.sched_repo import wait_for
from tests.server import Server

ECHO_PLACEMENT = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            t = pb_utils.get_input_tensor_by_name(r, "IN0")
            where = np.array([t.is_cpu()], dtype=np.bool_)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor.from_dlpack("OUT0", t),
                                                   pb_utils.Tensor("CPU", where)]))
        return out
'''
CONFIG = ('name: "{name}"\nbackend: "python"\n'
          'input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
          'output [ { name: "OUT0" data_type: TYPE_FP32 dims: [ 4 ] }, '
          '{ name: "CPU" data_type: TYPE_BOOL dims: [ 1 ] } ]\n'
          'instance_group [ { kind: KIND_CPU } ]\n'
          'parameters { key: "FORCE_CPU_ONLY_INPUT_TENSORS" value { string_value: "{value}" } }\n')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name, value in (("device_ok", "no"), ("device_bad", "maybe")):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(ECHO_PLACEMENT)
        (repo / name / "config.pbtxt").write_text(
            CONFIG.replace("{name}", name).replace("{value}", value))
    srv = Server([repo], wait_ready=False)
    srv.wait("/v2/models/device_ok/ready")
    yield srv
    srv.stop()


def test_no_keeps_host_inputs_on_the_host(server):
    client = httpclient.InferenceServerClient(server.url)
    x = np.arange(4, dtype=np.float32)
    inp = httpclient.InferInput("IN0", [4], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("device_ok", [inp])
    np.testing.assert_array_equal(result.as_numpy("OUT0"), x)
    assert result.as_numpy("CPU").tolist() == [True]


def test_a_value_other_than_yes_or_no_fails_the_load(server):
    client = httpclient.InferenceServerClient(server.url)

    def row():
        r = {m["name"]: m for m in client.get_model_repository_index()}["device_bad"]
        return r if r.get("state") == "UNAVAILABLE" else None
    reason = wait_for(row, timeout=60, what="device_bad to fail")["reason"]
    assert "Incorrect value for FORCE_CPU_ONLY_INPUT_TENSORS: 'maybe'" in reason
