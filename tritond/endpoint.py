"""The blocking channel endpoint of worker processes (no event loop).

Same wire format as ``tritond.channel``: 4-byte length-prefixed frames, each a
msgpack list of messages; ``post()`` queues and ``flush()`` writes one frame
per destination.
"""
from __future__ import annotations

import logging
import select
import socket
import time
from typing import Callable, Iterable

import msgspec

from . import messages, peers
from .decoding import Bad, InboxDecoder, report
from .framing import FrameBuffer, frame, printable, role_of

log = logging.getLogger("tritond.endpoint")


class SyncEndpoint:
    """A blocking inbox + outbox for worker processes (no event loop)."""

    def __init__(self, addr: str, union) -> None:
        self.addr = addr
        self._decoder = InboxDecoder(union, role_of(addr))
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(addr)
        self._listener.listen(64)
        self._listener.setblocking(False)
        # A bare epoll, not selectors: its per-call key objects and fd lookups
        # were Python work on every wake-up of the worker.
        self._ep = select.epoll()
        self._ep.register(self._listener.fileno(), select.EPOLLIN)
        # fd -> None (the listener), the connection's socket, or a waker's callback
        self._handlers: dict[int, object] = {self._listener.fileno(): None}
        self._conns: dict[socket.socket, FrameBuffer] = {}
        self._peers: dict[socket.socket, str] = {}   # sender address, once a message named it
        self._out: dict[str, socket.socket] = {}
        self._queued: dict[str, list] = {}
        self._rbuf = bytearray(256 * 1024)
        self._rview = memoryview(self._rbuf)
        self._woken = False
        # flush(): what happens to the messages of a peer that cannot be reached.
        self.on_undelivered: Callable[[str, list, OSError], None] = _log_undelivered

    def add_waker(self, fd: int, on_wake) -> None:
        """Watch ``fd`` too (e.g. an eventfd other threads write): when it is readable
        ``on_wake()`` runs and :meth:`recv` returns, even with no message."""
        self._ep.register(fd, select.EPOLLIN)
        self._handlers[fd] = on_wake

    def fileno(self) -> int:
        return self._listener.fileno()

    def recv(self, timeout: float | None = None) -> list:
        """Return every message that is waiting (blocking up to ``timeout`` for the first)."""
        out: list = []
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = -1 if timeout is None else timeout
        handlers = self._handlers
        while True:
            # No second poll with timeout 0 to "drain" after a read: one poll
            # reports every fd ready now (level-triggered), and what arrives
            # while this batch runs is read by the next call. The drain cost a
            # syscall per wake-up and found nothing at low load.
            for fd, _ in self._ep.poll(wait):
                handler = handlers.get(fd, False)
                if handler is None:
                    self._accept()
                elif type(handler) is socket.socket:
                    self._read(handler, out)
                elif handler is not False:
                    handler()
                    self._woken = True
            if self._woken:
                self._woken = False
                return out
            if out:
                return out
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return out

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return
            if not peers.admit(conn, role_of(self.addr)):
                conn.close()         # before any byte is read
                continue
            conn.setblocking(False)
            self._conns[conn] = FrameBuffer()
            self._handlers[conn.fileno()] = conn
            self._ep.register(conn.fileno(), select.EPOLLIN)

    def _read(self, conn: socket.socket, out: list) -> None:
        fb = self._conns[conn]
        try:
            # recv_into a reused buffer: recv(1 MiB) would make glibc mmap,
            # mremap and munmap a fresh 1 MiB object on every call.
            n = conn.recv_into(self._rbuf)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        data = self._rview[:n]
        if not n:
            self._drop(conn)
            self._peers.pop(conn, None)
            return
        try:
            payloads = fb.feed(data)
        except ValueError as exc:   # framing broken: nothing more can be read from it
            self._bad(conn, [Bad(str(exc), self._peers.get(conn, ""))])
            self._drop(conn)
            return
        for payload in payloads:
            try:
                got = self._decoder.decode(payload)
            except msgspec.MsgspecError:
                got, bad = self._decoder.split(payload, self._peers.get(conn, ""))
                if bad:
                    self._bad(conn, bad)
            if got and conn not in self._peers and (who := messages.sender(got[0])):
                self._peers[conn] = who
            out.extend(got)

    def _drop(self, conn: socket.socket) -> None:
        fd = conn.fileno()
        self._ep.unregister(fd)
        del self._handlers[fd]
        del self._conns[conn]
        conn.close()

    def _bad(self, conn: socket.socket, bad: list) -> None:
        if bad[0].sender:
            self._peers.setdefault(conn, bad[0].sender)
        report(bad, self._reply, f"inbox {printable(self.addr)}")

    def _reply(self, addr: str, msg) -> None:
        try:
            self.send_now(addr, [msg])
        except OSError:      # a sender that is gone (or a made-up address)
            pass

    def post(self, addr: str, msg) -> None:
        q = self._queued.get(addr)
        if q is None:
            self._queued[addr] = [msg]
        else:
            q.append(msg)

    def flush(self) -> None:
        if not self._queued:        # the loop flushes every turn, mostly with nothing queued
            return
        queued, self._queued = self._queued, {}
        for addr, msgs in queued.items():
            # A peer that died (a BLS caller killed while its callee runs) must cost
            # neither this process nor the messages queued for the others.
            try:
                self.send_now(addr, msgs)
            except OSError as exc:
                self.on_undelivered(addr, msgs, exc)

    def send_now(self, addr: str, msgs: Iterable) -> None:
        sock = self._out.get(addr)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(addr)
            self._out[addr] = sock
        try:
            sock.sendall(frame(messages.encode(msgs if type(msgs) is list else list(msgs))))
        except OSError:
            self._out.pop(addr, None)
            sock.close()
            raise

    def close(self) -> None:
        for s in list(self._conns) + list(self._out.values()) + [self._listener]:
            try:
                s.close()
            except OSError:
                pass
        self._ep.close()


def _log_undelivered(addr: str, msgs: list, exc: OSError) -> None:
    log.warning("cannot reach %s (%d message(s) dropped): %s", printable(addr), len(msgs), exc)
