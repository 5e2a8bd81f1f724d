"""uvicorn's httptools protocol with the writes of one loop turn corked together.

uvicorn writes a response's head and each body chunk with separate
``transport.write`` calls, i.e. separate send syscalls. On a small VM a
syscall costs about as much as the rest of a tiny response's Python work, so
the writes made during one event-loop turn are handed to the socket together:
one ``writelines`` (a single vectored send) per connection per turn.

Infer bodies are written straight from the worker's shm output slots, and
uvloop's transport keeps a *reference* to what the socket did not take yet (no
copy). ``after_sent`` tells the infer response when those bytes really left
this process, so the slot goes back to the worker only then: released earlier,
a slow reader would receive the output of a later request written over it.
"""
from __future__ import annotations

import asyncio

import re

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tritond.idletimer import IdleTimer

from .deadline import ReadDeadline
from .exchange import InferExchange
from .halfclose import PeerProbe

# The infer route as it arrives (no query: that takes uvicorn's path). %-escapes stay in
# the model name, as in Triton (its regex sees evhtp's raw path).
_INFER = re.compile(rb"/v2/models/([^/?#]+)(?:/versions/([0-9]+))?/infer")

# Triton's kMaxChunkedChunks: a chunked body of many tiny chunks costs a Python object each.
MAX_CHUNKS = 1 << 16
TOO_MANY_CHUNKS = (f"Chunked request body exceeds maximum of {MAX_CHUNKS} non-empty chunks. "
                   "Send fewer or larger HTTP chunks.")


class _TooManyChunks(Exception):
    """Raised in a parser callback: httptools stops and uvicorn answers 400 (ours below)."""


_JOIN_LIMIT = 64 * 1024   # below this, joining is cheaper than a vectored write
_POLL_FIRST_S = 0.001      # then doubling up to _POLL_MAX_S while a client reads slowly
_POLL_MAX_S = 0.05


class CorkedTransport:
    """Buffers ``write`` calls until the end of the current loop turn."""

    __slots__ = ("_transport", "_loop", "_buf", "_size", "_scheduled", "_waiters", "_poll_s",
                 "lost")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buf: list = []
        self._size = 0
        self._scheduled = False
        self._waiters: list = []
        self._poll_s = 0.0          # > 0 while a poll for the buffer to empty is armed
        self.lost = False           # connection_lost: nothing more will be sent

    def after_sent(self, callback) -> None:
        """Call ``callback()`` once everything written so far left the process (or never will)."""
        self._waiters.append(callback)
        if not self._scheduled and not self._poll_s:
            self._check_sent()

    def _check_sent(self) -> None:
        try:
            pending = not self.lost and self._transport.get_write_buffer_size() > 0
        except Exception:  # noqa: BLE001 - a closed handle holds nothing
            pending = False
        if pending:
            self._poll_s = min(self._poll_s * 2, _POLL_MAX_S) if self._poll_s else _POLL_FIRST_S
            self._loop.call_later(self._poll_s, self._check_sent)
            return
        self._poll_s = 0.0
        waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback()

    def write(self, data) -> None:
        if not data:
            return
        self._buf.append(data)
        self._size += len(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def write_now(self, data) -> None:
        """``write``, but at once when nothing waits for the end of the turn: an infer
        answer leaves in one write (exchange.py), so corking it buys no syscall and
        costs a loop callback."""
        if self._scheduled or self._transport.is_closing():
            self.write(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        self._scheduled = False
        buf, self._buf = self._buf, []
        size, self._size = self._size, 0
        if buf and not self._transport.is_closing():
            if len(buf) == 1:
                self._transport.write(buf[0])
            elif size <= _JOIN_LIMIT:
                self._transport.write(b"".join(buf))
            else:
                self._transport.writelines(buf)
        if self._waiters and not self._poll_s:
            self._check_sent()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=CorkedHttpToolsProtocol)``; ``with_direct_infer`` adds the core."""

    header_timeout = 0.0      # --http-header-timeout (deadline.with_header_timeout)
    core = None               # FrontendCore: infer requests become InferExchanges

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CorkedTransport(transport, self.loop))
        # A request with both Transfer-Encoding: chunked and Content-Length is read by its
        # chunks (RFC 9112 6.1, as Triton's libevhtp reads it; llhttp would refuse it), and
        # its connection closes after the answer, so no second request can hide in it.
        self.parser.set_dangerous_leniencies(lenient_chunked_length=True)
        self.chunks = 0           # chunk headers of the current request (on_chunk_header)
        self.deadline = ReadDeadline(self.loop, self.header_timeout, transport.close)
        self.deadline.headers()
        self.idle = IdleTimer(self.loop, self.timeout_keep_alive, self.timeout_keep_alive_handler)
        self.extensions = {"tritond.after_sent": self.transport.after_sent}
        self.exchange_extensions = {**self.extensions, "tritond.cancels_on_disconnect": True}

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        corked = self.transport
        self.deadline.close()
        self.idle.close()
        super().connection_lost(exc)
        corked.lost = True
        corked._check_sent()      # noqa: SLF001 - queued bytes were dropped with the socket

    def eof_received(self) -> bool:
        # A client that half-closes after sending its request still gets the
        # answer (then the connection closes); one that closed is found out by
        # a probe (halfclose.py) and its request cancelled; otherwise close now.
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return False
        cycle.keep_alive = False
        if not cycle.response_started:             # the corked transport keeps byte order
            PeerProbe(self.loop, self.transport, self.transport.abort,
                      lambda: cycle.response_started)
        return True

    def data_received(self, data: bytes) -> None:
        self.deadline.touch()
        super().data_received(data)

    def on_message_begin(self) -> None:
        # uvicorn's scope is built only for requests that go to the ASGI app
        # (_asgi_scope): an infer request does not need it.
        self.deadline.headers()
        self.chunks = 0
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        self.deadline.body()
        parser = self.parser
        m = None
        if self.core is not None and parser.get_method() == b"POST" and not parser.should_upgrade() \
                and self.limit_concurrency is None:
            m = _INFER.fullmatch(self.url)
        if m is None:
            self._asgi_scope()
            super().on_headers_complete()
            if self._length_and_chunked():
                self.cycle.keep_alive = False
            return
        version = m.group(2)
        keep_alive = parser.should_keep_alive() and parser.get_http_version() != "1.0" \
            and not self._length_and_chunked()
        exchange = InferExchange(self, m.group(1).decode("ascii"),
                                 "" if version is None else version.decode("ascii"), keep_alive)
        previous, self.cycle = self.cycle, exchange
        if previous is None or previous.response_complete:
            self._start_asgi_task(exchange, None)
        else:                     # pipelined behind an unanswered request (uvicorn's queue)
            self.flow.pause_reading()
            self.pipeline.appendleft((exchange, None))

    def _length_and_chunked(self) -> bool:
        names = {name for name, _ in self.headers}
        return b"transfer-encoding" in names and b"content-length" in names

    def _asgi_scope(self) -> None:
        """uvicorn's own scope, over the URL and headers parsed so far."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers
        self.scope["extensions"] = self.extensions

    def on_body(self, body: bytes) -> None:
        if type(self.cycle) is InferExchange:
            self.cycle.add_body(body)
        else:
            super().on_body(body)

    def on_chunk_header(self) -> None:
        # Every chunk but the zero-size last one is non-empty, so the header after the
        # (MAX_CHUNKS + 1)-th chunk is the first proof of one chunk too many.
        self.chunks += 1
        if self.chunks > MAX_CHUNKS + 1:
            raise _TooManyChunks

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser refused; Triton's JSON error when it was
        refused for its chunk count (and nothing if its answer already started)."""
        if not self.chunks > MAX_CHUNKS + 1:
            super().send_400_response(msg)
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            body = b'{"error":"' + TOO_MANY_CHUNKS.encode() + b'"}'
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                                 % (len(body), body))
        self.transport.close()

    def on_message_complete(self) -> None:
        self.deadline.stop()
        super().on_message_complete()

    # uvicorn's keep-alive timeout, on one timer per connection (tritond/idletimer.py).
    def _unset_keepalive_if_required(self) -> None:
        self.idle.busy()

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.idle.busy()
        self.flow.resume_reading()
        if self.pipeline:                      # the next pipelined request, in arrival order
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle.idle()


def with_direct_infer(protocol: type, core) -> type:
    """``protocol`` serving infer requests itself over ``core`` (no inference restriction)."""
    return type(protocol.__name__, (protocol,), {"core": core})
