"""systemd's notify protocol: a real tritond talking to a datagram socket the test binds."""
import os
import signal
import socket
import tempfile
import time
import urllib.request

import pytest

from tests.server import Server
from tritond.parent import sdnotify


@pytest.fixture
def notify_socket():
    d = tempfile.mkdtemp(prefix="sdn", dir="/tmp")     # sun_path is at most 107 bytes
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield sock, path
    sock.close()
    os.unlink(path)
    os.rmdir(d)


def _recv_until(sock, key: str, timeout: float) -> list[str]:
    """Every datagram up to and including the first one containing ``key``."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if key in got[-1].splitlines():
            return got
    raise TimeoutError(f"{key} not received; got {got}")


def test_notifier_paths_and_watchdog(notify_socket):
    sock, path = notify_socket
    assert sdnotify.Notifier({"NOTIFY_SOCKET": path}).notify("STATUS=x")
    assert sock.recv(100) == b"STATUS=x"
    assert not sdnotify.Notifier({}).notify("READY=1")              # not under systemd
    assert not sdnotify.Notifier({"NOTIFY_SOCKET": path + "-gone"}).notify("READY=1")
    name = f"@tritond-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name[1:])
        assert sdnotify.Notifier({"NOTIFY_SOCKET": name}).notify("READY=1")
        assert abstract.recv(100) == b"READY=1"
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "3000000"}) == 1.5
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "x"}) is None


def test_real_server_notifies_ready_watchdog_and_stopping(notify_socket):
    sock, path = notify_socket
    srv = Server(wait_ready=False, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    try:
        got = _recv_until(sock, "READY=1", 90)
        # READY=1 comes only once the frontend serves from the loaded table.
        with urllib.request.urlopen(f"http://{srv.url}/v2/health/ready", timeout=2) as r:
            assert r.status == 200
        assert any("WATCHDOG=1" in g for g in got) or \
            "WATCHDOG=1" in _recv_until(sock, "WATCHDOG=1", 2)[-1]
        beats = len(_recv_until(sock, "WATCHDOG=1", 1)) + len(_recv_until(sock, "WATCHDOG=1", 1))
        assert beats >= 2                                         # every 0.1 s
        for pid in srv.children():                                # hidden from the children
            with open(f"/proc/{pid}/environ", "rb") as f:
                assert b"NOTIFY_SOCKET" not in f.read()
        srv.proc.send_signal(signal.SIGTERM)
        _recv_until(sock, "STOPPING=1", 10)
        assert srv.proc.wait(30) == 0
    finally:
        srv.stop()
