"""Dynamic batching, priorities and queue policies through real processes.

One tritond serves a repository written by this module (see ``sched_repo``);
models report the batch they executed and an execution sequence number, so
batching and service order are observed from the clients' side.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.sched_repo import events, wait_for, write_repo
from tests.server import Server

MODELS = {
    "batched": {"max_batch": 8, "scheduling":
                "dynamic_batching { preferred_batch_size: [4] "
                "max_queue_delay_microseconds: 200000 }"},
    # preferred sizes default to [max_batch_size]: batches fill up to 8 rows
    "capped": {"max_batch": 8, "scheduling":
               "dynamic_batching { max_queue_delay_microseconds: 200000 }"},
    "prio": {"max_batch": 1, "sleep_ms": 300, "scheduling":
             "dynamic_batching { priority_levels: 2 default_priority_level: 2 }"},
    # qa/L0_model_queue test_max_priority_levels: levels up to 2^64 - 1, default 2^32
    "maxprio": {"max_batch": 8, "sleep_ms": 400, "scheduling":
                "dynamic_batching { preferred_batch_size: [4, 8] "
                "priority_levels: 18446744073709551615 default_priority_level: 4294967296 }"},
    "limited": {"max_batch": 1, "sleep_ms": 800, "scheduling":
                "dynamic_batching { default_queue_policy { max_queue_size: 1 } }"},
    "timeouts": {"max_batch": 1, "sleep_ms": 2500, "scheduling":
                 "dynamic_batching { default_queue_policy { timeout_action: REJECT "
                 "default_timeout_microseconds: 300000 allow_timeout_override: true } }"},
    "delayed": {"max_batch": 1, "sleep_ms": 900, "scheduling":
                "dynamic_batching { default_queue_policy { timeout_action: DELAY "
                "default_timeout_microseconds: 500000 } }"},
    # two instances and per-request durations: a later request can finish first
    "ordered": {"max_batch": 1, "count": 2, "input_sleep": True, "scheduling":
                "dynamic_batching { preserve_ordering: true }"},
    "unordered": {"max_batch": 1, "count": 2, "input_sleep": True,
                  "scheduling": "dynamic_batching { }"},
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("batching")
    srv = Server([write_repo(root, MODELS)])
    yield srv, root
    srv.stop()


def _inputs(mod, shape, value=1.0):  # value: sleep ms for the input_sleep models
    x = np.full(shape, value, np.float32)
    inp = mod.InferInput("INPUT0", list(shape), "FP32")
    inp.set_data_from_numpy(x)
    return [inp]


def http_infer(srv, model, shape=(1, 2), request_id="", value=1.0, **kw):
    c = httpclient.InferenceServerClient(srv.url, network_timeout=30)
    try:
        return c.infer(model, _inputs(httpclient, shape, value), request_id=request_id, **kw)
    finally:
        c.close()


def grpc_infer(srv, model, shape=(1, 2), request_id="", value=1.0, **kw):
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        return c.infer(model, _inputs(grpcclient, shape, value), request_id=request_id, **kw)
    finally:
        c.close()


def _seq(result) -> int:
    return int(result.as_numpy("SEQ")[0, 0])


def _batch(result) -> int:
    return int(result.as_numpy("BATCH")[0, 0])


def _together(calls):
    """Run ``calls`` (thunks) at once from threads released by one barrier."""
    gate = threading.Barrier(len(calls))

    def go(fn):
        gate.wait()
        return fn()
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(go, fn) for fn in calls]]


def _start_blocker(srv, root, model, pool):
    """Occupy the model's only instance; returns the blocker's future once it runs."""
    fut = pool.submit(grpc_infer, srv, model, request_id="blocker")
    wait_for(lambda: any("blocker" in e.get("ids", ()) for e in events(root, model)),
             what=f"{model} blocker to start")
    return fut


def test_http_and_grpc_requests_batch_together(env):
    srv, _ = env
    results = _together([lambda: http_infer(srv, "batched"), lambda: http_infer(srv, "batched"),
                         lambda: grpc_infer(srv, "batched"), lambda: grpc_infer(srv, "batched")])
    # preferred_batch_size 4 is reached inside the 200 ms window: one execution of 4.
    assert [_batch(r) for r in results] == [4, 4, 4, 4]
    assert len({_seq(r) for r in results}) == 1
    np.testing.assert_array_equal(results[0].as_numpy("OUTPUT0"), np.ones((1, 2), np.float32))


def test_mismatched_shape_runs_separately(env):
    srv, _ = env
    results = _together([lambda: http_infer(srv, "batched", (1, 2)),
                         lambda: grpc_infer(srv, "batched", (1, 2)),
                         lambda: http_infer(srv, "batched", (1, 3)),
                         lambda: grpc_infer(srv, "batched", (1, 2))])
    odd = results[2]
    assert odd.as_numpy("OUTPUT0").shape == (1, 3)
    assert _batch(odd) == 1
    assert {_seq(odd)}.isdisjoint({_seq(r) for i, r in enumerate(results) if i != 2})


def test_max_batch_size_respected(env):
    srv, _ = env
    calls = [(lambda: http_infer(srv, "capped", (3, 2))) for _ in range(3)]
    calls += [(lambda: grpc_infer(srv, "capped", (3, 2))) for _ in range(3)]
    results = _together(calls)
    # 2 x 3 rows fit in max_batch_size 8, 3 x 3 do not: three executions of 6
    assert [_batch(r) for r in results] == [6] * 6


def test_high_priority_served_before_earlier_low(env):
    srv, root = env
    with ThreadPoolExecutor(6) as pool:
        blocker = _start_blocker(srv, root, "prio", pool)
        low = []
        for i in range(3):
            low.append(pool.submit(http_infer, srv, "prio", request_id=f"low{i}"))
            time.sleep(0.03)
        high = pool.submit(grpc_infer, srv, "prio", request_id="high", priority=1)
        first = _seq(blocker.result())
        assert _seq(high.result()) == first + 1
        assert sorted(_seq(f.result()) for f in low) == [first + 2, first + 3, first + 4]


def test_the_largest_priority_levels_over_http_and_grpc(env):
    # Default-level requests of 2 (HTTP) and 1 (gRPC, priority 2^32 named) rows, then 2
    # rows at priority 1: that one goes first and makes the preferred 4 with the first.
    srv, root = env
    with ThreadPoolExecutor(4) as pool:
        blocker = _start_blocker(srv, root, "maxprio", pool)
        first = pool.submit(http_infer, srv, "maxprio", (2, 2), request_id="first")
        time.sleep(0.03)
        second = pool.submit(grpc_infer, srv, "maxprio", request_id="second",
                             priority=2**32)
        time.sleep(0.03)
        high = pool.submit(grpc_infer, srv, "maxprio", (2, 2), request_id="high", priority=1)
        after = _seq(blocker.result())
        assert (_seq(high.result()), _batch(high.result())) == (after + 1, 4)
        assert (_seq(first.result()), _batch(first.result())) == (after + 1, 4)
        assert (_seq(second.result()), _batch(second.result())) == (after + 2, 1)


def test_max_queue_size_rejects_at_once(env):
    srv, root = env
    with ThreadPoolExecutor(3) as pool:
        blocker = _start_blocker(srv, root, "limited", pool)
        queued = pool.submit(http_infer, srv, "limited", request_id="queued")
        time.sleep(0.15)              # let "queued" reach the scheduler's queue
        t0 = time.monotonic()
        with pytest.raises(InferenceServerException) as http_err:
            http_infer(srv, "limited", request_id="full")
        with pytest.raises(InferenceServerException) as grpc_err:
            grpc_infer(srv, "limited")
        elapsed = time.monotonic() - t0
        assert http_err.value.status() == "503"
        assert http_err.value.message() == "[request id: full] Exceeds maximum queue size"
        assert grpc_err.value.status() == "StatusCode.UNAVAILABLE"
        assert grpc_err.value.message() == "[request id: <id_unknown>] Exceeds maximum queue size"
        assert elapsed < 0.5          # not after the 800 ms execution ahead of them
        blocker.result()
        queued.result()


def _expect_timeout(call) -> float:
    t0 = time.monotonic()
    with pytest.raises(InferenceServerException) as err:
        call()
    assert "Request timeout expired" in err.value.message()
    return time.monotonic() - t0


def test_timeout_rejects_while_instance_busy(env):
    srv, root = env
    with ThreadPoolExecutor(2) as pool:
        blocker = _start_blocker(srv, root, "timeouts", pool)
        # default 300 ms: answered near expiry although the instance stays busy for 2.5 s
        t = _expect_timeout(lambda: http_infer(srv, "timeouts"))
        assert 0.28 <= t < 0.8, t
        # a smaller per-request timeout overrides the default
        t = _expect_timeout(lambda: grpc_infer(srv, "timeouts", timeout=100_000))
        assert 0.09 <= t < 0.28, t
        # a larger one is ignored (only a lower override applies)
        t = _expect_timeout(lambda: http_infer(srv, "timeouts", timeout=2_000_000))
        assert 0.28 <= t < 0.8, t
        assert not blocker.done()
        blocker.result()


def test_delay_serves_expired_after_fresh(env):
    srv, root = env
    with ThreadPoolExecutor(3) as pool:
        blocker = _start_blocker(srv, root, "delayed", pool)
        old = pool.submit(http_infer, srv, "delayed", request_id="old")
        # "old" passes its 500 ms timeout (delayed, not rejected) before "fresh" comes;
        # "fresh" waits only ~300 ms for the blocker, so it is still in time.
        time.sleep(0.6)
        fresh = pool.submit(grpc_infer, srv, "delayed", request_id="fresh")
        first = _seq(blocker.result())
        assert _seq(fresh.result()) == first + 1
        assert _seq(old.result()) == first + 2


def _finish_order(srv, model) -> list[str]:
    """A slow request, then a fast one on the other instance: who is answered first?"""
    finished: list[str] = []
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        for rid, ms in (("slow", 600.0), ("fast", 10.0)):
            client.async_infer(model, _inputs(grpcclient, (1, 2), ms),
                               lambda result, error, rid=rid: finished.append(
                                   rid if error is None else f"{rid}: {error}"),
                               request_id=rid)
            time.sleep(0.05)
        wait_for(lambda: len(finished) == 2, what=f"{model} answers")
    finally:
        client.close()
    return finished


def test_preserve_ordering(env):
    srv, _ = env
    assert _finish_order(srv, "unordered") == ["fast", "slow"]   # the control
    assert _finish_order(srv, "ordered") == ["slow", "fast"]
