"""Trace points outside the infer path: response-cache hits and the generate endpoints.

**Cache hits.** Triton looks the cache up in its scheduler, after QUEUE_START,
and a hit answers without running the model (dynamic_batch_scheduler.cc
Enqueue / CacheLookUp): the trace has REQUEST_START, QUEUE_START and
REQUEST_END and no COMPUTE_* (Triton records no cache activity of its own;
TENSORS level: the inputs and the cached outputs). tritond looks up in the
frontend (frontend/cache.py) and stamps the same: REQUEST_START when the cache
took the request, QUEUE_START when the lookup began, REQUEST_END once the
answer was read. A miss runs the request and is traced as any other.

**Generate** (``/generate``, ``/generate_stream``; Triton's http_server.cc
HandleGenerate): HTTP_RECV_START/END around reading the body, the model's
stamps, INFER_RESPONSE_COMPLETE per response, and HTTP_SEND_START/END around
each body chunk (one for /generate, one per event for /generate_stream). The
trace is written once the last chunk was sent.
"""
from __future__ import annotations

from contextlib import aclosing

from starlette.responses import Response


def cache_hit(core, mv, req, result, start_ns: int, lookup_ns: int) -> None:
    """A traced request answered from the cache (``req.trace`` is its Trace)."""
    trace = req.trace
    trace.model, trace.version, trace.request_id = mv.name, mv.version, req.id
    trace.stamp("REQUEST_START", start_ns)
    trace.stamp("QUEUE_START", lookup_ns)
    trace.stamp("REQUEST_END")
    if trace.tensors is None:
        return
    for t in req.inputs:
        data = t.data if t.shm is None else core.shm.read_input(t.shm)
        trace.tensor("TENSOR_QUEUE_INPUT", t.name, t.datatype, t.shape, data)
    for o in result.outputs:        # client shm outputs: no data (not ours to read)
        trace.tensor("TENSOR_BACKEND_OUTPUT", o.name, o.datatype, o.shape, o.data)


def start(core, request, model: str):
    """A generate request's Trace when it is sampled (HTTP_RECV_START stamped), else None."""
    if not core.tracer.maybe:
        return None
    trace = core.tracer.start(model, request.headers)
    if trace is not None:
        trace.stamp("HTTP_RECV_START")
    return trace


async def results(stream, trace):
    """``FrontendCore.infer_stream``'s results, stamping INFER_RESPONSE_COMPLETE (closing
    this closes ``stream``, which cancels the request)."""
    async with aclosing(stream):
        async for result in stream:
            trace.stamp("INFER_RESPONSE_COMPLETE")
            yield result


class SentResponse:
    """An ASGI response that stamps HTTP_SEND_START/END around its one body and then
    writes the trace (a /generate answer or error)."""

    def __init__(self, response: Response, trace, tracer) -> None:
        self.response, self.trace, self.tracer = response, trace, tracer

    async def __call__(self, scope, receive, send) -> None:
        self.trace.stamp("HTTP_SEND_START")
        try:
            await self.response(scope, receive, send)
        finally:
            self.trace.stamp("HTTP_SEND_END")
            if self.trace.version:          # it reached a model (Triton traces no refusal)
                self.tracer.finish(self.trace)


async def events(chunks, trace, tracer):
    """/generate_stream's body: HTTP_SEND_START/END around each event; the trace is
    written at the end of the stream (or when the client went away)."""
    try:
        async with aclosing(chunks):
            async for chunk in chunks:
                trace.stamp("HTTP_SEND_START")
                yield chunk                 # resumed once Starlette sent it
                trace.stamp("HTTP_SEND_END")
    finally:
        if trace.version:
            tracer.finish(trace)
