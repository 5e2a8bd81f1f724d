"""SO_PEERCRED admission of the internal channels (tritond.peers)."""
import os
import socket

import pytest

from tritond import peers


@pytest.fixture
def listener():
    addr = f"\0tritond-test{os.getpid()}-peers"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(addr)
    s.listen(8)
    yield s, addr
    s.close()


def _connect_from_child(addr: str, uid: int | None = None, grandchild: bool = False) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            if grandchild and os.fork() != 0:
                os.wait()
                return
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(addr)
            c.recv(1)               # until the test closes it
        finally:
            os._exit(0)
    return pid


def _refusal_of(listener, **kw) -> str:
    s, addr = listener
    pid = _connect_from_child(addr, **kw)
    conn, _ = s.accept()
    why = peers.refusal(conn)
    conn.close()
    os.waitpid(pid, 0)
    return why


def test_own_process_and_children_are_admitted(listener):
    s, addr = listener
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(addr)
    conn, _ = s.accept()
    assert peers.refusal(conn) == "" and peers.credentials(conn)[0] == os.getpid()
    conn.close()
    c.close()
    assert _refusal_of(listener) == ""                        # a child of the server


def test_other_uid_is_refused(listener):
    why = _refusal_of(listener, uid=65534)
    assert why.startswith("pid ") and why.endswith("runs as uid 65534, not 0")


def test_same_uid_foreign_process_is_refused(listener):
    assert _refusal_of(listener, grandchild=True).endswith("is not a process of this server")


def test_children_judge_by_the_server_pid(listener):
    peers.set_server_pid(os.getppid())       # as if we were a child of our parent
    try:
        assert _refusal_of(listener).endswith("is not a process of this server")
    finally:
        peers.set_server_pid(None)


def test_admit_logs_once_per_period(listener, caplog):
    s, addr = listener
    peers._last_log = -peers.LOG_EVERY_S          # noqa: SLF001 - a fresh period
    for _ in range(3):
        pid = _connect_from_child(addr, uid=65534)
        conn, _ = s.accept()
        assert not peers.admit(conn, "w1")
        conn.close()
        os.waitpid(pid, 0)
    lines = [r.message for r in caplog.records if "refused a connection" in r.message]
    assert len(lines) == 1 and lines[0].startswith("refused a connection to the w1 channel: pid")
