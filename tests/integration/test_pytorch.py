"""The PyTorch backend through a real tritond (TorchScript models generated here), and GPU
placement errors on a host without GPUs."""
from __future__ import annotations

import time

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.integration.echo_repo import echo_model
from tests.server import Server
from tritond import gpus

torch = pytest.importorskip("torch")

from tests import torch_models  # noqa: E402


def _inputs(x: np.ndarray, y: np.ndarray, names=("INPUT__0", "INPUT__1")):
    ins = []
    for name, arr in zip(names, (x, y)):
        t = httpclient.InferInput(name, list(arr.shape), "FP32")
        t.set_data_from_numpy(arr)
        ins.append(t)
    return ins


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = tmp_path_factory.mktemp("torch_repo")
    torch_models.add_sub(repo, delay=300_000)   # long enough for concurrent requests to batch
    torch_models.add_sub(repo, "torch_named", in0="y", in1="x")
    torch_models.identity(repo)
    torch_models.sequence(repo)
    server = Server([repo])
    yield server
    server.stop()


def test_add_sub_and_metadata(srv):
    client = httpclient.InferenceServerClient(srv.url)
    meta = client.get_model_metadata("torch_add_sub")
    assert meta["platform"] == "pytorch_libtorch"
    assert [i["name"] for i in meta["inputs"]] == ["INPUT__0", "INPUT__1"]
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    y = np.full((2, 4), 3, np.float32)
    result = client.infer("torch_add_sub", _inputs(x, y))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__0"), x + y)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__1"), x - y)


def test_forward_argument_names(srv):
    client = httpclient.InferenceServerClient(srv.url)
    x, y = np.full((1, 4), 7, np.float32), np.full((1, 4), 2, np.float32)
    result = client.infer("torch_named", _inputs(x, y, names=("x", "y")))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__1"), x - y)


def test_dynamic_batching_fuses_concurrent_requests(srv):
    client = httpclient.InferenceServerClient(srv.url, concurrency=8)
    before = client.get_inference_statistics("torch_add_sub")["model_stats"][0]

    xs = [np.full((1, 4), i, np.float32) for i in range(8)]
    pending = [client.async_infer("torch_add_sub", _inputs(x, np.ones((1, 4), np.float32)))
               for x in xs]
    for x, handle in zip(xs, pending):
        np.testing.assert_array_equal(handle.get_result().as_numpy("OUTPUT__0"), x + 1)
    after = client.get_inference_statistics("torch_add_sub")["model_stats"][0]
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 8
    assert executions < 8, after


def test_identity_variable_length(srv):
    client = httpclient.InferenceServerClient(srv.url)
    data = np.random.default_rng(0).random(1000, dtype=np.float32)
    t = httpclient.InferInput("INPUT__0", [1000], "FP32")
    t.set_data_from_numpy(data)
    np.testing.assert_array_equal(client.infer("torch_identity", [t]).as_numpy("OUTPUT__0"), data)


@pytest.mark.skipif(gpus.count() > 0, reason="this host has GPUs")
def test_sequence_controls_and_implicit_state(srv):
    """Triton QA's L0_request_cancellation implicit-state PyTorch model: START and CORRID
    control inputs and a state bind by their ``__<index>`` suffix; each sequence keeps its
    own state, also when concurrent sequences share a batch."""
    client = httpclient.InferenceServerClient(srv.url, concurrency=3)

    def step(corrid, value, **flags):
        t = httpclient.InferInput("INPUT__0", [1, 1], "INT64")
        t.set_data_from_numpy(np.full((1, 1), value, np.int64))
        return client.async_infer("torch_sequence", [t], sequence_id=corrid, **flags)

    values = {1: [5, 1, 2], 2: [10, 20, 30], 3: [-1, -1, -1]}
    for i in range(3):
        pending = {c: step(c, v[i], sequence_start=i == 0, sequence_end=i == 2)
                   for c, v in values.items()}
        for c, handle in pending.items():
            got = int(handle.get_result().as_numpy("OUTPUT__0")[0, 0])
            assert got == sum(values[c][:i + 1]) + c * 1000, (c, i)


def test_gpu_models_on_a_host_without_gpus(tmp_path):
    echo_model(tmp_path, "auto", "TYPE_FP32", "[ 4 ]")
    cfg = tmp_path / "auto" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("instance_group [ { kind: KIND_CPU count: 1 } ]\n", ""))
    echo_model(tmp_path, "gpu", "TYPE_FP32", "[ 4 ]")
    cfg = tmp_path / "gpu" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("KIND_CPU", "KIND_GPU"))
    torch_models.identity(tmp_path, "torch_gpu",
                          extra='instance_group [ { name: "tg" kind: KIND_GPU gpus: [ 0 ] } ]\n')
    # CUDA_VISIBLE_DEVICES="" hides a GPU host's devices as CUDA does, so this runs anywhere
    server = Server([tmp_path], wait_ready=False, env={"CUDA_VISIBLE_DEVICES": ""})
    try:
        server.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(server.url)
        deadline = time.monotonic() + 60
        while True:
            rows = {r["name"]: r for r in client.get_model_repository_index()}
            if all(rows.get(n, {}).get("state") in ("READY", "UNAVAILABLE")
                   for n in ("auto", "gpu", "torch_gpu")) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert rows["auto"]["state"] == "READY"        # KIND_AUTO: CPU on a CPU host
        assert rows["gpu"]["state"] == "UNAVAILABLE"
        assert rows["gpu"]["reason"] == ("instance group gpu_0 of model gpu has kind KIND_GPU "
                                         "but no GPUs are available")
        assert rows["torch_gpu"]["reason"] == (
            "instance group tg of model torch_gpu specifies invalid or unsupported gpu id 0. "
            "GPUs with at least the minimum required CUDA compute compatibility of 6.000000 "
            "are: ")
    finally:
        server.stop()
