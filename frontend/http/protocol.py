"""uvicorn's httptools protocol with the writes of one loop turn corked together.

uvicorn writes a response's head and each body chunk with separate
``transport.write`` calls, i.e. separate send syscalls. On a small VM a
syscall costs about as much as the rest of a tiny response's Python work, so
the writes made during one event-loop turn are handed to the socket together:
one ``writelines`` (a single vectored send) per connection per turn.
"""
from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_JOIN_LIMIT = 64 * 1024   # below this, joining is cheaper than a vectored write


class CorkedTransport:
    """Buffers ``write`` calls until the end of the current loop turn."""

    __slots__ = ("_transport", "_loop", "_buf", "_size", "_scheduled")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buf: list = []
        self._size = 0
        self._scheduled = False

    def write(self, data) -> None:
        if not data:
            return
        self._buf.append(data)
        self._size += len(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        buf, self._buf = self._buf, []
        size, self._size = self._size, 0
        if not buf or self._transport.is_closing():
            return
        if len(buf) == 1:
            self._transport.write(buf[0])
        elif size <= _JOIN_LIMIT:
            self._transport.write(b"".join(buf))
        else:
            self._transport.writelines(buf)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=CorkedHttpToolsProtocol)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CorkedTransport(transport, self.loop))
