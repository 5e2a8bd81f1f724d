"""What the pure scheduler core asks its shell to send."""
from __future__ import annotations

from typing import Union

import msgspec

from tritond import messages
from tritond.errors import Code

from .router import Batch
from .wire import ExecuteView


class Dispatch(msgspec.Struct):
    """Send ``execute`` to the worker instance at ``address``."""

    address: str
    execute: ExecuteView


class Reply(msgspec.Struct):
    """Send ``response`` (an error) to the frontend at ``frontend``."""

    frontend: str
    response: messages.Response


class Notify(msgspec.Struct):
    """Send a control ``message`` (CancelRunning) to the worker at ``address``."""

    address: str
    message: Union[messages.CancelRunning, messages.Release]


Output = Union[Dispatch, Reply, Notify]


def _merge(a: Batch | None, b: Batch) -> Batch:
    if a is None:
        return b
    merged = Batch(a.inst, a.entries + b.entries, a.size + b.size)
    merged.batch_id, merged.dispatch_ns = a.batch_id, a.dispatch_ns
    return merged


def _error(req, code: Code, message: str, version: int = 0) -> Reply:
    return Reply(req.frontend, messages.Response(
        rid=req.rid, error=messages.ErrorInfo(int(code), message),
        model_version=version or req.version))


def _refused(req, code: Code, message: str, version: int = 0) -> Reply:
    """``req`` refused before it was queued (``Response.refused``)."""
    reply = _error(req, code, message, version)
    reply.response.refused = True
    return reply
