"""Issue 16 on a real tritond: internal channels, model paths, client regions, ids, HTTP limits.

One server for the module: explicit model control, a 2 s header timeout.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import struct
import time

import grpc
import numpy as np
import posix_ipc
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, serialize_byte_tensor

from tests.server import REPO, Server, server_id_of
from tritond import messages
from tritond.framing import frame

TRAVERSAL = "model name must not contain path traversal characters"
EVIL_PY = '''
import pathlib
pathlib.Path({marker!r}).write_text("ran")

class TritonPythonModel:
    def execute(self, requests):
        return []
'''


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    repo = root / "repo"
    for name in ("simple", "identity_fp32", "simple_string", "add_sub"):   # add_sub: not loaded
        shutil.copytree(REPO / name, repo / name)
    evil = root / "outside" / "evil"
    (evil / "1").mkdir(parents=True)
    marker = root / "PWNED"
    (evil / "1" / "model.py").write_text(EVIL_PY.format(marker=str(marker)))
    (evil / "config.pbtxt").write_text('backend: "python"\n')
    linked = repo / "linked"                 # a model whose file is a symlink out
    (linked / "1").mkdir(parents=True)
    (linked / "1" / "model.py").symlink_to(evil / "1" / "model.py")
    (linked / "config.pbtxt").write_text('backend: "python"\n')
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=simple",
                 "--load-model=identity_fp32", "--load-model=simple_string",
                 "--http-header-timeout=2", "--allow-client-shm=true")
    srv.repo, srv.root, srv.marker = repo, root, marker
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(hard):
    c = httpclient.InferenceServerClient(hard.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def grpc_client(hard):
    c = grpcclient.InferenceServerClient(hard.grpc_url)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def still_serving(hard, http, request):
    pids = set(hard.children()) if "reload" not in request.node.name else set()
    yield
    assert hard.proc.poll() is None, hard.output()
    x = np.arange(16, dtype=np.float32)
    assert np.array_equal(http.infer("identity_fp32", [_fp32(x)]).as_numpy("OUTPUT0"), x)
    assert pids <= set(hard.children()), "a tritond process died"


def _fp32(x):
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def _error(call, *args, **kw) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as exc:
        call(*args, **kw)
    return exc.value


def _channels(srv) -> dict[str, str]:
    """role -> abstract address of every listening tritond socket of ``srv``."""
    sid = server_id_of(srv.proc.pid)
    prefix = f"@tritond-{sid}-"
    out = {}
    for line in pathlib.Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7].startswith(prefix):
            out[fields[7][len(prefix):]] = "\0" + fields[7][1:]
    return out


# ------------------------------------------------------------------ 1. channels


def _attack(channels: dict[str, str], uid: int | None) -> dict[str, str]:
    """In a forked child (optionally as ``uid``): send each channel a valid message."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the attacker: not a process of the server
        try:
            os.close(read)
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            results = {}
            for role, addr in channels.items():
                msgs = ([messages.LoadQuery(1, addr, "add_sub"),
                         messages.UnloadQuery(2, addr, "simple")]
                        if role == "parent" else [messages.Shutdown("attack")])
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(3)
                try:
                    s.connect(addr)
                    s.sendall(frame(messages.encode(msgs)))
                    results[role] = "closed" if s.recv(1) == b"" else "answered"
                except (ConnectionResetError, BrokenPipeError):
                    results[role] = "closed"
                except OSError as exc:
                    results[role] = f"error {exc}"
                finally:
                    s.close()
            os.write(write, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.parametrize("uid", [65534, None], ids=["other-uid", "same-uid-foreign-pid"])
def test_channels_refuse_foreign_processes(hard, http, uid):
    channels = _channels(hard)
    assert {"parent", "scheduler", "frontend-0"} <= set(channels)
    assert any(role.startswith("w") for role in channels)
    results = _attack(channels, uid)
    assert results == {role: "closed" for role in channels}
    time.sleep(1.0)                                # a Shutdown or load would be under way
    assert http.is_model_ready("simple") and http.is_server_ready()
    assert not http.is_model_ready("add_sub")
    assert next(m for m in http.get_model_repository_index() if m["name"] == "add_sub") \
        .get("state", "") in ("", "UNKNOWN", "UNAVAILABLE")
    assert "refused a connection to the" in hard.output()


def test_refusals_are_logged_at_most_once_per_period(hard):
    channels = _channels(hard)
    before = hard.output().count("refused a connection to the")
    for _ in range(3):
        assert set(_attack(channels, None).values()) == {"closed"}
    # one line per process and period (10 s), however many attempts
    assert hard.output().count("refused a connection to the") - before <= len(channels)


# ------------------------------------------------------------------ 2. model paths


@pytest.mark.parametrize("name", ["../outside/evil", "/abs/outside/evil", ".."])
def test_load_refuses_names_outside_the_repository(hard, http, grpc_client, name):
    err = _error(grpc_client.load_model, name)
    assert err.status() == "StatusCode.INVALID_ARGUMENT"
    assert err.message() == f"invalid model name '{name}', {TRAVERSAL}"
    err = _error(http.load_model, name)     # a '/' splits the URL path: no such route
    assert err.status() in ("400", "404")
    assert not hard.marker.exists()


def test_http_load_with_traversal_name(hard):
    conn = socket.create_connection(("127.0.0.1", hard.http_port), timeout=5)
    conn.sendall(b"POST /v2/repository/models/../load HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 0\r\n\r\n")
    head = conn.recv(65536).decode()
    conn.close()
    assert head.startswith("HTTP/1.1 400") and TRAVERSAL in head
    assert not hard.marker.exists()


def test_config_override_cannot_point_outside(hard, http, grpc_client):
    override = json.dumps({"name": "identity_fp32", "backend": "python",
                           "default_model_filename": "../../../outside/evil/1/model.py"})
    for client in (http, grpc_client):
        err = _error(client.load_model, "identity_fp32", config=override)
        assert "model file '../../../outside/evil/1/model.py' is outside the model directory" \
            in err.message()
    assert not hard.marker.exists()
    assert http.is_model_ready("identity_fp32")      # the loaded version keeps serving


def test_symlinked_model_file_is_refused(hard, http):
    err = _error(http.load_model, "linked")
    assert "model file 'model.py' is outside the model directory" in err.message()
    assert not hard.marker.exists()


# ------------------------------------------------------------------ 3, 4. client regions


@pytest.fixture
def region():
    made = []

    def create(size: int, data: bytes = b""):
        key = f"/hard-{os.getpid()}-{len(made)}"
        shm = posix_ipc.SharedMemory(key, posix_ipc.O_CREX, size=size)
        os.pwrite(shm.fd, data, 0)
        made.append(shm)
        return key, shm
    yield create
    for shm in made:
        shm.close_fd()
        shm.unlink()


@pytest.mark.parametrize("key, words", [
    ("a\u0000b", "must not contain a NUL character"),
    ("/a/b", "must be one name with an optional leading '/'"),
    ("x" * 300, "longer than 255 bytes"),
])
def test_bad_keys_refused_over_http_and_grpc(http, grpc_client, key, words):
    for client in (http, grpc_client):
        err = _error(client.register_system_shared_memory, "bad", key, 64)
        assert words in err.message()
        assert err.status() in ("400", "StatusCode.INVALID_ARGUMENT")


def test_server_segments_cannot_be_registered(hard, http, grpc_client):
    sid = server_id_of(hard.proc.pid)
    assert len(sid) == 32 and int(sid, 16) >= 0          # 128 random bits
    ours = [p.name for p in pathlib.Path("/dev/shm").glob(f"tritond-{sid}-*")]
    assert ours
    for client in (http, grpc_client):
        for key in (ours[0], "/" + ours[0]):
            err = _error(client.register_system_shared_memory, "steal", key, 64)
            assert "is reserved for the server's own memory" in err.message()
    alias = f"hard-alias-{os.getpid()}"                 # a hard link to one: same inode
    os.link(f"/dev/shm/{ours[0]}", f"/dev/shm/{alias}")
    try:
        err = _error(http.register_system_shared_memory, "steal", alias, 64)
        assert "is reserved for the server's own memory" in err.message()
    finally:
        os.unlink(f"/dev/shm/{alias}")


def test_truncated_bytes_region_fails_the_request_not_the_frontend(hard, http, region):
    data = serialize_byte_tensor(np.array([str(i).encode() for i in range(16)], dtype=object))
    blob = data.item() if hasattr(data, "item") else bytes(data)
    key, shm = region(4096, blob)
    http.register_system_shared_memory("strings", key, 4096)
    try:
        inp = httpclient.InferInput("INPUT0", [1, 16], "BYTES")
        inp.set_shared_memory("strings", len(blob))
        assert http.infer("simple_string", [inp]).as_numpy("OUTPUT0").shape == (1, 16)
        os.ftruncate(shm.fd, 8)
        err = _error(http.infer, "simple_string", [inp])
        assert err.status() == "400"
        assert f"shared memory region '{key}' was truncated to 8 bytes" in err.message()
    finally:
        http.unregister_system_shared_memory("strings")


def test_truncated_fp32_region_fails_the_request_not_the_worker(hard, http, region):
    x = np.arange(1024, dtype=np.float32)
    key, shm = region(x.nbytes, x.tobytes())
    http.register_system_shared_memory("floats", key, x.nbytes)
    workers = set(hard.children())
    try:
        inp = httpclient.InferInput("INPUT0", [x.size], "FP32")
        inp.set_shared_memory("floats", x.nbytes)
        assert np.array_equal(http.infer("identity_fp32", [inp]).as_numpy("OUTPUT0"), x)
        os.ftruncate(shm.fd, 100)
        for _ in range(6):                               # more than the crash limit
            err = _error(http.infer, "identity_fp32", [inp])
            assert err.status() == "400" and "was truncated to 100 bytes" in err.message()
        assert set(hard.children()) == workers and http.is_model_ready("identity_fp32")
    finally:
        http.unregister_system_shared_memory("floats")


def test_requests_racing_reloads_get_neutral_unavailable(hard, http):
    """The reload storm: requests that race a reload fail (if at all) UNAVAILABLE, and
    no error text names a server segment or the server id."""
    import concurrent.futures
    sid = server_id_of(hard.proc.pid)
    x = np.arange(256, dtype=np.float32)
    errors: list[InferenceServerException] = []
    stop = time.monotonic() + 6

    def hammer():
        c = httpclient.InferenceServerClient(hard.url)
        while time.monotonic() < stop:
            try:
                c.infer("identity_fp32", [_fp32(x)])
            except InferenceServerException as exc:
                errors.append(exc)
        c.close()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer) for _ in range(4)]
        for _ in range(3):
            http.load_model("identity_fp32")
        for f in futures:
            f.result()
    for exc in errors:
        assert exc.status() == "503", (exc.status(), exc.message())
        assert sid not in exc.message() and "tritond-" not in exc.message()


# ------------------------------------------------------------------ 5. HTTP memory and time


def _rss_kib(srv) -> int:
    total = 0
    for pid in [srv.proc.pid, *srv.children()]:
        try:
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _infer_head(declared: int) -> bytes:
    return (b"POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\n"
            b"Inference-Header-Content-Length: 10\r\n"
            b"Content-Length: " + str(declared).encode() + b"\r\n\r\n")


def test_declared_body_over_the_limit_is_413_at_once(hard):
    conns = []
    for _ in range(4):
        c = socket.create_connection(("127.0.0.1", hard.http_port), timeout=5)
        c.sendall(_infer_head(1 << 30))                  # 1 GiB declared, nothing sent
        conns.append(c)
    for c in conns:
        head = c.recv(65536).decode()
        assert head.startswith("HTTP/1.1 413"), head
        assert f"request body of {1 << 30} bytes exceeds the maximum allowed input size" in head
        c.close()


def test_memory_follows_what_was_sent_not_what_was_declared(hard):
    before = _rss_kib(hard)
    conns = []
    for _ in range(8):                                   # 8 x 60 MiB declared, 64 KiB sent
        c = socket.create_connection(("127.0.0.1", hard.http_port), timeout=5)
        c.sendall(_infer_head(60 << 20) + b"\0" * (64 << 10))
        conns.append(c)
    time.sleep(0.5)
    grown = _rss_kib(hard) - before
    for c in conns:
        c.close()
    assert grown < 32 << 10, f"RSS grew by {grown} KiB"       # preallocating would be 480 MiB


@pytest.mark.parametrize("send", [
    b"",                                                                  # silent after connect
    b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\n",            # headers never end
    b"POST /v2/models/simple/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",   # body stops
], ids=["idle", "headers", "body"])
def test_slow_clients_time_out(hard, send):
    c = socket.create_connection(("127.0.0.1", hard.http_port), timeout=10)
    start = time.monotonic()
    c.sendall(send)
    if send.endswith(b"\r\n") and not send.endswith(b"\r\n\r\n"):
        for _ in range(5):                               # dribbling does not extend the limit
            time.sleep(0.5)
            try:
                c.sendall(b"X")
            except OSError:
                break
    try:
        while c.recv(65536):
            pass
    except ConnectionResetError:
        pass
    elapsed = time.monotonic() - start
    c.close()
    assert 1.5 < elapsed < 5, elapsed


def test_half_closed_client_gets_its_answer(hard):
    body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]}).encode()
    c = socket.create_connection(("127.0.0.1", hard.http_port), timeout=10)
    c.sendall(b"POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    c.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := c.recv(65536):
        data += chunk
    c.close()
    # an interim 100 Continue may come first: how the server tells a half-close from a close
    data = data.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and b'"data":[1.0,2.0,3.0,4.0]' in data


# ------------------------------------------------------------------ 6. client errors are 4xx


def _post(srv, body: bytes):
    c = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
    c.sendall(b"POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.close()
    return data.decode()


def test_deep_json_is_400(hard):
    nested = "[" * 101 + "1" + "]" * 101
    doc = '{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":' + nested + "}]}"
    data = _post(hard, doc.encode())
    assert data.startswith("HTTP/1.1 400")
    assert "JSON nesting depth exceeds maximum allowed limit (100)" in data
    data = _post(hard, b"[" * 200000 + b"]" * 200000)
    assert data.startswith("HTTP/1.1 400"), data[:200]
    # deep enough that the typed decode of a usual body (fastdecode.py) recurses too far
    for field in ('"data":', '"parameters":{"x":'):
        doc = ('{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32",' + field
               + "[" * 5000 + "]" * 5000 + ("}" if "{" in field else "") + "}]}")
        data = _post(hard, doc.encode())
        assert data.startswith("HTTP/1.1 400"), data[:200]
        assert "JSON nesting depth exceeds maximum allowed limit (100)" in data


def test_garbage_to_every_grpc_method_is_invalid_argument(hard):
    from tritond.frontend.grpc.servicer import _UNARY
    methods = [f"/inference.GRPCInferenceService/{m}" for m in [*_UNARY, "ModelInfer"]]
    methods.append("/grpc.health.v1.Health/Check")
    before = hard.output().count("Traceback")
    with grpc.insecure_channel(hard.grpc_url) as channel:
        for method in methods:
            call = channel.unary_unary(method)
            with pytest.raises(grpc.RpcError) as exc:
                call(b"\xff\xff\xff\xff\x0f", timeout=10)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert exc.value.details() == "unable to parse the request message"
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        replies = list(stream(iter([b"\xff\xff\xff\xff\x0f"]), timeout=10))
        assert len(replies) == 1 and b"unable to parse the request message" in replies[0]
    time.sleep(0.2)
    assert hard.output().count("Traceback") == before


# ------------------------------------------------------------------ 3. crash policy


def test_sigbus_deaths_do_not_count_towards_the_crash_limit():
    """SIGBUS is what a client region shrunk under a worker causes: more of those than the
    crash limit (5 in 60 s) still leave the model restarting, never UNAVAILABLE."""
    import signal

    from tests.integration.crashmodel import pid_of
    srv = Server([REPO], "--model-control-mode=explicit", "--load-model=identity_fp32")
    c = httpclient.InferenceServerClient(srv.url)
    x = np.arange(4, dtype=np.float32)
    try:
        for _ in range(7):
            (worker,) = [r for r in _channels(srv) if r.startswith("w")]
            os.kill(pid_of(srv, worker), signal.SIGBUS)
            end = time.monotonic() + 20
            while time.monotonic() < end:
                roles = [r for r in _channels(srv) if r.startswith("w")]
                if roles and roles != [worker] and c.is_model_ready("identity_fp32"):
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"no restart after SIGBUS:\n{srv.output()}")
        assert np.array_equal(c.infer("identity_fp32", [_fp32(x)]).as_numpy("OUTPUT0"), x)
        row = next(m for m in c.get_model_repository_index() if m["name"] == "identity_fp32")
        assert row["state"] == "READY", row
        assert "killed by signal SIGBUS" in srv.output()
        assert "crashes in 60s" not in srv.output()
    finally:
        c.close()
        srv.stop()
