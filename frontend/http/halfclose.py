"""A client's FIN while its request runs: half-close (answer it) or gone (cancel it)?

Both look the same to the server: a read returns 0. Triton answers a client
that half-closes after sending its request (``shutdown(SHUT_WR)``), and
tritond cancels the request of a client that closed (frontend/http/disconnect.py).
To tell them apart the server sends an interim ``100 Continue`` (RFC 9110
§15.2: clients must accept unexpected 1xx responses) before the final
response: a closed peer's kernel answers it with a reset, which shows as the
socket's TCP state becoming CLOSE within a round trip; a half-closed peer
simply reads and skips it.
"""
from __future__ import annotations

import asyncio
import socket

PROBE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TCP_CLOSE = 7                 # tcp_info.tcpi_state
_FIRST_S, _MAX_S = 0.005, 0.2  # checks back off while the request runs


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (-1 if not TCP or unreadable)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except (OSError, AttributeError):
        return -1


class PeerProbe:
    """Probes once, then checks the socket until ``done()`` or the peer is gone."""

    __slots__ = ("_loop", "_sock", "_gone", "_done", "_wait")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport, gone, done) -> None:
        self._loop = loop
        self._sock = transport.get_extra_info("socket")
        self._gone = gone           # called when the peer is gone
        self._done = done           # True once the exchange is over
        self._wait = _FIRST_S
        if tcp_state(self._sock) < 0:
            return                  # not TCP: treat the FIN as a half-close
        transport.write(PROBE)
        loop.call_later(self._wait, self._check)

    def _check(self) -> None:
        if self._done():
            return
        if tcp_state(self._sock) == _TCP_CLOSE:
            self._gone()
            return
        self._wait = min(self._wait * 2, _MAX_S)
        self._loop.call_later(self._wait, self._check)
