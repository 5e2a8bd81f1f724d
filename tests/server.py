"""Start and stop a real ``tritond`` for tests (loopback, free ports)."""
from __future__ import annotations

import atexit
import os
import pathlib
import random
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
REPO = ROOT / "model_repository"


def free_port() -> int:
    return free_ports(1)[0]


# Ports for test servers come from below the kernel's ephemeral range (32768 and up), one
# slice per xdist worker: a port the kernel handed out for bind(0) could be taken, before the
# server binds it, by another worker's bind(0) or by any outgoing connection's local port
# ("failed to start HTTP service ... already in use" in a run of the suite).
_LOW, _HIGH = 10000, 32000
_next_port: int | None = None


def _slice() -> tuple[int, int]:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    span = (_HIGH - _LOW) // max(workers, 1)
    return _LOW + index * span, _LOW + (index + 1) * span


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports nothing listens on or holds now, from this process's slice
    (started at a random place in it: another suite may run on the host)."""
    global _next_port
    low, high = _slice()
    if _next_port is None:
        _next_port = random.randrange(low, high)
    out: list[int] = []
    for _ in range(high - low):
        port, _next_port = _next_port, low + (_next_port + 1 - low) % (high - low)
        if _bindable(port):
            out.append(port)
            if len(out) == n:
                return out
    raise RuntimeError(f"no {n} free ports in {low}..{high}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_LOG_DIR: pathlib.Path | None = None


def log_dir() -> pathlib.Path:
    """Where servers' logs go: ``TRITOND_TEST_LOGS`` (kept), else a folder of this
    process's own that ``remove_logs`` deletes when the test session ends."""
    global _LOG_DIR
    if _LOG_DIR is None:
        kept = os.environ.get("TRITOND_TEST_LOGS")
        if kept:
            _LOG_DIR = pathlib.Path(kept)
            _LOG_DIR.mkdir(parents=True, exist_ok=True)
        else:
            _LOG_DIR = pathlib.Path(tempfile.mkdtemp(prefix="tritond-test-logs-"))
            atexit.register(remove_logs)    # bench scripts use Server outside pytest too
    return _LOG_DIR


def remove_logs() -> None:
    if _LOG_DIR is not None and not os.environ.get("TRITOND_TEST_LOGS"):
        shutil.rmtree(_LOG_DIR, ignore_errors=True)


class Server:
    """A tritond child process; ``url``/``grpc_url`` for clients, ``stop()`` SIGTERMs it."""

    def __init__(self, repos=(REPO,), *args: str, env: dict | None = None,
                 wait_ready: bool = True, timeout: float = 90.0,
                 module: str = "tritond.cli") -> None:
        self.args = args
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        cmd = [sys.executable, "-m", module]
        for repo in repos:
            cmd += ["--model-repository", str(repo)]
        cmd += ["--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1",
                "--metrics-address", "127.0.0.1",
                f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
                f"--metrics-port={self.metrics_port}", *args]
        self.log_path = log_dir() / f"tritond-test-{self.http_port}.log"
        self.log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        self.url = f"127.0.0.1:{self.http_port}"
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        if wait_ready:
            try:
                self.wait("/v2/health/ready", timeout)
            except BaseException:
                self.kill()
                raise

    def wait(self, path: str = "/v2/health/ready", timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritond exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"http://{self.url}{path}", timeout=1) as r:
                    if r.status == 200:
                        server_id_of(self.proc.pid)       # learnt while the parent lives
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"tritond not ready after {timeout}s:\n{self.output()}")

    def parent_address(self) -> str:
        """The parent's channel address: its server id starts with its pid in hex."""
        prefix = f"@tritond-{self.proc.pid:x}"
        with open("/proc/net/unix") as table:
            for line in table:
                path = line.split()[-1]
                if path.startswith(prefix) and path.endswith("-parent") and len(
                        path) == len(prefix) + len("XXXX-parent"):
                    return "\0" + path[1:]
        raise LookupError(f"no parent socket {prefix}*-parent")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def children(self) -> list[int]:
        """pids of every process in the server's session (tritond and its children)."""
        out = []
        for entry in pathlib.Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[3]) == self.proc.pid and int(entry.name) != self.proc.pid:  # session id
                    out.append(int(entry.name))
        return out


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


_SERVER_IDS: dict[int, str] = {}


def server_id_of(pid: int) -> str:
    """The (random, secret) server id of the tritond parent ``pid``, read from the
    abstract socket it listens on (``@tritond-<id>-parent`` in /proc/net/unix)."""
    if pid not in _SERVER_IDS:
        inodes = socket_inodes(pid)
        for line in pathlib.Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[6] in inodes and fields[7].endswith("-parent") \
                    and fields[7].startswith("@tritond-"):
                _SERVER_IDS[pid] = fields[7][len("@tritond-"):-len("-parent")]
                break
        else:
            raise LookupError(f"no tritond parent socket for pid {pid}")
    return _SERVER_IDS[pid]


def segments_of(pid: int) -> list[str]:
    """Our /dev/shm segments of the server whose parent is ``pid``."""
    return [p.name for p in pathlib.Path("/dev/shm").glob(f"tritond-{server_id_of(pid)}-*")]
