"""On a GPU host: PyTorch and ONNX Runtime models on GPU instances, CUDA shared memory flow."""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server import Server


@pytest.fixture(scope="module")
def torch_srv(tmp_path_factory):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    from tests import torch_models
    repo = tmp_path_factory.mktemp("gpu_torch")
    torch_models.add_sub(repo, extra='instance_group [ { kind: KIND_GPU } ]\n')
    torch_models.identity(repo, extra='instance_group [ { kind: KIND_GPU } ]\n')
    srv = Server([repo], "--allow-client-shm=true")
    yield srv
    srv.stop()


def test_pytorch_on_gpu(torch_srv):
    client = httpclient.InferenceServerClient(torch_srv.url)
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    ins = []
    for name, arr in (("INPUT__0", x), ("INPUT__1", x)):
        t = httpclient.InferInput(name, list(arr.shape), "FP32")
        t.set_data_from_numpy(arr)
        ins.append(t)
    result = client.infer("torch_add_sub", ins)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__0"), 2 * x)
    assert client.get_model_config("torch_add_sub")["instance_group"][0]["kind"] == "KIND_GPU"


def test_pytorch_identity_through_client_cuda_shm(torch_srv):
    cudashm = pytest.importorskip("tritonclient.utils.cuda_shared_memory")
    client = httpclient.InferenceServerClient(torch_srv.url)
    data = np.random.default_rng(1).random(1 << 16, dtype=np.float32)
    nbytes = data.nbytes
    ih = cudashm.create_shared_memory_region("gpu_in", nbytes, 0)
    oh = cudashm.create_shared_memory_region("gpu_out", nbytes, 0)
    try:
        cudashm.set_shared_memory_region(ih, [data])
        client.register_cuda_shared_memory("gpu_in", cudashm.get_raw_handle(ih), 0, nbytes)
        client.register_cuda_shared_memory("gpu_out", cudashm.get_raw_handle(oh), 0, nbytes)
        inp = httpclient.InferInput("INPUT__0", [data.size], "FP32")
        inp.set_shared_memory("gpu_in", nbytes)
        out = httpclient.InferRequestedOutput("OUTPUT__0", binary_data=True)
        out.set_shared_memory("gpu_out", nbytes)
        client.infer("torch_identity", [inp], outputs=[out])
        got = cudashm.get_contents_as_numpy(oh, np.float32, [data.size])
        np.testing.assert_array_equal(got, data)
    finally:
        client.unregister_cuda_shared_memory()
        cudashm.destroy_shared_memory_region(ih)
        cudashm.destroy_shared_memory_region(oh)


def test_onnxruntime_on_gpu(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    from tests.workers import models
    models.add_sub(tmp_path)
    (tmp_path / "add_sub" / "config.pbtxt").write_text(
        'name: "add_sub"\nbackend: "onnxruntime"\ninstance_group [ { kind: KIND_GPU } ]\n')
    srv = Server([tmp_path])
    try:
        client = httpclient.InferenceServerClient(srv.url)
        x = np.arange(32, dtype=np.int32).reshape(2, 16)
        ins = []
        for name in ("INPUT0", "INPUT1"):
            t = httpclient.InferInput(name, [2, 16], "INT32")
            t.set_data_from_numpy(x)
            ins.append(t)
        np.testing.assert_array_equal(client.infer("add_sub", ins).as_numpy("OUTPUT0"), 2 * x)
    finally:
        srv.stop()


def test_pytorch_gpu_instance_works_on_the_clients_device_memory(tmp_path):
    """An in-place TorchScript model changes the client's own CUDA input region: the input
    reached torch through DLPack, not as a copy; the output goes device to device."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("cupy")
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    from tests import torch_models

    class InPlace(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x.add_(1.0)
            return x * 2

    torch_models._write(tmp_path, "torch_inplace", torch.jit.script(InPlace()),
                        torch_models.IDENTITY_CONFIG.format(
                            name="torch_inplace", extra='instance_group [ { kind: KIND_GPU } ]\n'))
    from tests.gpu import cudashm
    srv = Server([tmp_path], "--allow-client-shm=true")
    try:
        client = httpclient.InferenceServerClient(srv.url)
        data = np.arange(1 << 16, dtype=np.float32)
        with cudashm.regions(client, {"tin": data.nbytes, "tout": data.nbytes}) as h:
            cudashm.put(h["tin"], data)
            inp = httpclient.InferInput("INPUT__0", [data.size], "FP32")
            inp.set_shared_memory("tin", data.nbytes)
            out = httpclient.InferRequestedOutput("OUTPUT__0", binary_data=True)
            out.set_shared_memory("tout", data.nbytes)
            client.infer("torch_inplace", [inp], outputs=[out])
            np.testing.assert_array_equal(cudashm.get(h["tin"], np.float32, [data.size]), data + 1)
            np.testing.assert_array_equal(cudashm.get(h["tout"], np.float32, [data.size]),
                                          (data + 1) * 2)
            # no output region: the device output comes back through the host once
            plain = client.infer("torch_inplace", [inp]).as_numpy("OUTPUT__0")
            np.testing.assert_array_equal(plain, (data + 2) * 2)
    finally:
        srv.stop()


def test_onnxruntime_gpu_with_cuda_shm_in_and_out(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("cupy")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    from tests.gpu import cudashm
    from tests.workers import models
    models.add_sub(tmp_path)
    (tmp_path / "add_sub" / "config.pbtxt").write_text(
        'name: "add_sub"\nbackend: "onnxruntime"\ninstance_group [ { kind: KIND_GPU } ]\n')
    srv = Server([tmp_path], "--allow-client-shm=true")
    try:
        client = httpclient.InferenceServerClient(srv.url)
        x = np.arange(32, dtype=np.int32).reshape(2, 16)
        with cudashm.regions(client, {"a": x.nbytes, "b": x.nbytes, "o": x.nbytes}) as h:
            cudashm.put(h["a"], x)
            cudashm.put(h["b"], x)
            ins = []
            for name, region in (("INPUT0", "a"), ("INPUT1", "b")):
                t = httpclient.InferInput(name, [2, 16], "INT32")
                t.set_shared_memory(region, x.nbytes)
                ins.append(t)
            out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)
            out.set_shared_memory("o", x.nbytes)
            result = client.infer("add_sub", ins, outputs=[
                out, httpclient.InferRequestedOutput("OUTPUT1", binary_data=True)])
            np.testing.assert_array_equal(cudashm.get(h["o"], np.int32, [2, 16]), 2 * x)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), 0 * x)
    finally:
        srv.stop()


@pytest.mark.timeout(300)    # compiles a CPU package first (tens of seconds)
def test_aoti_is_refused_on_gpu_instances_and_auto_runs_it_on_the_cpu(tmp_path):
    """platform "torch_aoti": KIND_GPU is refused at load (its worker died of SIGSEGV in
    aoti_load_package for a CUDA package on the H200 host, session 12); a model without
    instance_group stays on the CPU there and serves."""
    from tests import aoti_models
    reason = aoti_models.missing()
    if reason:
        pytest.skip(reason)
    package = aoti_models.compile_package(tmp_path / "add_sub.pt2")
    aoti_models.add_model(tmp_path / "repo", package, "aoti_gpu",
                          extra='instance_group [ { kind: KIND_GPU } ]\n')
    aoti_models.add_model(tmp_path / "repo", package, "aoti_auto")
    srv = Server([tmp_path / "repo"], wait_ready=False)
    try:
        srv.wait("/v2/models/aoti_auto/ready")
        client = httpclient.InferenceServerClient(srv.url)
        rows = {r["name"]: r for r in client.get_model_repository_index()}
        assert rows["aoti_gpu"]["state"] == "UNAVAILABLE"
        assert "platform 'torch_aoti' on KIND_GPU instances is not supported by tritond yet" \
            in rows["aoti_gpu"]["reason"]
        kinds = [g["kind"] for g in client.get_model_config("aoti_auto")["instance_group"]]
        assert kinds == ["KIND_CPU"]
        a = np.arange(8, dtype=np.float32).reshape(2, 4)
        b = np.full((2, 4), 3, np.float32)
        ins = []
        for name, arr in (("INPUT__0", a), ("INPUT__1", b)):
            t = httpclient.InferInput(name, list(arr.shape), "FP32")
            t.set_data_from_numpy(arr)
            ins.append(t)
        result = client.infer("aoti_auto", ins)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT__0"), a + b)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT__1"), a - b)
    finally:
        srv.stop()
