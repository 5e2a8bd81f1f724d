"""Frames and addresses shared by both channel endpoints (async and blocking).

A frame is a 4-byte little-endian length followed by one msgpack list of
messages; every process listens on one abstract-namespace Unix socket.
"""
from __future__ import annotations

import struct

_LEN = struct.Struct("<I")
MAX_FRAME = 1 << 30


# A worker's BLS channel listens at its worker's address plus this (workers/python/bls.py);
# the scheduler finds the worker of a BLS caller by it.
BLS_SUFFIX = "-bls"
# A Python model's is_ready() channel (workers/python/readiness.py)
READY_SUFFIX = "-ready"


def address(server_id: str, role: str) -> str:
    """An abstract-namespace address; unique per server run and role."""
    return f"\0tritond-{server_id}-{role}"


def role_of(addr: str) -> str:
    """The role part of an address (no server id: safe to log)."""
    parts = addr.split("-", 2)
    return parts[2] if len(parts) == 3 and addr.startswith("\0tritond-") else "unnamed"


def printable(addr: str) -> str:
    """An address for logs and error texts: the role only (the server id is a secret)."""
    if addr.startswith("\0tritond-"):
        return role_of(addr)
    return addr.replace("\0", "@")


class FrameBuffer:
    """Accumulates stream bytes and yields complete frame payloads."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data) -> list:
        """Complete frame payloads in ``data`` (plus what was kept from before).

        The payloads may be views into ``data``: decode them before the next
        read reuses its buffer (both inbox kinds do).
        """
        if self._buf:
            self._buf += data
            src = self._buf
            copy = True              # views into _buf would pin it against the del below
        else:
            src = memoryview(data)
            copy = False
        frames = []
        pos = 0
        n = len(src)
        while n - pos >= 4:
            (size,) = _LEN.unpack_from(src, pos)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds the {MAX_FRAME} limit")
            if n - pos - 4 < size:
                break
            payload = src[pos + 4:pos + 4 + size]
            frames.append(bytes(payload) if copy else payload)
            pos += 4 + size
        if copy:
            del self._buf[:pos]
        elif pos < n:
            self._buf = bytearray(src[pos:])
        return frames


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload
