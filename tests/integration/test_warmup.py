"""``model_warmup`` through a real tritond: every sample runs on each instance before the
model is READY (and before a reloaded version serves); a failing or malformed sample fails
the load with Triton's reason (texts checked against Triton 2.51), the other models serve."""
from __future__ import annotations

import json
import time

import queue
import re

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.integration import warmup_repo
from tests.server import Server

ZERO = [[1, 4], "float32", "zero"]
EMPTY = [[1, 2], ["", ""]]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = warmup_repo.build(tmp_path_factory.mktemp("warmup"))
    server = Server([repo], "--model-control-mode=explicit", "--load-model=*",
                    "--log-verbose=1", wait_ready=False)
    try:
        server.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(server.url)
        models = [d for d in repo.iterdir() if d.is_dir()]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = client.get_model_repository_index()
            if len(rows) == len(models) and all(r.get("state") in ("READY", "UNAVAILABLE") for r in rows):
                break
            time.sleep(0.2)
        server.repo = repo
        yield server
    finally:
        server.stop()


def _rows(srv) -> dict:
    return {r["name"]: r for r in httpclient.InferenceServerClient(srv.url)
            .get_model_repository_index()}


def _inputs(lib) -> list:
    i0 = lib.InferInput("IN0", [1, 4], "FP32")
    i0.set_data_from_numpy(np.ones([1, 4], np.float32))
    i1 = lib.InferInput("IN1", [1, 2], "BYTES")
    i1.set_data_from_numpy(np.array([[b"q", b"r"]], dtype=object))
    return [i0, i1]


def _history(srv, model: str) -> list:
    """What the recorder's execute saw before this request."""
    result = httpclient.InferenceServerClient(srv.url).infer(model, _inputs(httpclient))
    return json.loads(result.as_numpy("OUT").reshape(-1)[0])


def test_each_instance_runs_every_sample_before_ready(srv):
    assert _rows(srv)["recorder"]["state"] == "READY"
    # Triton counts each warmup run as an execution of its requests (probed on 2.51): two
    # instances, each three runs of 2 requests and two of 1, before any client request
    client = httpclient.InferenceServerClient(srv.url)
    (stats,) = client.get_inference_statistics("recorder")["model_stats"]
    assert (stats["inference_count"], stats["execution_count"]) == (16, 10)
    assert stats["inference_stats"]["success"]["count"] == 16
    assert stats["inference_stats"]["fail"]["count"] == 0
    assert {b["batch_size"]: b["compute_infer"]["count"] for b in stats["batch_stats"]} == \
        {1: 4, 2: 6}
    calls = _history(srv, "recorder")
    # zeros: a batch of two one-row requests, three times; BYTES zero data: empty strings
    assert calls[:3] == [[{"IN0": ZERO, "IN1": EMPTY}] * 2] * 3
    # random data: non-zero floats; random BYTES are Triton's zero buffer (empty strings)
    assert calls[3] == [{"IN0": [[1, 4], "float32", "nonzero"], "IN1": EMPTY}]
    # the batch-0 sample is skipped; file data: the first 16 bytes, two strings
    assert calls[4] == [{"IN0": [[1, 4], "float32", "nonzero"], "IN1": [[1, 2], ["ab", "xyz"]]}]
    assert len(calls) == 5
    log = srv.output()
    for instance in ("recorder_0_0", "recorder_0_1"):
        for sample, n in (("zeros", 3), ("rand", 1), ("file", 1)):
            line = (f"model 'recorder' instance {instance} is running warmup sample "
                    f"'{sample}' for iteration {n}")
            assert line in log
    assert "Skipping batch 0 warmup sample 'skipped'" in log
    assert "failed to run warmup sample 'zeros'" not in log


def test_a_passive_instance_is_not_warmed_up(srv):
    # Triton generates warmup data for non-passive instances only
    assert _rows(srv)["halfpassive"]["state"] == "READY"
    log = srv.output()
    assert ("model 'halfpassive' instance halfpassive_0_0 is running warmup sample "
            "'active only' for iteration 1") in log
    assert "instance halfpassive_1_0 is running warmup" not in log
    assert "loaded 'halfpassive' version 1 instance halfpassive_1_0" in log
    (stats,) = httpclient.InferenceServerClient(srv.url).get_inference_statistics(
        "halfpassive")["model_stats"]
    assert stats["inference_count"] == 1


def test_a_decoupled_model_warms_up_and_serves(srv):
    assert _rows(srv)["streamer"]["state"] == "READY"
    answers: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    client.start_stream(lambda result, error: answers.put((result, error)))
    try:
        client.async_stream_infer("streamer", _inputs(grpcclient))
        result, error = answers.get(timeout=30)
    finally:
        client.stop_stream()
    assert error is None, error
    # the warmup's responses went nowhere; its two requests ran once, together, with the
    # input the config does not name (Triton's override input: batch dimension added)
    seen = {"IN0": ZERO, "IN1": EMPTY, "START": [[1, 1], "int32", "zero"]}
    assert json.loads(result.as_numpy("OUT").reshape(-1)[0]) == [[seen] * 2]


def test_an_onnx_model_warms_up_and_serves(srv):
    assert _rows(srv)["onnx"]["state"] == "READY"
    # a batch of four one-row requests, fused into one run, on each instance
    ran = re.findall(r"model 'onnx' instance (\S+) is running warmup sample 'onnx sample' "
                     r"for iteration 1", srv.output())
    assert ran and len(ran) == len(set(ran))
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        inputs.append(httpclient.InferInput(name, [1, 16], "INT32"))
        inputs[-1].set_data_from_numpy(a)
    result = httpclient.InferenceServerClient(srv.url).infer("onnx", inputs)
    assert (result.as_numpy("OUTPUT0") == 2 * a).all()


def test_a_pytorch_model_warms_up_and_serves(srv):
    pytest.importorskip("torch")
    assert _rows(srv)["torch"]["state"] == "READY"
    ran = re.findall(r"model 'torch' instance (\S+) is running warmup sample 'torch sample' "
                     r"for iteration 2", srv.output())
    assert ran and len(ran) == len(set(ran))
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    inputs = []
    for name in ("INPUT__0", "INPUT__1"):
        inputs.append(httpclient.InferInput(name, [1, 4], "FP32"))
        inputs[-1].set_data_from_numpy(x)
    result = httpclient.InferenceServerClient(srv.url).infer("torch", inputs)
    assert (result.as_numpy("OUTPUT__0") == 2 * x).all()


FAILED = {
    # the model's error response (Triton's L0_warmup failing_infer text)
    "failing": "Invalid argument: failed to run warmup sample 'zero sample': "
               "An Error Occurred; ",
    "raising": "Invalid argument: failed to run warmup sample 'zero sample': Failed to "
               "process the request(s) for model 'raising_0_0', message: "
               "TritonModelException: boom in execute\n\nAt:\n",
    # checked as any request: a required input the sample lacks
    "missing": "Invalid argument: [request id: <id_unknown>] expected 2 inputs but got 1 "
               "inputs for model 'missing'. Got input(s) ['IN0'], but missing required "
               "input(s) ['IN1']. Please provide all required input(s).",
    "short": "Invalid argument: [request id: <id_unknown>] warmup setting expects 16 bytes, "
             "but the data provided from floatsonly has 8 bytes",
    # three one-row requests on a model that does not batch: the backend refuses each
    "toobig": "Invalid argument: failed to run warmup sample 'big': "
              + "batch size 3 for 'toobig_0_0', max allowed is 0; " * 3,
}


@pytest.mark.parametrize("model", sorted(FAILED))
def test_a_failing_sample_fails_the_load_with_tritons_reason(srv, model):
    row = _rows(srv)[model]
    assert row["state"] == "UNAVAILABLE"
    assert row["reason"].startswith(FAILED[model]), row["reason"]
    assert not httpclient.InferenceServerClient(srv.url).is_model_ready(model)


def test_a_reload_warms_the_new_version_before_it_serves(srv):
    assert _history(srv, "again") == [[{"IN0": ZERO, "IN1": EMPTY}]]
    config = srv.repo / "again" / "config.pbtxt"
    text = config.read_text().replace('name: "first" batch_size: 1',
                                      'name: "second" batch_size: 2 count: 2')
    config.write_text(text)
    client = httpclient.InferenceServerClient(srv.url)
    client.load_model("again")
    assert _history(srv, "again") == [[{"IN0": ZERO, "IN1": EMPTY}] * 2] * 2
    assert ("model 'again' instance again_0_0 is running warmup sample 'second' for "
            "iteration 2") in srv.output()
