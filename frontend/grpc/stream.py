"""ModelStreamInfer: many requests in flight on one bidirectional stream.

Requests on a stream are independent (tritonclient matches responses by id),
so each one runs as its own task iterating ``FrontendCore.infer_stream`` (N
responses per request, the last marked ``triton_final_response``; today's
non-decoupled models give one) and responses are written as they come; a
single writer (this async generator) keeps grpc.aio's one-write-at-a-time
rule. Requests and responses are raw bytes handled by ``wire`` as unary
ModelInfer's are (``parse_request``, ``encode_stream``), so each tensor is
copied once per direction on streams too. An error becomes an in-stream ``error_message``
and the stream stays open, unless the client opened it with metadata
``triton_grpc_error: true``, in which case the stream ends with that status
(protocol.md §2.3).
"""
from __future__ import annotations

import asyncio
from contextlib import aclosing

from tritond.errors import TritonError, internal, invalid_arg

from . import codec, wire
from .guard import BAD_MESSAGE
from .status import STATUS

_DONE = object()


def wants_grpc_error(context) -> bool:
    """True when the client asked for errors as a gRPC status (``triton_grpc_error``)."""
    for key, value in context.invocation_metadata() or ():
        if key == "triton_grpc_error":
            return value.lower() == "true"
    return False


async def serve_stream(core, request_iterator, context):
    """Async generator of ModelStreamInferResponse for one ModelStreamInfer call.

    When the call ends early (client gone, deadline), grpc.aio cancels this
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

    async def one(msg, raw) -> None:
        try:
            req = codec.decode_request(msg, raw)
            # aclosing: a failure here cancels the request now, not at garbage collection.
            async with aclosing(core.infer_stream(req)) as results:
                async for result in results:
                    try:
                        queue.put_nowait(wire.encode_stream(result))
                    finally:
                        result.release()
        except TritonError as exc:
            queue.put_nowait((exc, msg.id))
        except Exception as exc:  # a bug must fail its request, not hang the stream
            queue.put_nowait((internal(f"{type(exc).__name__}: {exc}"), msg.id))

    async def reader() -> None:
        try:
            async for data in request_iterator:
                # Raw bytes, split as ModelInfer's are (big tensors are not copied);
                # garbage is the client's error (INVALID_ARG, no traceback) and
                # the stream goes on, as after any other failed request.
                try:
                    msg, raw = wire.parse_request(data)
                except Exception:  # noqa: BLE001 - any parse failure
                    queue.put_nowait((invalid_arg(BAD_MESSAGE), ""))
                    continue
                state["open"] += 1
                task = asyncio.create_task(one(msg, raw))
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
            if isinstance(item, tuple):
                exc, request_id = item
                if close_on_error:
                    await context.abort(STATUS[exc.code], exc.message)
                item = wire.encode_stream_error(exc.message, request_id)
            yield item
        await read_task          # re-raise a reader failure, if any
    finally:
        read_task.cancel()
        for task in list(tasks):
            task.cancel()
