"""Who may talk on the internal channels: only this server's own processes.

Every tritond process listens on an abstract Unix socket, which any local
user can see (/proc/net/unix) and connect to. Abstract sockets have no file
permissions, so each accepted connection is checked with ``SO_PEERCRED``
before a byte is read: the peer must run under our uid and be the server's
parent process or a direct child of it (every tritond process is one of
those: the parent spawns all others). Anything else is closed at once and
logged (at most once per ``LOG_EVERY_S``).

The server's root pid is ``os.getpid()`` in the parent (the default) and
``Bootstrap.parent_pid`` in children (:func:`set_server_pid`, called by
``procutil.child_start``). The peer's parent pid comes from /proc/<pid>/stat.
"""
from __future__ import annotations

import logging
import os
import socket
import struct
import time

_UCRED = struct.Struct("3i")          # struct ucred {pid_t pid; uid_t uid; gid_t gid;}
LOG_EVERY_S = 10.0

log = logging.getLogger("tritond.peers")
_server_pid: int | None = None
_last_log = -LOG_EVERY_S


def set_server_pid(pid: int | None) -> None:
    """The pid of this server's parent process (children call this at start)."""
    global _server_pid
    _server_pid = pid


def server_pid() -> int:
    return os.getpid() if _server_pid is None else _server_pid


def credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected ``sock``."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return _UCRED.unpack(raw)


def parent_of(pid: int) -> int:
    """The parent pid of ``pid`` from /proc (-1 if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[1])   # field 4: ppid
    except (OSError, ValueError, IndexError):
        return -1


def refusal(sock: socket.socket) -> str:
    """Why the peer of ``sock`` may not talk to us; "" when it is one of ours."""
    try:
        pid, uid, _ = credentials(sock)
    except OSError as exc:
        return f"no peer credentials ({exc})"
    if uid != os.geteuid():
        return f"pid {pid} runs as uid {uid}, not {os.geteuid()}"
    root = server_pid()
    if pid != root and pid != os.getpid() and parent_of(pid) != root:
        return f"pid {pid} is not a process of this server"
    return ""


def admit(sock: socket.socket, role: str) -> bool:
    """True if ``sock``'s peer is one of ours; else log (rate-limited) and return False."""
    why = refusal(sock)
    if not why:
        return True
    global _last_log
    now = time.monotonic()
    if now - _last_log >= LOG_EVERY_S:
        _last_log = now
        log.warning("refused a connection to the %s channel: %s", role, why)
    return False
