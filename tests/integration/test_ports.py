"""Listening ports as tritonserver's StartEndpoints (server src/main.cc): a metrics port
that cannot be served stops the start as a busy HTTP or gRPC port does, and
--reuse-http-port lets several servers share the HTTP port (SO_REUSEPORT)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import tritonclient.http as httpclient

from tests.integration.sched_repo import wait_for
from tests.server import Server, free_ports, server_id_of


def tritond(repo, http: int, grpc: int, metrics: int, *extra: str,
            metrics_address: bool = True) -> subprocess.Popen:
    address = ["--metrics-address=127.0.0.1"] if metrics_address else []
    return subprocess.Popen(
        [sys.executable, "-m", "tritond", "--model-repository", str(repo),
         "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", *address,
         f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Its output once it exits; a server still running then (a failing test) is killed."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        kill(proc)


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def shm_entries(marker: str) -> list[str]:
    return [e for e in os.listdir("/dev/shm") if e.startswith("tritond-") and marker in e]


def listening(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


# Checked against Triton 2.51 (tritonserver with one port held by another listener; every
# line on stderr, exit code 1), after its "Started ..." lines:
#   E1201 05:36:18.448626 1569 main.cc:257] "failed to start HTTP service: Unavailable -
#     Socket '127.0.0.1:21000' already in use "
#   E1201 05:38:35.702021 4956 main.cc:245] "failed to start GRPC service: Unavailable -
#     Socket '127.0.0.1:23461' already in use "   (after grpc's chttp2_server.cc bind line)
#   E1201 05:38:41.385522 5087 main.cc:293] "failed to start Metrics service: Unavailable -
#     Socket '127.0.0.1:23472' already in use "
# (one line each, the trailing space is Triton's). With --allow-metrics=false a busy
# metrics port is not noticed.
TRITON_LINE = '] "failed to start {} service: Unavailable - Socket \'127.0.0.1:{}\' already in use "\n'


def test_a_busy_metrics_port_stops_the_start_before_anything_runs(tmp_path):
    http, grpc, metrics = free_ports(3)
    with listening(metrics):
        proc = tritond(tmp_path, http, grpc, metrics)
        out, err = finish(proc, 30)
    assert proc.returncode == 1
    triton, ours = err.splitlines(keepends=True)
    assert triton.startswith("E") and triton.endswith(TRITON_LINE.format("Metrics", metrics))
    assert ours == (f"tritond: error: cannot serve metrics on 127.0.0.1:{metrics} "
                    "(--metrics-port): the address is already in use\n")
    assert out == ""                                   # no child started, none logged
    assert shm_entries(f"-{proc.pid}-") == []


def test_busy_http_and_grpc_ports_log_tritonservers_line_and_exit_1(tmp_path):
    http, grpc, metrics = free_ports(3)
    with listening(http):
        proc = tritond(tmp_path, http, grpc, metrics)
        out, err = finish(proc, 30)
    assert proc.returncode == 1 and out == ""
    assert err.splitlines(keepends=True)[0].endswith(TRITON_LINE.format("HTTP", http))
    assert f"tritond: error: cannot serve HTTP on 127.0.0.1:{http} (--http-port)" in err
    with listening(grpc), listening(http):
        proc = tritond(tmp_path, http, grpc, metrics)
        out, err = finish(proc, 30)
    # tritonserver starts gRPC first and stops there: its one line names gRPC
    assert proc.returncode == 1 and out == ""
    triton, *ours = err.splitlines(keepends=True)
    assert triton.endswith(TRITON_LINE.format("GRPC", grpc))
    assert len(ours) == 2 and all(line.startswith("tritond: error: ") for line in ours)


def test_a_metrics_port_taken_after_the_check_stops_the_server(tmp_path):
    """The port is taken between the parent's preflight and frontend 0's bind: as
    tritonserver's "failed to start Metrics service", the server exits with failure."""
    for _ in range(3):     # on a loaded host the frontend may bind first: start again
        http, grpc, metrics = free_ports(3)
        proc = tritond(tmp_path, http, grpc, metrics)
        try:
            # The parent's channel exists only after the preflight; the frontend binds
            # after its own start and Setup (a second or so later).
            server_id = wait_for(lambda: _server_id(proc), 30, "the parent's channel")
        except BaseException:
            kill(proc)
            raise
        try:
            held = listening(metrics)
        except OSError:
            kill(proc)
            continue
        with held:
            out, err = finish(proc, 60)
        break
    else:
        raise AssertionError("the frontend bound the metrics port first three times")
    assert proc.returncode == 1, out + err
    assert TRITON_LINE.format("Metrics", metrics) in err
    assert f"cannot bind 127.0.0.1:{metrics}: Address already in use" in err
    assert "exited with code 3 unexpectedly: stopping the server (exit code 1)" in err
    assert "tritond ready" not in out + err
    assert shm_entries(server_id) == []


def test_a_frontend_that_cannot_bind_grpc_logs_tritonservers_line(tmp_path):
    """--reuse-grpc-port skips the preflight bind: the frontend's own bind fails on a port
    another program holds without SO_REUSEPORT, and says so as tritonserver does."""
    http, grpc, metrics = free_ports(3)
    with listening(grpc):
        proc = tritond(tmp_path, http, grpc, metrics, "--reuse-grpc-port=true")
        out, err = finish(proc, 60)
    assert proc.returncode == 1, out + err
    assert TRITON_LINE.format("GRPC", grpc) in err
    assert f"failed to bind the gRPC server to 127.0.0.1:{grpc}" in err
    assert "tritond ready" not in out + err


def test_metrics_listen_on_the_http_address_unless_told_otherwise(tmp_path):
    """tritonserver's --metrics-address defaults to --http-address (command_line_parser.cc):
    --http-address 127.0.0.1 keeps /metrics off every other address."""
    http, grpc, metrics = free_ports(3)
    proc = tritond(tmp_path, http, grpc, metrics, metrics_address=False)
    try:
        wait_for(lambda: _metrics_answer("127.0.0.1", metrics, proc), 60, "/metrics")
        assert _metrics_answer("127.0.0.2", metrics, proc) is None    # 0.0.0.0 would answer
    finally:
        out, err = _stop(proc)
    assert f"Started Metrics Service at 127.0.0.1:{metrics}" in out + err


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    return finish(proc, 60)


def _metrics_answer(host: str, port: int, proc: subprocess.Popen) -> int | None:
    assert proc.poll() is None, proc.communicate()
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            return int(sock.recv(64).split()[1])
    except OSError:
        return None


def _server_id(proc: subprocess.Popen) -> str | None:
    assert proc.poll() is None, proc.communicate()
    try:
        return server_id_of(proc.pid)
    except (LookupError, OSError):
        return None


def test_metrics_off_ignores_a_busy_metrics_port(tmp_path):
    http, grpc, metrics = free_ports(3)
    with listening(metrics):
        srv = Server([tmp_path], f"--metrics-port={metrics}", "--allow-metrics=false")
        assert srv.stop() == 0           # it served: /v2/health/ready answered 200
    assert "Metrics" not in srv.output()


def test_two_servers_share_the_http_port_with_reuse_http_port(tmp_path):
    """tritonserver --reuse-http-port (evhtp's REUSEPORT flag): both servers bind the port
    and the kernel spreads new connections over them."""
    (port,) = free_ports(1)
    servers = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            srv = Server([tmp_path / name], f"--id={name}", f"--http-port={port}",
                         "--reuse-http-port=true", wait_ready=False)
            servers.append(srv)
            wait_for(lambda: "tritond ready" in _running(srv).output(), 90, f"server {name}")
        a, b = servers
        assert _names(port, 40) == {"a", "b"}      # 2 of 2**40 runs would see one only
        a.stop()
        assert _names(port, 10) == {"b"}
        # Without the flag a second server is refused as before (preflight binds plainly).
        proc = tritond(tmp_path / "a", port, *free_ports(2))
        _, err = finish(proc, 30)
        assert proc.returncode == 1
        assert f"cannot serve HTTP on 127.0.0.1:{port} (--http-port)" in err
    finally:
        for srv in servers:
            srv.stop()


def _running(srv: Server) -> Server:
    assert srv.proc.poll() is None, srv.output()
    return srv


def _names(port: int, connections: int) -> set[str]:
    """The server ids that answer ``connections`` new connections to the port."""
    names = set()
    for _ in range(connections):
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            names.add(client.get_server_metadata()["name"])
        finally:
            client.close()
        time.sleep(0.01)
    return names


def test_a_bind_failure_while_models_load_stops_at_once(tmp_path):
    """The frontend's bind fails while the workers still start or load: the stop does not
    wait the 10 s stop bound for each of them (they serve nothing yet)."""
    from tests.server import REPO

    http, grpc, metrics = free_ports(3)
    with listening(http):
        proc = tritond(REPO, http, grpc, metrics, "--reuse-http-port=true")
        out, err = finish(proc, 60)
    assert proc.returncode == 1, out + err
    assert TRITON_LINE.format("HTTP", http) in err
    assert "did not stop within" not in out + err


def test_a_busy_port_and_a_log_file_that_cannot_be_opened_are_both_reported(tmp_path):
    """tritonserver's line goes to stderr when --log-file is one of the problems (opening it
    for that line raised a traceback instead of the start-up's error lines)."""
    http, grpc, metrics = free_ports(3)
    log_file = tmp_path / "missing" / "tritond.log"
    with listening(http):
        proc = tritond(tmp_path, http, grpc, metrics, f"--log-file={log_file}")
        out, err = finish(proc, 30)
    assert proc.returncode == 1 and out == "", err
    assert "Traceback" not in err, err
    triton, *ours = err.splitlines(keepends=True)
    assert triton.endswith(TRITON_LINE.format("HTTP", http))
    assert ours == [f"tritond: error: cannot serve HTTP on 127.0.0.1:{http} (--http-port): "
                    "the address is already in use\n",
                    f"tritond: error: failed to open log file '{log_file}' (--log-file): "
                    "No such file or directory\n"]
