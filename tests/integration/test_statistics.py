"""Model statistics as the scheduler counts them, under real concurrent load.

HTTP ``/v2/models/<m>/stats`` and gRPC ``ModelStatistics`` both answer from the
scheduler, so both must show the same batching: fewer executions than
inferences, per-batch-size compute stats, queue and compute time, the last
inference time, and failures for rejected requests.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.sched_repo import events, wait_for, write_repo
from tests.integration.test_batching import _together, grpc_infer, http_infer
from tests.server import Server

MODELS = {
    "busy": {"max_batch": 8, "sleep_ms": 20, "scheduling":
             "dynamic_batching { max_queue_delay_microseconds: 50000 }"},
    "tight": {"max_batch": 1, "sleep_ms": 600, "scheduling":
              "dynamic_batching { default_queue_policy { max_queue_size: 1 } }"},
}
ROUNDS, CLIENTS = 3, 16


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    srv = Server([write_repo(root, MODELS)])
    yield srv, root
    srv.stop()


def _http_stats(srv, model) -> dict:
    c = httpclient.InferenceServerClient(srv.url)
    try:
        (stats,) = c.get_inference_statistics(model)["model_stats"]
        return stats
    finally:
        c.close()


def _grpc_stats(srv, model) -> dict:
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        (stats,) = c.get_inference_statistics(model, as_json=True)["model_stats"]
        return stats
    finally:
        c.close()


def _n(d: dict, key: str) -> int:
    return int(d.get(key, 0))       # protobuf JSON omits zeros and writes uint64 as strings


def test_batched_load_statistics(env):
    srv, _ = env
    before_ms = int(time.time() * 1000)
    for _ in range(ROUNDS):
        calls = [(lambda: http_infer(srv, "busy")) for _ in range(CLIENTS // 2)]
        calls += [(lambda: grpc_infer(srv, "busy")) for _ in range(CLIENTS // 2)]
        _together(calls)
    total = ROUNDS * CLIENTS
    stats = _http_stats(srv, "busy")
    assert stats["name"] == "busy" and stats["version"] == "1"
    assert stats["inference_count"] == total
    assert 1 <= stats["execution_count"] < total             # batches of more than one
    assert before_ms - 5 <= stats["last_inference"] <= int(time.time() * 1000) + 5
    inf = stats["inference_stats"]
    assert inf["success"]["count"] == total and inf["fail"]["count"] == 0
    for key in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert inf[key]["count"] == total and inf[key]["ns"] > 0, key
    assert inf["compute_infer"]["ns"] >= total * 20_000_000   # every request charged its batch
    assert inf["success"]["ns"] >= inf["queue"]["ns"] + inf["compute_infer"]["ns"]
    batches = stats["batch_stats"]
    assert sum(b["batch_size"] * b["compute_infer"]["count"] for b in batches) == total
    assert sum(b["compute_infer"]["count"] for b in batches) == stats["execution_count"]
    assert any(b["batch_size"] > 1 for b in batches)
    assert all(b["compute_infer"]["ns"] > 0 for b in batches)
    # gRPC reports the very same numbers
    g = _grpc_stats(srv, "busy")
    assert _n(g, "inference_count") == total
    assert _n(g, "execution_count") == stats["execution_count"]
    assert _n(g, "last_inference") == stats["last_inference"]
    assert _n(g["inference_stats"]["queue"], "ns") == inf["queue"]["ns"]
    assert sorted(_n(b, "batch_size") for b in g["batch_stats"]) == \
        sorted(b["batch_size"] for b in batches)


def test_queue_full_rejections_are_not_failures(env):
    # Triton's Enqueue errors never reach its statistics (checked against Triton 2.51)
    srv, root = env
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(grpc_infer, srv, "tight", request_id="blocker")
        wait_for(lambda: any("blocker" in e.get("ids", ()) for e in events(root, "tight")),
                 what="blocker to start")
        queued = pool.submit(http_infer, srv, "tight")
        time.sleep(0.15)
        for infer in (http_infer, grpc_infer):
            with pytest.raises(InferenceServerException, match="Exceeds maximum queue size"):
                infer(srv, "tight")
        blocker.result()
        queued.result()
    inf = _http_stats(srv, "tight")["inference_stats"]
    assert inf["fail"]["count"] == 0 and inf["success"]["count"] == 2
    assert _n(_grpc_stats(srv, "tight")["inference_stats"]["fail"], "count") == 0
    np.testing.assert_array_equal(  # the model still answers after the rejections
        http_infer(srv, "tight").as_numpy("OUTPUT0"), np.ones((1, 2), np.float32))
