"""One infer request served straight from the connection's protocol.

uvicorn gives every request an ASGI scope (server and client addresses, a copy
of the app state, a parsed URL), a ``RequestResponseCycle`` with its own
``asyncio.Event``, and checks each response header against two regexes. For
``POST .../infer`` the protocol (``protocol.py``) makes an ``InferExchange``
instead: it has the attributes and methods uvicorn's protocol uses on a cycle
(``body``, ``more_body``, ``message_event``, ``disconnected``, ``keep_alive``,
``response_started``, ``response_complete``, ``run_asgi``), so uvicorn's
keep-alive, pipelining, flow control and disconnect handling run unchanged,
and it offers the infer handler (``fastpath._serve``) the same ASGI
``receive``/``send`` with a small scope. The response's head and body leave
in one write. Our infer responses always carry a Content-Length. On the usual
path the handler skips even those: a body that arrived whole is taken with
``whole_body`` and an ``InferResponse`` is written by ``respond`` (no message
dicts, no header tuples); errors and compressed answers keep ``send``.

A client that goes away cancels its request at once: uvicorn marks the cycle
``disconnected`` and the exchange cancels its task (the core then posts
Cancel), where the ASGI path needs a timer per request and a watcher
(``disconnect.py``). The scope's ``tritond.cancels_on_disconnect`` tells the
handler so.
"""
from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from . import fastpath
from .responses import InferResponse

log = logging.getLogger("tritond.frontend.http")

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_JOIN = 64 * 1024       # as protocol.CorkedTransport: below this a join is cheaper
_CLOSE = b"connection: close\r\n"
_OK = STATUS_LINE[200]
_END = b"\r\n"
_CLOSE_END = _CLOSE + _END
_SERVER_ERROR = (b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
                 b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error")


def _noop() -> None:
    pass


_DEFAULTS: list = [None, b""]     # uvicorn's default headers (a new list each second), rendered


def _default_headers(headers: list) -> bytes:
    if _DEFAULTS[0] is not headers:
        _DEFAULTS[:] = headers, b"".join(b"%s: %s\r\n" % pair for pair in headers)
    return _DEFAULTS[1]


class Signal:
    """``asyncio.Event``'s set/wait/clear for one waiter, without its per-instance cost."""

    __slots__ = ("loop", "_flag", "_waiter")

    def __init__(self, loop) -> None:
        self.loop = loop
        self._flag = False
        self._waiter = None

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> None:
        while not self._flag:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class InferExchange:
    """The duck-typed cycle of one infer request (see the module doc)."""

    __slots__ = ("core", "model", "version", "scope", "transport", "flow", "default_headers",
                 "message_event", "on_response", "_gone", "_task", "keep_alive",
                 "waiting_for_100_continue", "body", "more_body", "response_started",
                 "response_complete", "_head", "_left", "_held")

    def __init__(self, protocol, model: str, version: str, keep_alive: bool) -> None:
        self.core = protocol.core
        self.model = model
        self.version = version
        self.scope = {"type": "http", "method": "POST", "headers": protocol.headers,
                      "extensions": protocol.exchange_extensions}
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.default_headers = protocol.server_state.default_headers
        self.message_event = Signal(protocol.loop)
        self.on_response = protocol.on_response_complete
        self._gone = False
        self._task: asyncio.Task | None = None     # while the handler runs
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = protocol.expect_100_continue
        self.body: list = []          # the body's chunks not yet received by the handler
        self._held = 0                # their bytes (summed as they come: a chunked body of
                                      # tiny chunks makes the list long)
        self.more_body = True
        self.response_started = False
        self.response_complete = False
        self._head = b""
        self._left = 0                # Content-Length bytes not yet written

    @property
    def disconnected(self) -> bool:
        return self._gone

    @disconnected.setter
    def disconnected(self, gone: bool) -> None:
        """uvicorn's ``connection_lost`` sets it while the response is incomplete."""
        self._gone = gone
        if gone and self._task is not None:
            self._task.cancel()

    def add_body(self, chunk: bytes) -> None:
        """httptools' ``on_body``: keep the chunk, pause reading past the high-water mark."""
        if self.response_complete:
            return
        body = self.body
        body.append(chunk)
        self._held += len(chunk)
        if len(body) > 1 and self._held > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        self.message_event.set()

    async def run_asgi(self, app=None) -> None:
        """What uvicorn starts as the request's task (its pipeline calls it by this name)."""
        # With the loop given: asyncio's own lookup of the running loop costs a getpid syscall.
        self._task = asyncio.current_task(self.message_event.loop)
        if fastpath.log.isEnabledFor(fastpath._VERBOSE1):      # noqa: SLF001
            version = f"/versions/{self.version}" if self.version else ""
            fastpath.log_request("POST", f"/v2/models/{self.model}{version}/infer")
        try:
            await fastpath._serve(self.core, self.scope, self.receive, self.send,  # noqa: SLF001
                                  self.model, self.version, self)
        except asyncio.CancelledError:
            if not self._gone:
                raise                    # not ours (shutdown): let it propagate
            self._task.uncancel()        # the client left: nobody to answer
        except BaseException as exc:  # noqa: BLE001 - as uvicorn: log, answer 500 or close
            log.error("infer on '%s' failed", self.model, exc_info=exc)
            if not self.response_started and not self.disconnected:
                self.response_started = True
                self.keep_alive = False
                self.transport.write(_SERVER_ERROR)
                self._complete()
            else:
                self.transport.close()
        else:
            if not self.response_complete and not self.disconnected:
                log.error("infer on '%s' did not complete its response", self.model)
                self.transport.close()
        finally:
            self._task = None
            self.on_response = _noop

    def whole_body(self):
        """The body, when it all arrived before the handler ran (the usual case): no
        ``receive`` round trip. None: read it with ``receive``."""
        if self.more_body or self.waiting_for_100_continue or self._gone \
                or self.response_complete:
            return None
        self.flow.resume_reading()
        body = self.body
        self.body, self._held = [], 0
        return body[0] if len(body) == 1 else b"".join(body)

    def respond(self, response) -> bool:
        """Write an ``InferResponse``'s head and body now, without ASGI messages. False:
        not one this writes (an error body, a compressed one, a paused or gone
        connection), the caller sends it the ASGI way."""
        if type(response) is not InferResponse or response.encoding is not None \
                or self.response_started or self._gone or self.flow.write_paused:
            return False
        fields, total = response.fields()
        self.response_started = True
        self.waiting_for_100_continue = False
        head = b"".join((_OK, _default_headers(self.default_headers), fields,
                         _END if self.keep_alive else _CLOSE_END))
        header, blobs = response.header, response.blobs
        try:
            if not blobs:
                self.transport.write_now(head + header)
            elif total < _JOIN:
                self.transport.write_now(b"".join((head, header, *blobs)))
            else:       # large outputs are written from the worker's slots, never copied
                self.transport.write(head + header)
                for blob in blobs:
                    self.transport.write(blob)
            self._complete()
        finally:
            self.transport.after_sent(response.result.release)
        return True

    async def receive(self) -> dict:
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(CONTINUE)
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = self.body
        self.body, self._held = [], 0
        data = body[0] if len(body) == 1 else b"".join(body)
        return {"type": "http.request", "body": data, "more_body": self.more_body}

    async def send(self, message: dict) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            self._start(message)
            return
        if self.response_complete or message["type"] != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {message['type']!r}")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        self._left -= len(body)
        if self._left < 0:
            raise RuntimeError("Response content longer than Content-Length")
        if self._head:
            if len(body) < _JOIN:
                self.transport.write(self._head + body)
            else:       # a large body is written from the worker's slot, never copied
                self.transport.write(self._head)
                self.transport.write(body)
            self._head = b""
        else:
            self.transport.write(body)
        if not more:
            if self._left != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self._complete()

    def _start(self, message: dict) -> None:
        if message["type"] != "http.response.start":
            raise RuntimeError(f"expected 'http.response.start', got {message['type']!r}")
        self.response_started = True
        self.waiting_for_100_continue = False
        parts = [STATUS_LINE[message["status"]], _default_headers(self.default_headers)]
        length = None
        for name, value in message.get("headers", ()):
            if name == b"content-length":
                length = int(value)
            parts += (name, b": ", value, b"\r\n")
        if length is None:
            raise RuntimeError("an infer response without Content-Length")
        if not self.keep_alive:
            parts.append(_CLOSE)
        parts.append(b"\r\n")
        self._head = b"".join(parts)
        self._left = length

    def _complete(self) -> None:
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
