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


def tritond(repo, http: int, grpc: int, metrics: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tritond", "--model-repository", str(repo),
         "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
         f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}"],
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


def test_a_busy_metrics_port_stops_the_start_before_anything_runs(tmp_path):
    http, grpc, metrics = free_ports(3)
    with listening(metrics):
        proc = tritond(tmp_path, http, grpc, metrics)
        out, err = finish(proc, 30)
    assert proc.returncode == 1
    assert err == (f"tritond: error: cannot serve metrics on 127.0.0.1:{metrics} "
                   "(--metrics-port): the address is already in use\n")
    assert out == ""                                   # no child started, none logged
    assert shm_entries(f"-{proc.pid}-") == []


def test_a_metrics_port_taken_after_the_check_stops_the_server(tmp_path):
    """The port is taken between the parent's preflight and frontend 0's bind: as
    tritonserver's "failed to start Metrics service", the server exits with failure."""
    http, grpc, metrics = free_ports(3)
    proc = tritond(tmp_path, http, grpc, metrics)
    try:
        # The parent's channel exists only after the preflight; the frontend binds
        # after its own start and Setup (a second or so later).
        server_id = wait_for(lambda: _server_id(proc), 30, "the parent's channel")
    except BaseException:
        kill(proc)
        raise
    with listening(metrics):
        out, err = finish(proc, 60)
    assert proc.returncode == 1, out + err
    assert (f"failed to start Metrics service at 127.0.0.1:{metrics}: "
            "Address already in use") in err
    assert "exited with code 3 unexpectedly: stopping the server (exit code 1)" in err
    assert "tritond ready" not in out + err
    assert shm_entries(server_id) == []


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
