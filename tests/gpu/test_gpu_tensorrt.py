"""On a GPU host with TensorRT: a model.plan built here from ONNX, served by tritond.

The engine (y = x + 1, batch 1..8 in one optimization profile) is built with the
tensorrt builder at test time, so the plan matches this GPU and TensorRT version.
"""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.gpu import cudashm
from tests.server import Server


def _plan() -> bytes:
    trt = pytest.importorskip("tensorrt")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "add_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8                # what every TensorRT 10+ ONNX parser reads
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), \
        [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 4), (4, 4), (8, 4))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None
    return bytes(plan)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    pytest.importorskip("cupy")
    repo = tmp_path_factory.mktemp("trt")
    (repo / "trt_add" / "1").mkdir(parents=True)
    (repo / "trt_add" / "1" / "model.plan").write_bytes(_plan())
    (repo / "trt_add" / "config.pbtxt").write_text(
        'name: "trt_add"\nplatform: "tensorrt_plan"\nmax_batch_size: 8\n'
        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'instance_group [ { kind: KIND_GPU count: 2 } ]\n')
    server = Server([repo], "--allow-client-shm=true")
    yield server
    server.stop()


@pytest.mark.parametrize("rows", [1, 3, 8])
def test_host_inputs_within_the_profile(srv, rows):
    client = httpclient.InferenceServerClient(srv.url)
    x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    inp = httpclient.InferInput("x", [rows, 4], "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_array_equal(client.infer("trt_add", [inp]).as_numpy("y"), x + 1)


def test_cuda_shm_in_and_out(srv):
    client = httpclient.InferenceServerClient(srv.url)
    x = np.arange(8 * 4, dtype=np.float32).reshape(8, 4)
    with cudashm.regions(client, {"in": x.nbytes, "out": x.nbytes}) as h:
        cudashm.put(h["in"], x)
        inp = httpclient.InferInput("x", [8, 4], "FP32")
        inp.set_shared_memory("in", x.nbytes)
        out = httpclient.InferRequestedOutput("y", binary_data=True)
        out.set_shared_memory("out", x.nbytes)
        client.infer("trt_add", [inp], outputs=[out])
        np.testing.assert_array_equal(cudashm.get(h["out"], np.float32, [8, 4]), x + 1)


def test_kind_cpu_is_refused_at_load(tmp_path):
    pytest.importorskip("tensorrt")
    (tmp_path / "trt_cpu" / "1").mkdir(parents=True)
    (tmp_path / "trt_cpu" / "1" / "model.plan").write_bytes(b"unused")
    (tmp_path / "trt_cpu" / "config.pbtxt").write_text(
        'name: "trt_cpu"\nbackend: "tensorrt"\n'
        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'instance_group [ { kind: KIND_CPU } ]\n')
    server = Server([tmp_path], wait_ready=False)
    try:
        server.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(server.url)
        from tests.integration.sched_repo import wait_for
        row = wait_for(lambda: next((r for r in client.get_model_repository_index()
                                     if r["name"] == "trt_cpu" and r.get("state") == "UNAVAILABLE"),
                                    None), timeout=60, what="trt_cpu to fail")
        assert "runs GPU instances only" in row["reason"]
    finally:
        server.stop()
