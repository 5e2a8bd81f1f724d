"""ModelStreamInfer: many requests in flight on one bidirectional stream.

Requests on a stream are independent (tritonclient matches responses by id),
so each one runs as its own task iterating ``FrontendCore.infer_stream`` (N
responses per request, each with ``triton_final_response``; a decoupled
model's bare final flag reaches the client only when the request set
``triton_enable_empty_final_response``) and responses are written as they
come, their output slots released once written (backpressure); a
single writer (this async generator) keeps gRPC's one-write-at-a-time
rule. Requests and responses are raw bytes handled by ``wire`` as unary
ModelInfer's are (``parse_request``, ``encode_stream``), so each tensor is
copied once per direction on streams too. An error becomes an in-stream ``error_message``
and the stream stays open, unless the client opened it with metadata
``triton_grpc_error: true``, in which case the stream ends with that status.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

from tritond.errors import TritonError, internal, invalid_arg

from . import codec, wire
from ..forward import forward
from .guard import BAD_MESSAGE
from .status import STATUS

_DONE = object()
EMPTY_FINAL = "triton_enable_empty_final_response"


def wants_grpc_error(context) -> bool:
    """True when the client asked for errors as a gRPC status (``triton_grpc_error``)."""
    for key, value in context.invocation_metadata() or ():
        if key == "triton_grpc_error":
            return value.lower() == "true"
    return False


def start_trace(tracer, model: str, context, received: int):
    """Sample one gRPC request, unary or of a stream (asked only when tracing may be on)."""
    trace = tracer.start(model, dict(context.invocation_metadata() or ()))
    if trace is not None:
        # the server hands the handler a whole message: its reading ended as the call began
        trace.stamp("GRPC_WAITREAD_START", received)
        trace.stamp("GRPC_WAITREAD_END", received)
    return trace


def _sent(tracer, trace, release):
    """The final response's release, which also ends its trace once it was written."""
    def done() -> None:
        release()
        trace.stamp("GRPC_SEND_END")
        tracer.finish(trace)
    return done


async def serve_stream(core, request_iterator, context):
    """Async generator of ModelStreamInferResponse for one ModelStreamInfer call.

    When the call ends early (client gone, deadline), the engine cancels this
    generator; the ``finally`` cancels the request tasks, whose cancelled
    ``core.infer_stream`` iterators post Cancel to the scheduler.
    """
    queue: asyncio.Queue = asyncio.Queue()
    tasks: set[asyncio.Task] = set()
    state = {"open": 1}          # the reader plus every request in flight

    def finished(_task=None) -> None:
        state["open"] -= 1
        if state["open"] == 0:
            queue.put_nowait(_DONE)

    async def one(msg, raw, received: int) -> None:
        trace = None
        try:
            req = codec.decode_request(msg, raw)
            if core.options.grpc_header_forward_pattern:
                forward(core.options.grpc_header_forward_pattern,
                        context.invocation_metadata() or (), req.parameters)
            if received:
                trace = req.trace = start_trace(core.tracer, req.model, context, received)
            empty_final = bool(req.parameters and req.parameters.get(EMPTY_FINAL))
            # aclosing: a failure here cancels the request now, not at garbage collection.
            async with aclosing(core.infer_stream(req)) as results:
                async for result in results:
                    if result.error is not None:        # one failed response of many
                        queue.put_nowait((result.error, (
                            msg.id, msg.model_name, msg.model_version, False)))
                        continue
                    if result.empty:
                        if not empty_final:
                            continue    # a bare final flag reaches the client only on request
                        # Triton names the request's model and version (maybe "") here
                        result.model_name, result.model_version = msg.model_name, msg.model_version
                    if trace is not None and result.final:
                        trace.stamp("INFER_RESPONSE_COMPLETE")
                        trace.stamp("GRPC_SEND_START")
                    try:
                        data = wire.encode_stream(result)
                    except BaseException:
                        result.release()
                        raise
                    # Released once written: the worker's credits (workers/streams.py)
                    # then pause a model that outruns this stream's reader.
                    release = result.release
                    if trace is not None and result.final:
                        release = _sent(core.tracer, trace, release)
                        trace = None
                    queue.put_nowait((data, release))
        except TritonError as exc:
            queue.put_nowait((exc, (msg.id,)))
        except Exception as exc:  # a bug must fail its request, not hang the stream
            queue.put_nowait((internal(f"{type(exc).__name__}: {exc}"), (msg.id,)))
        if trace is not None and trace.version:   # it failed after reaching its model
            core.tracer.finish(trace)

    async def reader() -> None:
        try:
            async for data in request_iterator:
                # Raw bytes, split as ModelInfer's are (big tensors are not copied);
                # garbage is the client's error (INVALID_ARG, no traceback) and
                # the stream goes on, as after any other failed request.
                try:
                    msg, raw = wire.parse_request(data)
                except Exception:  # noqa: BLE001 - any parse failure
                    queue.put_nowait((invalid_arg(BAD_MESSAGE), ("",)))
                    continue
                state["open"] += 1
                received = time.monotonic_ns() if core.tracer.maybe else 0
                task = asyncio.create_task(one(msg, raw, received))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(finished)
        finally:
            finished()

    close_on_error = wants_grpc_error(context)
    read_task = asyncio.create_task(reader())
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            first, second = item
            if type(first) is bytes:
                try:
                    yield first
                finally:
                    second()
                continue
            exc, head = first, second       # head: encode_stream_error's fields
            if close_on_error:
                await context.abort(STATUS[exc.code], exc.message)
            yield wire.encode_stream_error(exc.message, *head)
        await read_task          # re-raise a reader failure, if any
    finally:
        read_task.cancel()
        for task in list(tasks):
            task.cancel()
        while not queue.empty():          # written never: their slots go back
            item = queue.get_nowait()
            if type(item) is tuple and type(item[0]) is bytes:
                item[1]()
