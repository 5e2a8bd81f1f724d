"""Undecodable gRPC requests are the client's error: INVALID_ARGUMENT, no traceback.

grpc's own deserializer failure is logged with a traceback and answered
UNKNOWN; here each method's deserializer never raises (it returns a
``BadMessage``), and the handler answers INVALID_ARGUMENT instead of running.
"""
from __future__ import annotations

import functools

import grpc

from tritond.errors import invalid_arg

BAD_MESSAGE = "unable to parse the request message"


class BadMessage:
    """Stands for a request that did not parse (``id`` for stream error responses)."""

    __slots__ = ("id",)

    def __init__(self) -> None:
        self.id = ""


def lenient(parse):
    """A request deserializer that returns ``BadMessage()`` instead of raising."""
    def deserialize(data: bytes):
        try:
            return parse(data)
        except Exception:  # noqa: BLE001 - any parse failure is the client's error
            return BadMessage()
    return deserialize


def checked(msg):
    """``msg``, or INVALID_ARG if it did not parse (for stream requests)."""
    if type(msg) is BadMessage:
        raise invalid_arg(BAD_MESSAGE)
    return msg


def guarded(handler):
    """A unary handler that answers INVALID_ARGUMENT for a ``BadMessage``."""
    @functools.wraps(handler)
    async def call(request, context):
        if type(request) is BadMessage:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, BAD_MESSAGE)
        return await handler(request, context)
    return call
