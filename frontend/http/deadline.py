"""Time limits on reading a request, so that slow or silent clients cannot hold
connections (slowloris): ``--http-header-timeout``.

uvicorn closes a connection that stays idle *between* requests
(``timeout_keep_alive``) but waits forever for a connection's first byte, for
the rest of a request's headers and for the rest of its body. Here:

- headers: from the connection (or the request's first byte) to the end of
  its headers, at most ``timeout`` seconds in all (dribbling bytes does not
  extend it);
- body: at most ``timeout`` seconds without a byte;
- once the request is complete, no limit (the model may take its time).
"""
from __future__ import annotations

import asyncio
from typing import Callable

from tritond.idletimer import IdleTimer

IDLE, HEADERS, BODY = 0, 1, 2


class ReadDeadline:
    """Calls ``expire()`` when a request is not read in time (one timer per connection:
    an :class:`IdleTimer` whose clock starts at the headers and restarts per body byte)."""

    __slots__ = ("_timeout", "_expire", "_timer", "_phase")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float,
                 expire: Callable[[], None]) -> None:
        self._timeout = timeout
        self._expire = expire
        self._timer = IdleTimer(loop, timeout, self._lapsed)
        self._phase = IDLE

    def headers(self) -> None:
        """A request (or a connection) began: its headers must be complete in time."""
        self._enter(HEADERS)

    def body(self) -> None:
        """Headers are in: from now on, the limit is on silence."""
        self._enter(BODY)

    def touch(self) -> None:
        """Bytes arrived (restarts the silence clock of a body)."""
        if self._phase == BODY:
            self._timer.idle()

    def stop(self) -> None:
        """The request is complete. The timer stays armed: on a keep-alive connection
        the next request reuses it (it re-arms or lets itself lapse), instead of one
        timer made and cancelled per request."""
        self._phase = IDLE
        self._timer.busy()

    def close(self) -> None:
        """The connection is gone."""
        self._phase = IDLE
        self._timer.close()

    def _enter(self, phase: int) -> None:
        if self._timeout <= 0:
            return
        self._phase = phase
        self._timer.idle()          # the clock starts now

    def _lapsed(self) -> None:
        self._phase = IDLE
        self._expire()


def with_header_timeout(protocol: type, timeout: float) -> type:
    """``protocol`` (a CorkedHttpToolsProtocol) with its ``header_timeout`` set."""
    return type(protocol.__name__, (protocol,), {"header_timeout": float(timeout)})
