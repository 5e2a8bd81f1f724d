"""BLS child traces: a call made with ``trace=request.trace()`` on a traced request.

As Triton's Python backend (request_executor.cc spawns a child trace of the
request's trace), the BLS request is traced as a child of the request the
model received: REQUEST_START when it is sent, the callee's QUEUE_START and
COMPUTE_* (its Response.trace), REQUEST_END when its final Response arrives,
then the callee's own children (an ensemble's steps, nested BLS calls). They
ride to the frontend in the calling request's ``Response.children``
(workers/childtraces.py). A call with no trace, or the trace of an untraced
request, is not traced.
"""
from __future__ import annotations

import time

from tritond import messages

from .. import childtraces
from .inference import InferenceTrace


def trace_of(req: messages.Request) -> InferenceTrace:
    """``request.trace()`` of a traced request: it collects the BLS calls' traces."""
    trace = InferenceTrace()
    trace._children = childtraces.open_for(req.frontend, req.rid)
    return trace


def watch(pb, req: messages.Request, callback):
    """``callback`` for the Responses of the BLS request ``req`` built from ``pb``; when
    ``pb`` carries a traced request's trace, one that also records the child."""
    kids = getattr(pb.trace(), "_children", None)
    if kids is None:
        return callback
    ref = kids.next()
    req.trace = [ref]                  # the scheduler appends QUEUE_START
    start = time.monotonic_ns()
    model, version, request_id = req.model, req.version, req.request_id

    def traced(resp: messages.Response) -> None:
        if resp.final:
            kids.add(ref, model, version, request_id, start, resp, time.monotonic_ns())
        callback(resp)

    return traced
