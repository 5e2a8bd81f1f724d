"""The soak's scenarios: each runs ``n`` requests against a running server with the real
tritonclient and returns how many were answered as expected (an error that the scenario
provokes counts as expected). ``srv`` has ``url`` (HTTP) and ``grpc_url``."""
from __future__ import annotations

import json
import queue
import socket
import time
import uuid

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shmc
from tritonclient.utils import InferenceServerException

X = np.arange(16, dtype=np.float32)
Y = np.ones(16, np.float32)


def _add_sub(mod, binary=True, x=X, y=Y, dtype="FP32", shape=(16,)):
    ins = [mod.InferInput(name, list(shape), dtype) for name in ("INPUT0", "INPUT1")]
    kw = {"binary_data": binary} if mod is httpclient else {}
    ins[0].set_data_from_numpy(x, **kw)
    ins[1].set_data_from_numpy(y, **kw)
    return ins


def _check(result) -> int:
    return int(np.array_equal(result.as_numpy("OUTPUT0"), X + Y))


def http_json(srv, n):
    c = httpclient.InferenceServerClient(srv.url)
    outs = [httpclient.InferRequestedOutput(o, binary_data=False) for o in ("OUTPUT0", "OUTPUT1")]
    ins = _add_sub(httpclient, binary=False)
    ok = sum(_check(c.infer("add_sub", ins, outputs=outs)) for _ in range(n))
    c.close()
    return ok


def http_binary(srv, n, model="add_sub"):
    c = httpclient.InferenceServerClient(srv.url)
    ins = _add_sub(httpclient)
    ok = sum(_check(c.infer(model, ins)) for _ in range(n))
    c.close()
    return ok


def grpc_unary(srv, n):
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    ins = _add_sub(grpcclient)
    ok = sum(_check(c.infer("add_sub", ins)) for _ in range(n))
    c.close()
    return ok


def grpc_stream(srv, n, window=32):
    """square_int32 (decoupled) with IN=2: two responses and an empty final each."""
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    done: queue.Queue = queue.Queue()
    c.start_stream(callback=lambda result, error: done.put((result, error)))
    inp = grpcclient.InferInput("IN", [1], "INT32")
    inp.set_data_from_numpy(np.array([2], np.int32))
    ok = 0
    for start in range(0, n, window):
        batch = min(window, n - start)
        for i in range(batch):
            c.async_stream_infer("square_int32", [inp], request_id=str(start + i),
                                 enable_empty_final_response=True)
        finals = 0
        while finals < batch:
            result, error = done.get(timeout=30)
            if error is None and result.get_response().parameters[
                    "triton_final_response"].bool_param:
                finals += 1
        ok += batch
    c.stop_stream()
    c.close()
    return ok


def shm_cycles(srv, n):
    """Register -> infer (inputs and outputs in a region) -> unregister, a new region each."""
    c = httpclient.InferenceServerClient(srv.url)
    ok = 0
    for _ in range(n):
        name = f"soak-{uuid.uuid4().hex[:12]}"
        h = shmc.create_shared_memory_region(name, "/" + name, 128)
        try:
            shmc.set_shared_memory_region(h, [X, Y])
            c.register_system_shared_memory(name, "/" + name, 128)
            ins = _add_sub(httpclient)
            ins[0].set_shared_memory(name, 64)
            ins[1].set_shared_memory(name, 64, offset=64)
            out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)
            out.set_shared_memory(name, 64)
            c.infer("add_sub", ins, outputs=[out, httpclient.InferRequestedOutput("OUTPUT1")])
            ok += int(np.array_equal(shmc.get_contents_as_numpy(h, np.float32, [16]), X + Y))
            c.unregister_system_shared_memory(name)
        finally:
            shmc.destroy_shared_memory_region(h)
    c.close()
    return ok


def ensemble(srv, n):
    c = httpclient.InferenceServerClient(srv.url)
    inp = httpclient.InferInput("IN", [16], "FP32")
    inp.set_data_from_numpy(X)
    ok = sum(int(np.array_equal(c.infer("pipeline", [inp]).as_numpy("OUT"), X * 2 + 1))
             for _ in range(n))
    c.close()
    return ok


def bls(srv, n):
    return http_binary(srv, n, model="bls")


def sequences(srv, n, length=4):
    """seq_direct: sequences of ``length`` requests, start on the first, end on the last."""
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    inp = grpcclient.InferInput("INPUT", [1, 1], "INT32")
    inp.set_data_from_numpy(np.array([[1]], np.int32))
    ok = 0
    for i in range(n):
        seq, step = 1_000_000 + i // length, i % length
        r = c.infer("seq_direct", [inp], sequence_id=seq, sequence_start=step == 0,
                    sequence_end=step == length - 1)
        # the accumulator adds the correlation id at the end
        want = step + 1 + (seq if step == length - 1 else 0)
        ok += int(r.as_numpy("OUTPUT")[0][0] == want)
    c.close()
    return ok


def _bad_requests(srv, h, g, region):
    """Each bad request in turn: (client call, expected to fail)."""
    ints = np.arange(16, dtype=np.int32)
    bad_off = _add_sub(httpclient)
    bad_off[0].set_shared_memory(region, 64, offset=4096)
    return [
        lambda: h.infer("add_sub", _add_sub(httpclient, x=X[:8], y=Y[:8], shape=(8,))),
        lambda: h.infer("add_sub", _add_sub(httpclient, x=ints, y=ints, dtype="INT32")),
        lambda: h.infer("no_such_model", _add_sub(httpclient)),
        lambda: h.infer("add_sub", bad_off),
        lambda: g.infer("add_sub", _add_sub(grpcclient, x=X[:8], y=Y[:8], shape=(8,))),
        lambda: g.infer("add_sub", _add_sub(grpcclient, x=ints, y=ints, dtype="INT32")),
        lambda: g.infer("no_such_model", _add_sub(grpcclient)),
    ]


def bad_inputs(srv, n):
    """Validation failures (shape, dtype, unknown model, shm offset) between good requests."""
    h = httpclient.InferenceServerClient(srv.url)
    g = grpcclient.InferenceServerClient(srv.grpc_url)
    region = f"soak-bad-{uuid.uuid4().hex[:8]}"
    handle = shmc.create_shared_memory_region(region, "/" + region, 128)
    h.register_system_shared_memory(region, "/" + region, 128)
    bad = _bad_requests(srv, h, g, region)
    good = _add_sub(httpclient)
    ok = 0
    try:
        for i in range(n):
            if i % 2 == 0:
                ok += _check(h.infer("add_sub", good))
                continue
            try:
                bad[(i // 2) % len(bad)]()
            except InferenceServerException:
                ok += 1
    finally:
        h.unregister_system_shared_memory(region)
        shmc.destroy_shared_memory_region(handle)
        h.close()
        g.close()
    return ok


BIG = np.ones(1 << 18, np.float32)      # 1 MiB: staged in the frontend's input arena


def _raw_infer(srv, cut: str) -> None:
    """An identity_fp32 request on a raw socket, closed ``mid-body`` or ``before-answer``."""
    head = json.dumps({"inputs": [{"name": "INPUT0", "shape": [BIG.size], "datatype": "FP32",
                                   "parameters": {"binary_data_size": BIG.nbytes}}]}).encode()
    host, port = srv.url.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\n"
                 b"Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(head), len(head) + BIG.nbytes, head))
    body = BIG.tobytes()
    sock.sendall(body[: len(body) // 2] if cut == "mid-body" else body)
    sock.close()


def disconnects(srv, n):
    """Clients that close after a large body (before the answer) or halfway through it."""
    c = httpclient.InferenceServerClient(srv.url)
    inp = httpclient.InferInput("INPUT0", [BIG.size], "FP32")
    inp.set_data_from_numpy(BIG)
    ok = 0
    for i in range(n):
        if i % 3 == 2:      # a good one now and then: the server still answers
            ok += int(c.infer("identity_fp32", [inp]).as_numpy("OUTPUT0").size == BIG.size)
        else:
            _raw_infer(srv, "mid-body" if i % 3 else "before-answer")
            ok += 1
    c.close()
    return ok


def grpc_cancel(srv, n):
    """async_infer on the slow model, cancelled at once or after 1-3 ms."""
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    inp = grpcclient.InferInput("IN", [1, 4], "FP32")
    inp.set_data_from_numpy(np.ones((1, 4), np.float32))
    done: queue.Queue = queue.Queue()
    for i in range(n):
        ctx = c.async_infer("slow", [inp], callback=lambda result, error: done.put(error))
        if i % 4:
            time.sleep(0.001 * (i % 4))
        ctx.cancel()
    answered = [done.get(timeout=30) for _ in range(n)]
    c.close()
    return len(answered)


SCENARIOS = {
    "http_json": http_json, "http_binary": http_binary, "grpc": grpc_unary,
    "grpc_stream": grpc_stream, "shm_cycles": shm_cycles, "ensemble": ensemble, "bls": bls,
    "sequences": sequences, "bad_inputs": bad_inputs, "disconnects": disconnects,
    "grpc_cancel": grpc_cancel,
}
