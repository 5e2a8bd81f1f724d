"""On a GPU host: CUDA shared-memory inputs reach a GPU Python model on the device.

Zero copy is shown, not assumed: the model adds 1 to its input *in place*, and
the client then finds its own input region changed; the model also reports
``is_cpu()`` and the device pointer it got. Outputs go device to device into a
client CUDA region, or once to the host when the client asked for no region.
"""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.gpu import cudashm
from tests.server import Server

INPLACE = '''
import cupy
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            t = pb_utils.get_input_tensor_by_name(r, "INPUT0")
            if t.is_cpu():
                x, ptr = t.as_numpy(), 0
            else:
                x = cupy.from_dlpack(t)
                x += 1                      # the client's own device memory, in place
                ptr = x.data.ptr
            info = np.array([int(t.is_cpu()), ptr], dtype=np.int64)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor.from_dlpack("OUTPUT0", x),
                                                   pb_utils.Tensor("INFO", info)]))
        return out
'''
TORCH_DOUBLE = '''
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = torch.from_dlpack(pb_utils.get_input_tensor_by_name(r, "INPUT0"))
            y = (x * 2).contiguous()
            assert y.is_cuda
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor.from_dlpack("OUTPUT0", y)]))
        return out
'''
CONFIG = ('name: "{name}"\nbackend: "python"\n'
          'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
          'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }{info} ]\n'
          'instance_group [ { kind: KIND_GPU count: 1 gpus: [ 0 ] } ]\n{params}')
NO = 'parameters { key: "FORCE_CPU_ONLY_INPUT_TENSORS" value { string_value: "no" } }\n'
INFO = ', { name: "INFO" data_type: TYPE_INT64 dims: [ 2 ] }'
N = 1 << 16


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    pytest.importorskip("cupy")
    repo = tmp_path_factory.mktemp("gpu_py")
    models = {"py_device": (INPLACE, INFO, NO), "py_host": (INPLACE, INFO, ""),
              "py_torch": (TORCH_DOUBLE, "", NO)}
    for name, (source, info, params) in models.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(source)
        (repo / name / "config.pbtxt").write_text(
            CONFIG.replace("{name}", name).replace("{info}", info).replace("{params}", params))
    server = Server([repo], "--allow-client-shm=true", wait_ready=False)
    for name in models:
        server.wait(f"/v2/models/{name}/ready")
    yield server
    server.stop()


def _infer(client, model: str, out_region: str | None, outputs=("OUTPUT0", "INFO")):
    inp = httpclient.InferInput("INPUT0", [N], "FP32")
    inp.set_shared_memory("in", N * 4)
    outs = []
    for name in outputs:
        o = httpclient.InferRequestedOutput(name, binary_data=True)
        if name == "OUTPUT0" and out_region:
            o.set_shared_memory(out_region, N * 4)
        outs.append(o)
    return client.infer(model, [inp], outputs=outs)


def test_device_input_is_the_clients_memory_and_output_goes_device_to_device(srv):
    client = httpclient.InferenceServerClient(srv.url)
    data = np.arange(N, dtype=np.float32)
    with cudashm.regions(client, {"in": N * 4, "out": N * 4}) as h:
        cudashm.put(h["in"], data)
        result = _infer(client, "py_device", "out")
        is_cpu, ptr = result.as_numpy("INFO").tolist()
        assert is_cpu == 0 and ptr != 0                  # a device pointer, not a host copy
        # the model changed the client's input region in place: it had no copy of it
        np.testing.assert_array_equal(cudashm.get(h["in"], np.float32, [N]), data + 1)
        np.testing.assert_array_equal(cudashm.get(h["out"], np.float32, [N]), data + 1)
        # the same pointer on the next request: the IPC handle was opened once
        again = _infer(client, "py_device", "out").as_numpy("INFO").tolist()
        assert again[1] == ptr


def test_device_output_without_a_client_region_comes_back_through_the_host(srv):
    client = httpclient.InferenceServerClient(srv.url)
    data = np.full(N, 3, np.float32)
    with cudashm.regions(client, {"in": N * 4}) as h:
        cudashm.put(h["in"], data)
        result = _infer(client, "py_device", None)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data + 1)


def test_force_cpu_only_input_tensors_default_gives_host_inputs(srv):
    client = httpclient.InferenceServerClient(srv.url)
    data = np.ones(N, np.float32)
    with cudashm.regions(client, {"in": N * 4, "out": N * 4}) as h:
        cudashm.put(h["in"], data)
        result = _infer(client, "py_host", "out")
        assert result.as_numpy("INFO").tolist()[0] == 1            # is_cpu()
        np.testing.assert_array_equal(cudashm.get(h["in"], np.float32, [N]), data)   # untouched
        np.testing.assert_array_equal(cudashm.get(h["out"], np.float32, [N]), data)


def test_torch_cuda_tensors_through_dlpack(srv):
    pytest.importorskip("torch")
    client = httpclient.InferenceServerClient(srv.url)
    data = np.arange(N, dtype=np.float32)
    with cudashm.regions(client, {"in": N * 4, "out": N * 4}) as h:
        cudashm.put(h["in"], data)
        _infer(client, "py_torch", "out", outputs=("OUTPUT0",))
        np.testing.assert_array_equal(cudashm.get(h["out"], np.float32, [N]), data * 2)
