"""Message transport between tritond processes.

Every process listens on one Unix stream socket in the abstract namespace (no
file to clean up; it vanishes with the process). A frame is a 4-byte
little-endian length followed by one msgpack list of messages. Senders batch:
``post()`` only queues, and one frame per destination is written per event-loop
turn (or per ``flush()`` in synchronous workers), so the per-request number of
syscalls falls as load rises.

Only descriptors travel here; tensor bytes go through shared memory.

The blocking endpoint used by workers lives in ``tritond.endpoint``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket

from typing import Callable

import msgspec

from . import messages, peers
from .decoding import Bad, InboxDecoder, report
from .framing import MAX_FRAME, FrameBuffer, address, frame, printable, role_of  # noqa: F401

log = logging.getLogger("tritond.channel")

FRAME_MESSAGES = 8            # a frame is written once this many messages wait for a peer
# ... or this many, when the last was posted as ``batched`` (a step its receiver batches
# with the rest of the turn): a bound on the frame, not a hand-off point.
FRAME_BATCHED_MESSAGES = 256


# --------------------------------------------------------------------- async


class _InboxProtocol(asyncio.Protocol):
    def __init__(self, inbox: "AsyncInbox") -> None:
        self._inbox = inbox
        self._frames = FrameBuffer()
        self.peer = ""        # the sender's address, once a message named it

    def connection_made(self, transport) -> None:
        # Before the first read: a process that is not one of ours is cut off.
        if not peers.admit(transport.get_extra_info("socket"), self._inbox.role):
            transport.abort()

    def data_received(self, data: bytes) -> None:
        inbox = self._inbox
        try:
            payloads = self._frames.feed(data)
        except ValueError as exc:  # a peer that breaks framing is cut off
            inbox.bad([Bad(str(exc), self.peer)])
            return
        msgs = []
        decode = inbox.decoder.decode
        for payload in payloads:
            try:
                got = decode(payload)
            except msgspec.MsgspecError:
                got, bad = inbox.decoder.split(payload, self.peer)
                if bad:
                    self.peer = self.peer or bad[0].sender
                    inbox.bad(bad)
            if got and not self.peer:
                self.peer = messages.sender(got[0])
            msgs.extend(got)
        if msgs:
            inbox.handler(msgs)


class AsyncInbox:
    """Listens on ``addr``; calls ``handler(list_of_messages)`` per read.

    A message it cannot decode, or one outside ``union``, is logged and
    answered with ``messages.Unknown`` through ``outbox`` when its sender is
    known (``tritond.decoding``); ``on_bad_frame(detail)`` is told too.
    """

    def __init__(self, addr: str, union, handler: Callable[[list], None],
                 on_bad_frame: Callable[[str], None] | None = None,
                 outbox: "AsyncOutbox | None" = None, role: str = "") -> None:
        self.addr = addr
        self.role = role or role_of(addr)
        self.decoder = InboxDecoder(union, self.role)
        self.handler = handler
        self.on_bad_frame = on_bad_frame or (lambda detail: None)
        self.outbox = outbox
        self._server: asyncio.AbstractServer | None = None

    def bad(self, bad: list[Bad]) -> None:
        report(bad, self.outbox.post if self.outbox is not None else None,
               f"inbox {printable(self.addr)}")
        for item in bad:
            self.on_bad_frame(item.detail)

    async def start(self) -> None:
        # The socket is made here rather than by path= because libuv (uvloop)
        # truncates abstract-namespace names at their leading NUL byte.
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.addr)
        sock.listen(256)
        sock.setblocking(False)
        self._server = await loop.create_unix_server(lambda: _InboxProtocol(self), sock=sock)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


class _Link:
    __slots__ = ("transport", "pending", "connecting")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.connecting = False


def _frame_of(msgs: list) -> bytes:
    """One frame of queued ``msgs``. One msgpack cannot encode (an int beyond 64 bits
    that slipped past a check) is logged and dropped alone: raising here would lose the
    rest of the frame and, in a flush, the turn's frames to every other peer."""
    try:
        return frame(messages.encode(msgs))
    except (OverflowError, TypeError, ValueError):
        good = []
        for msg in msgs:
            try:
                messages.encode([msg])
            except (OverflowError, TypeError, ValueError) as exc:
                log.error("dropped a %s that cannot be encoded: %s", type(msg).__name__, exc)
            else:
                good.append(msg)
        return frame(messages.encode(good))


class AsyncOutbox:
    """Queues messages per destination and writes one frame each per loop turn."""

    def __init__(self) -> None:
        self._queued: dict[str, list] = {}
        self._links: dict[str, _Link] = {}
        self._scheduled = False
        self._loop = asyncio.get_running_loop()
        self.on_link_error: Callable[[str, Exception], None] = lambda addr, exc: None
        self.frame_limit = FRAME_MESSAGES
        self.batched_limit = FRAME_BATCHED_MESSAGES

    def post(self, addr: str, msg, limit: int = 0) -> None:
        q = self._queued.get(addr)
        if q is None:
            if not self._scheduled:
                # Nothing else is waiting this turn: a lone message (low load)
                # goes at once instead of one loop iteration later.
                self._write(addr, frame(messages.encode([msg])))
                self._scheduled = True
                self._loop.call_soon(self._settle)
                return
            self._queued[addr] = q = [msg]
        else:
            q.append(msg)
        self._after_queueing(addr, q, limit)

    def post_batched(self, addr: str, msg) -> None:
        """``post`` for a message its receiver batches with the others it reads at once
        (a sequence step: the sequence batcher forms one batch of the ready slots).

        A lone message still goes at once; the rest of the turn is not cut into
        ``frame_limit``-message frames (each cut hands the batcher part of the turn,
        which it dispatches as a batch of its own: bench/RESULTS.md, 2026-11-30 06:30),
        only bounded by ``batched_limit``.
        """
        self.post(addr, msg, self.batched_limit)

    def post_many(self, addr: str, msgs: list, batched: bool = False) -> None:
        """Queue ``msgs`` for ``addr``: they leave together in the turn's frame, never
        the first alone at once (posted one by one, the first would go by itself
        and wake the peer once more). ``batched``: as ``post_batched``'s messages."""
        q = self._queued.get(addr)
        if q is None:
            self._queued[addr] = q = []
        q.extend(msgs)
        self._after_queueing(addr, q, self.batched_limit if batched else self.frame_limit)

    def _after_queueing(self, addr: str, q: list, limit: int = 0) -> None:
        if len(q) >= (limit or self.frame_limit):
            # A loop turn that handles dozens of requests would otherwise
            # hand them over all at once, at its very end: the receiver
            # then idles, and downstream work moves in lock-step.
            del self._queued[addr]
            self._write(addr, _frame_of(q))
            return
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def _settle(self) -> None:
        # End of the turn in which a message went out at once: later posts of
        # that turn were queued and go now, as one frame per peer.
        self.flush()

    def flush(self) -> None:
        self._scheduled = False
        queued, self._queued = self._queued, {}
        for addr, msgs in queued.items():
            self._write(addr, _frame_of(msgs))

    def _write(self, addr: str, data: bytes) -> None:
        link = self._links.get(addr)
        if link is None:
            link = self._links[addr] = _Link()
        if link.transport is not None and not link.transport.is_closing():
            link.transport.write(data)
            return
        link.pending.append(data)
        if not link.connecting:
            link.connecting = True
            self._loop.create_task(self._connect(addr, link))

    async def _connect(self, addr: str, link: _Link) -> None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(addr)  # a local connect completes at once
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            transport, _ = await self._loop.create_unix_connection(asyncio.Protocol, sock=sock)
        except OSError as exc:
            link.connecting = False
            link.pending.clear()
            self._links.pop(addr, None)
            self.on_link_error(addr, exc)
            return
        link.transport = transport
        link.connecting = False
        for data in link.pending:
            transport.write(data)
        link.pending.clear()

    def forget(self, addr: str) -> None:
        """Drop the link to a peer that died (a restarted peer reuses the address)."""
        link = self._links.pop(addr, None)
        if link is not None and link.transport is not None:
            link.transport.close()

    def close(self) -> None:
        for addr in list(self._links):
            self.forget(addr)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["AsyncInbox", "AsyncOutbox", "FrameBuffer", "address", "frame",
           "pid_alive", "printable"]
