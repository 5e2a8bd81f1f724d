"""Cancellation end to end: HTTP clients that disconnect, gRPC cancel and deadlines.

A cancelled request still queued must never reach the model (the scheduler
drops it and counts a failure); one already running is flagged, and the model
sees ``request.is_cancelled()`` turn true (it logs when, see ``sched_repo``).
"""
from __future__ import annotations

import json
import queue
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.integration.sched_repo import events, seen_ids, wait_for, write_repo
from tests.server import Server

MODELS = {"slow": {"max_batch": 1, "sleep_ms": 1000, "scheduling": "dynamic_batching { }"}}


@pytest.fixture(scope="module", params=["false", "true"])
def env(tmp_path_factory, request):
    # With pipelining a request can wait in the busy worker's socket instead
    # of the scheduler's queue: both places must honour a cancel.
    root = tmp_path_factory.mktemp("cancel")
    srv = Server([write_repo(root, MODELS)], f"--instance-pipelining={request.param}")
    yield srv, root
    srv.stop()


def _inputs():
    inp = grpcclient.InferInput("INPUT0", [1, 2], "FP32")
    inp.set_data_from_numpy(np.ones((1, 2), np.float32))
    return [inp]


def _grpc(srv, request_id, **kw):
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        return c.infer("slow", _inputs(), request_id=request_id, **kw)
    finally:
        c.close()


def _raw_http(srv, request_id) -> socket.socket:
    """Send an infer request on a raw socket and return it, unanswered."""
    body = json.dumps({"id": request_id, "inputs": [
        {"name": "INPUT0", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}).encode()
    host, port = srv.url.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    return sock


def _started(root, request_id):
    return wait_for(lambda: next((e for e in events(root, "slow") if e["event"] == "exec"
                                  and request_id in e["ids"]), None),
                    what=f"{request_id} to start")


def _cancelled_event(root, request_id):
    return wait_for(lambda: next((e for e in events(root, "slow") if e["event"] == "cancelled"
                                  and e["id"] == request_id), None),
                    timeout=5, what=f"the model to see {request_id} cancelled")


def _fail_count(srv) -> int:
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        stats = c.get_inference_statistics("slow", as_json=True)
    finally:
        c.close()
    return int(stats["model_stats"][0]["inference_stats"]["fail"].get("count", 0))


def _after_blocker(srv, pool, blocker, request_id):
    """Once the blocker finishes, a later request runs: the queue moved past the cancelled one."""
    blocker.result()
    after = pool.submit(_grpc, srv, request_id)
    after.result()


def _cancel_counted(srv, fails, blocker):
    """Queued: counted at once, blocker still running. Pipelined behind the
    blocker: the worker skips it and reports it when the blocker ends."""
    if "--instance-pipelining=false" in srv.args:
        wait_for(lambda: _fail_count(srv) > fails, timeout=3, what="the cancel to be counted")
        assert not blocker.done()            # removed from the queue while still waiting
    else:
        blocker.result()
        wait_for(lambda: _fail_count(srv) > fails, timeout=3, what="the cancel to be counted")


def test_http_disconnect_while_queued_never_runs(env):
    srv, root = env
    fails = _fail_count(srv)
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(_grpc, srv, "blocker-h")
        _started(root, "blocker-h")
        sock = _raw_http(srv, "gone-h")
        time.sleep(0.2)
        sock.close()
        _cancel_counted(srv, fails, blocker)
        _after_blocker(srv, pool, blocker, "after-h")
    assert "gone-h" not in seen_ids(root, "slow")


def test_http_disconnect_while_running_is_seen_by_model(env):
    srv, root = env
    sock = _raw_http(srv, "run-h")
    start = _started(root, "run-h")
    time.sleep(0.1)
    closed = time.monotonic()
    sock.close()
    seen = _cancelled_event(root, "run-h")
    assert seen["t"] - closed < 0.5 and seen["t"] - start["t"] < 0.9


def test_grpc_cancel_while_queued_never_runs(env):
    srv, root = env
    fails = _fail_count(srv)
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    done: queue.Queue = queue.Queue()
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(_grpc, srv, "blocker-g")
        _started(root, "blocker-g")
        call = client.async_infer("slow", _inputs(), lambda result, error: done.put(error),
                                  request_id="gone-g")
        time.sleep(0.2)
        call.cancel()
        err = done.get(timeout=5)
        assert err is not None and "CANCELLED" in str(err.status())
        _cancel_counted(srv, fails, blocker)
        _after_blocker(srv, pool, blocker, "after-g")
    client.close()
    assert "gone-g" not in seen_ids(root, "slow")


def test_grpc_deadline_while_queued_never_runs(env):
    srv, root = env
    fails = _fail_count(srv)
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(_grpc, srv, "blocker-d")
        _started(root, "blocker-d")
        with pytest.raises(InferenceServerException) as err:
            _grpc(srv, "late-d", client_timeout=0.2)
        assert "DEADLINE_EXCEEDED" in str(err.value.status())
        _cancel_counted(srv, fails, blocker)
        _after_blocker(srv, pool, blocker, "after-d")
    assert "late-d" not in seen_ids(root, "slow")


def test_grpc_cancel_while_running_is_seen_by_model(env):
    srv, root = env
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    done: queue.Queue = queue.Queue()
    call = client.async_infer("slow", _inputs(), lambda result, error: done.put(error), request_id="run-g")
    start = _started(root, "run-g")
    cancelled = time.monotonic()
    call.cancel()
    seen = _cancelled_event(root, "run-g")
    assert seen["t"] - cancelled < 0.5 and seen["t"] - start["t"] < 0.9
    done.get(timeout=5)
    client.close()
    # the worker stays healthy: the next request runs normally
    assert int(_grpc(srv, "next-g").as_numpy("SEQ")[0, 0]) > 0
