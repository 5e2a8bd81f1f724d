"""Fuzz: malformed HTTP, gRPC and shared-memory requests against one real tritond.

Bounded (seeded; every loop capped in count and time; loopback only; about 30 s
on 2 cores). The server must answer every request with a client error (HTTP
4xx; 501 is Triton's answer for an unsupported feature), never 500 or another
5xx, never gRPC UNKNOWN/INTERNAL, never hang (5 s per request), and every
tritond process must be alive at the end, with inference still working.
"""
from __future__ import annotations

import json
import os
import pathlib
import random
import socket
import struct
import time

import grpc
import numpy as np
import posix_ipc
import pytest
import tritonclient.http as httpclient

from tests.server import REPO, Server, server_id_of
from tritond.protos import grpc_service_pb2 as pb

SEED = 16
HANG_S = 5.0
BUDGET_S = 25.0               # per family of requests
GRPC_BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
            grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.fixture(scope="module")
def srv():
    s = Server([REPO], "--http-header-timeout=1", "--allow-client-shm=true")
    s.pids = set(s.children())
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def alive(srv):
    yield
    assert srv.proc.poll() is None, srv.output()
    assert set(srv.children()) == srv.pids, "a tritond process died or was replaced"
    c = httpclient.InferenceServerClient(srv.url)
    x = np.arange(8, dtype=np.float32)
    inp = httpclient.InferInput("INPUT0", [8], "FP32")
    inp.set_data_from_numpy(x)
    assert np.array_equal(c.infer("identity_fp32", [inp]).as_numpy("OUTPUT0"), x)
    c.close()
    assert "Traceback" not in srv.output()


# ------------------------------------------------------------------ HTTP


def _exchange(srv, raw: bytes) -> int:
    """Send ``raw`` on a fresh connection; the status, or 0 if closed without one.
    Fails the test on a hang."""
    c = socket.create_connection(("127.0.0.1", srv.http_port), timeout=HANG_S)
    start = time.monotonic()
    data = b""
    try:
        c.sendall(raw)
    except OSError:
        pass                              # refused early: read what came back
    try:
        while b"\r\n\r\n" not in data:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pytest.fail(f"hang ({time.monotonic() - start:.1f}s) on {raw[:200]!r}")
    except ConnectionResetError:
        pass
    finally:
        c.close()
    if not data:
        return 0
    return int(data.split(b" ", 2)[1])


def _request(path: str, body: bytes, headers: dict | None = None, length: int | None = None,
             method: str = "POST") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: fuzz", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _json_bodies(rng: random.Random):
    good = {"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
                        "data": list(range(16))},
                       {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
                        "data": list(range(16))}]}
    text = json.dumps(good).encode()
    yield text[: rng.randrange(len(text))]                      # truncated
    yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))   # noise
    yield b"[" * 5000 + b"]" * 5000                              # deep nesting
    yield b'{"inputs":' + b"[" * 150 + b"]" * 150 + b"}"
    yield json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
                                  "data": [[[[1]]]] * 16}]}).encode()
    for field, value in (("shape", [-1, 16]), ("shape", [2 ** 62, 2 ** 62]), ("shape", "x"),
                         ("datatype", "FP128"), ("datatype", 7), ("name", None),
                         ("data", "abc"), ("data", [1.5] * 16), ("data", [2 ** 40] * 16),
                         ("parameters", {"binary_data_size": -5}),
                         ("parameters", {"shared_memory_region": "nope"}),
                         ("parameters", {"shared_memory_region": "nope",
                                         "shared_memory_byte_size": 2 ** 63})):
        doc = json.loads(text)
        doc["inputs"][rng.randrange(2)][field] = value
        yield json.dumps(doc).encode()
    doc = json.loads(text)
    doc["outputs"] = [{"name": "OUTPUT0", "parameters": {"classification": -3}}]
    yield json.dumps(doc).encode()
    doc["outputs"] = [{"name": "OUTPUT0", "parameters": {"binary_data": "yes"}}] * 3
    yield json.dumps(doc).encode()


def _binary_lies(rng: random.Random):
    """(body, headers) pairs whose binary framing lies about sizes."""
    header = json.dumps({"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    blob = np.ones(4, np.float32).tobytes()
    for hlen in (len(header) + 100, -1, "x", 2 ** 40, 0):
        yield header + blob, {"Inference-Header-Content-Length": hlen}
    yield header + blob[:7], {"Inference-Header-Content-Length": len(header)}
    yield header + blob + blob, {"Inference-Header-Content-Length": len(header)}
    strings = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "BYTES",
                                      "parameters": {"binary_data_size": 8}}]}).encode()
    yield strings + struct.pack("<I", 2 ** 31) + b"abcd", {
        "Inference-Header-Content-Length": len(strings)}
    yield bytes(rng.randrange(256) for _ in range(64)), {"Inference-Header-Content-Length": 0}
    yield b"\x1f\x8b" + bytes(30), {"Content-Encoding": "gzip"}
    yield b"x" * 100, {"Content-Encoding": "br"}


def test_http_fuzz(srv):
    rng = random.Random(SEED)
    cases: list[bytes] = []
    paths = ["/v2/models/simple/infer", "/v2/models/identity_fp32/infer",
             "/v2/models/simple_string/infer", "/v2/models/simple/versions/99/infer",
             "/v2/models/%00/infer", "/v2/models/" + "a" * 5000 + "/infer"]
    for body in _json_bodies(rng):
        cases.append(_request(rng.choice(paths[:3]), body))
    for body, headers in _binary_lies(rng):
        cases.append(_request(paths[1], body, headers))
    for path in paths:
        cases.append(_request(path, b"{}"))
    # headers: malformed, duplicated, oversized, lying lengths
    cases += [
        b"POST /v2/models/simple/infer HTTP/1.1\r\nContent-Length: -1\r\n\r\n{}",
        b"POST /v2/models/simple/infer HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n{}",
        b"POST /v2/models/simple/infer HTTP/1.1\r\nContent-Length: zz\r\n\r\n{}",
        b"POST /v2/models/simple/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /v2/models/simple/infer HTTP/1.1\r\nX: " + b"y" * 200_000 + b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"\x00\x01\x02\x03" * 64,
        b"GET / HTTP/9.9\r\n\r\n",
        _request(paths[0], b"{}", length=1 << 40),               # huge declared lengths
        _request(paths[1], b"", {"Inference-Header-Content-Length": 10}, length=1 << 30),
        _request(paths[0], b"{}", length=100),                   # shorter than declared
    ]
    cases += [_request(p, b"", method="GET") for p in (
        "/v2/models/simple/config", "/v2/models/%2e%2e/config", "/v2/models/simple/stats",
        "/v2/systemsharedmemory/region/" + "r" * 300 + "/status", "/v2/models/\x7f/ready")]
    for _ in range(60):                                          # random mutations
        raw = bytearray(rng.choice(cases))
        for _ in range(rng.randrange(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        cases.append(bytes(raw))
    deadline = time.monotonic() + BUDGET_S
    statuses = []
    for raw in cases:
        if time.monotonic() > deadline:
            break
        status = _exchange(srv, raw)
        statuses.append(status)
        assert status < 500 or status == 501, (status, raw[:300])
    assert len(statuses) == len(cases), "the fuzz ran out of time"
    assert statuses.count(0) < len(statuses) // 4      # most got an answer, not a close
    print("HTTP statuses:", {s: statuses.count(s) for s in sorted(set(statuses))})


# ------------------------------------------------------------------ gRPC


def test_grpc_fuzz(srv):
    from tritond.frontend.grpc.servicer import _UNARY
    rng = random.Random(SEED)
    valid = {
        "ModelInfer": pb.ModelInferRequest(
            model_name="simple", inputs=[pb.ModelInferRequest.InferInputTensor(
                name=f"INPUT{i}", datatype="INT32", shape=[1, 16]) for i in (0, 1)],
            raw_input_contents=[bytes(64), bytes(64)]).SerializeToString(),
        "ModelMetadata": pb.ModelMetadataRequest(name="simple").SerializeToString(),
        "SystemSharedMemoryRegister": pb.SystemSharedMemoryRegisterRequest(
            name="r", key="k", offset=0, byte_size=64).SerializeToString(),
        "LogSettings": b"", "TraceSetting": b"",
    }
    deadline = time.monotonic() + BUDGET_S
    with grpc.insecure_channel(srv.grpc_url) as channel:
        for method in [*_UNARY, "ModelInfer"]:
            call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
            base = valid.get(method, b"")
            for i in range(10):
                if time.monotonic() > deadline:
                    pytest.fail("the gRPC fuzz ran out of time")
                if i < 4 or not base:
                    payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
                else:
                    raw = bytearray(base)
                    for _ in range(rng.randrange(1, 4)):
                        raw[rng.randrange(len(raw))] = rng.randrange(256)
                    payload = bytes(raw)
                try:
                    call(payload, timeout=HANG_S)
                except grpc.RpcError as exc:
                    assert exc.code() not in GRPC_BAD, (method, exc.code(), exc.details())
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        payloads = [bytes(rng.randrange(256) for _ in range(32)) for _ in range(5)]
        payloads.append(valid["ModelInfer"])
        replies = list(stream(iter(payloads), timeout=HANG_S))
        assert len(replies) == len(payloads)


# ------------------------------------------------------------------ shared memory


def test_shm_fuzz(srv):
    rng = random.Random(SEED)
    http = httpclient.InferenceServerClient(srv.url)
    sid = server_id_of(srv.proc.pid)
    ours = sorted(p.name for p in pathlib.Path("/dev/shm").glob(f"tritond-{sid}-*"))
    key = f"/fuzz-{os.getpid()}"
    seg = posix_ipc.SharedMemory(key, posix_ipc.O_CREX, size=4096)
    codes = []
    try:
        keys = ["a\0b", "/a/b", "..", "/", "", "x" * 400, "/nope-" + str(os.getpid()),
                *ours[:2], "/" + ours[0], key]
        for i, k in enumerate(keys):
            for offset, size in ((0, 64), (4000, 200), (2 ** 63, 1), (0, 2 ** 64 - 1)):
                try:
                    http.register_system_shared_memory(f"r{i}-{offset}", k, size, offset)
                    codes.append(200)
                except httpclient.InferenceServerException as exc:
                    codes.append(int(exc.status()))
        http.unregister_system_shared_memory()
        x = np.arange(1024, dtype=np.float32)
        os.pwrite(seg.fd, x.tobytes(), 0)
        http.register_system_shared_memory("live", key, 4096)
        inp = httpclient.InferInput("INPUT0", [1024], "FP32")
        for offset, size in ((0, 4096), (4, 4092), (4096, 0), (0, 8192), (2 ** 62, 4)):
            inp.set_shared_memory("live", size, offset)
            try:
                http.infer("identity_fp32", [inp])
                codes.append(200)
            except httpclient.InferenceServerException as exc:
                codes.append(int(exc.status()))
        for size in (rng.randrange(1, 4096), 0, 4096):          # truncate, use, restore
            os.ftruncate(seg.fd, size)
            inp = httpclient.InferInput("INPUT0", [1024], "FP32")
            inp.set_shared_memory("live", 4096)
            try:
                http.infer("identity_fp32", [inp])
                codes.append(200)
            except httpclient.InferenceServerException as exc:
                codes.append(int(exc.status()))
                assert "was truncated to" in exc.message() or size == 4096, exc.message()
        http.unregister_system_shared_memory("live")
    finally:
        http.close()
        seg.close_fd()
        seg.unlink()
    assert codes and all(c < 500 for c in codes), codes
