"""Reading an HTTP request body with memory bounded by what the client really sent.

A declared ``Content-Length`` over the limit is refused at once, before a byte
of the body is read (with Triton's 400 where Triton bounds the whole body: JSON
and raw bodies; 413 for a body carrying binary tensors). Below it, the body is collected in the chunks
uvicorn hands over (it stops reading the socket while a chunk waits, so the
client cannot run ahead), and the buffer of the declared size is reserved only
once an eighth of it has arrived: a client that declares more than it sends
costs at most eight times what it sent, while a real body is still copied into
its final buffer about once.
"""
from __future__ import annotations

from tritond.errors import Code, TritonError, invalid_arg

RESERVE_AFTER = 8           # reserve the declared size once 1/RESERVE_AFTER of it arrived


class TooLarge(TritonError):
    """A body over ``--http-max-input-size``: HTTP 413 (Payload Too Large)."""

    http_status = 413

    def __init__(self, n: int, limit: int):
        super().__init__(Code.INVALID_ARG,
                         f"request body of {n} bytes exceeds the maximum allowed input size "
                         f"of {limit} bytes. Use --http-max-input-size to increase the limit.")


def too_large(n: int, limit: int) -> TritonError:
    """A JSON header or decompressed body over the limit (Triton's 400 and text)."""
    return invalid_arg(f"request JSON size of {n} bytes exceeds the maximum allowed input size "
                       f"of {limit} bytes. Use --http-max-input-size to increase the limit.")


def raw_too_large(n: int, limit: int) -> TritonError:
    """A raw binary request's body over the limit (Triton's 400 and text)."""
    return invalid_arg(f"Raw input has a byte_size ({n} bytes) that exceeds the maximum allowed "
                       f"value of {limit} bytes. Use --http-max-input-size to increase the limit.")


def _declared(content_length: bytes | None, limit: int, refuse) -> int | None:
    size = int(content_length) if content_length is not None and content_length.isdigit() else None
    if size is not None and size > limit:
        raise refuse(size, limit)
    return size


def whole_body(content_length: bytes | None, body, limit: int, refuse=TooLarge):
    """A body the server already holds in full, checked as ``read_body`` checks one."""
    if _declared(content_length, limit, refuse) is None and len(body) > limit:
        raise too_large(len(body), limit)
    return body


async def read_body(content_length: bytes | None, receive, limit: int, refuse=TooLarge):
    """The whole body, refusing more than ``limit`` bytes before and while reading it.
    ``refuse(n, limit)``: the error for a declared length over the limit: a body that is
    all JSON or all raw input gets Triton's 400 and text for that (``too_large``,
    ``raw_too_large``); one with binary tensors a 413 (Triton bounds only their JSON)."""
    size = _declared(content_length, limit, refuse)
    msg = await receive()
    first = msg.get("body", b"")
    more = msg.get("more_body", False)
    if not more:
        if size is None and len(first) > limit:
            raise too_large(len(first), limit)
        return first
    if size is None:
        return await _read_unsized(first, receive, limit)
    return await _read_sized(first, receive, size)


async def _read_sized(first: bytes, receive, size: int):
    chunks, pos, more = [first], len(first), True
    buf = view = None
    if pos > size:
        raise _longer(size)
    while more:
        if buf is None and pos * RESERVE_AFTER >= size:
            buf = bytearray(size)            # enough of it arrived: reserve it all now
            view = memoryview(buf)
            at = 0
            for chunk in chunks:
                view[at:at + len(chunk)] = chunk
                at += len(chunk)
            chunks = None
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise invalid_arg(f"client disconnected after {pos} of {size} body bytes")
        chunk = msg.get("body", b"")
        more = msg.get("more_body", False)
        end = pos + len(chunk)
        if end > size:
            raise _longer(size)
        if view is not None:
            view[pos:end] = chunk
        else:
            chunks.append(chunk)
        pos = end
    if pos != size:
        raise invalid_arg(f"request body ended after {pos} of its {size} bytes")
    return buf if buf is not None else b"".join(chunks)


def _longer(size: int) -> TritonError:
    return invalid_arg(f"request body is longer than its Content-Length of {size} bytes")


async def _read_unsized(first: bytes, receive, limit: int) -> bytes:
    chunks, total, more = [first], len(first), True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise invalid_arg("client disconnected while sending the body")
        chunk = msg.get("body", b"")
        more = msg.get("more_body", False)
        total += len(chunk)
        if total > limit:
            raise too_large(total, limit)
        chunks.append(chunk)
    return b"".join(chunks)
