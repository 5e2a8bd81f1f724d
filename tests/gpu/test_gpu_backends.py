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
    srv = Server([repo])
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
