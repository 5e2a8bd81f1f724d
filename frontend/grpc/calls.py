"""One RPC on :class:`~.engine.CoreServer`: its context, unary and streaming bodies.

The handlers are grpc's own ``RpcMethodHandler`` objects (built by
``servicer.generic_handlers``); their context is the ``Call`` itself, with the
two context methods they use under grpc.aio: ``invocation_metadata()`` and
``await abort(code, details)`` (which answers the call and raises). Every
completion-queue tag is a plain callable the engine calls on the event loop with
the event. A unary handler's coroutine is stepped by the call itself (no
asyncio Task); a stream runs in a Task.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

import grpc
from grpc._cython import cygrpc

_log = logging.getLogger("tritond.frontend.grpc")
_OK = grpc.StatusCode.OK.value[0]
_UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]
# The one method whose handler is stepped without a Task: the hot path, which needs no
# current task. Every other handler (control calls use ``asyncio.wait_for``, which on
# Python >= 3.12 requires a current task) runs in a Task.
TASKLESS = frozenset({"/inference.GRPCInferenceService/ModelInfer"})


class Aborted(Exception):
    """Raised by ``Context.abort`` once the status is sent (grpc.aio's AbortError)."""


def _setter(future: asyncio.Future):
    """A tag that completes ``future`` with its event (unless its waiter left)."""
    def fire(event) -> None:
        if not future.done():
            future.set_result(event)
    return fire


class Call:
    """State of one server call, and its handlers' context (one object less per call).

    The call itself is its receive-close tag (``__call__``; the engine's poller
    drops a close that was not a cancellation without waking the loop),
    ``on_request`` a unary call's message tag.
    """

    __slots__ = ("call", "metadata", "handler", "loop", "task", "status_sent",
                 "metadata_sent", "cancelled", "coro", "waiting", "must_cancel", "taskless")

    def __init__(self, call, metadata, handler, loop, taskless: bool = False):
        self.call = call
        self.metadata = metadata
        self.handler = handler
        self.loop = loop
        self.task: asyncio.Task | None = None
        self.status_sent = False
        self.metadata_sent = False
        self.cancelled = False
        self.coro = None              # a unary handler's coroutine, stepped by _step
        self.waiting: asyncio.Future | None = None    # the future it awaits
        self.must_cancel = False
        self.taskless = taskless      # step the unary handler here (TASKLESS), else a Task

    # ------------------------------------------------- the servicer context
    def invocation_metadata(self):
        return self.metadata

    async def abort(self, code: grpc.StatusCode, details: str = ""):
        """Answer the call with ``code`` and ``details``, then raise (as grpc.aio does)."""
        self.finish(code.value[0], details)
        raise Aborted(details)

    # --------------------------------------------------------------- start
    def start(self) -> None:
        """Ask core for the close notice, then the request (unary) or run the stream."""
        self.call.start_server_batch((cygrpc.ReceiveCloseOnServerOperation(0),), self)
        if self.handler.request_streaming:
            self.task = self.loop.create_task(self._stream())
        else:
            self.call.start_server_batch((cygrpc.ReceiveMessageOperation(0),), self.on_request)

    def __call__(self, event) -> None:
        """The call is over for core: cancelled (client gone, deadline, shutdown) or done."""
        if event.batch_operations[0].cancelled() and not self.status_sent:
            self.cancelled = True
            if self.task is not None:
                self.task.cancel()
            elif self.coro is not None:
                self._cancel_unary()

    def on_request(self, event) -> None:
        raw = event.batch_operations[0].message()
        if raw is None or self.cancelled:      # no message: the client cancelled or half-closed
            if not self.cancelled:
                self.finish(grpc.StatusCode.INTERNAL.value[0], "no request message")
            return
        handler = self.handler
        try:
            request = handler.request_deserializer(raw) if handler.request_deserializer else raw
            coro = handler.unary_unary(request, self)
        except Exception as exc:      # noqa: BLE001 - any handler bug answers UNKNOWN
            self.failed(exc)
            return
        if not self.taskless:
            self.task = self.loop.create_task(self._unary(coro))
            return
        self.coro = coro
        self._advance()

    async def _unary(self, coro) -> None:
        """A unary handler that runs in a Task (every method but TASKLESS)."""
        try:
            response = await coro
        except (Aborted, asyncio.CancelledError):
            return
        except Exception as exc:      # noqa: BLE001 - any handler bug answers UNKNOWN
            self.failed(exc)
            return
        self._answer(response)

    # ------------------------------------------------------------- answers
    def finish(self, code: int, details: str, message: bytes | None = None) -> None:
        """Send the status (with initial metadata and ``message`` when due); once."""
        if self.status_sent:
            return
        self.status_sent = True
        ops = (cygrpc.SendStatusFromServerOperation((), code, details, 0),)
        if message is not None:
            ops = (cygrpc.SendMessageOperation(message, 0),) + ops
        if not self.metadata_sent:
            self.metadata_sent = True
            ops = (cygrpc.SendInitialMetadataOperation((), 0),) + ops
        self.call.start_server_batch(ops, None)

    async def send(self, message: bytes) -> bool:
        """Write one stream message and wait until core took it (one write at a time)."""
        ops = (cygrpc.SendMessageOperation(message, 0),)
        if not self.metadata_sent:
            self.metadata_sent = True
            ops = (cygrpc.SendInitialMetadataOperation((), 0),) + ops
        done = self.loop.create_future()
        self.call.start_server_batch(ops, _setter(done))
        return (await done).success

    def failed(self, exc: Exception) -> None:
        """A handler bug: UNKNOWN with the exception, as grpc.aio answers it."""
        _log.error("Unexpected %s raised by a gRPC handler", type(exc).__name__, exc_info=exc)
        self.finish(_UNKNOWN, f"Unexpected {type(exc)}: {exc}")

    # -------------------------------------------------------- unary body
    # A unary handler's coroutine is stepped here, not in an asyncio.Task
    # (bench/RESULTS.md, 2026-11-30 04:00): no Task object and no first step
    # deferred through the loop's ready queue (the handler starts inside the
    # dispatch that delivered its message: one loop iteration and ~4 syscalls
    # less per call at one stream). It keeps Task's protocol for coroutines:
    # one yields the future it awaits (``_asyncio_future_blocking``) or None
    # (``asyncio.sleep(0)``); a cancellation cancels the awaited future, or is
    # thrown in at the next step when there is none. There is no current task
    # inside a unary handler (``asyncio.current_task()`` is None, so no
    # ``asyncio.timeout``); nothing on the gRPC infer path needs one.
    def _advance(self, _future=None) -> None:
        """Done-callback of the awaited future (and the first step): step the coroutine."""
        self._step(None)

    def _step(self, exc: BaseException | None) -> None:
        """Run the coroutine to its next wait, or to its end and the answer."""
        self.waiting = None
        if self.must_cancel:
            self.must_cancel = False
            exc = asyncio.CancelledError()
        try:
            waited = self.coro.send(None) if exc is None else self.coro.throw(exc)
        except StopIteration as stop:
            self.coro = None
            self._answer(stop.value)
            return
        except (Aborted, asyncio.CancelledError):
            self.coro = None          # answered by abort(), or the client left (core ended it)
            return
        except Exception as err:      # noqa: BLE001 - any handler bug answers UNKNOWN
            self.coro = None
            self.failed(err)
            return
        if waited is None:            # a bare yield (asyncio.sleep(0)): again next turn
            self.loop.call_soon(self._advance)
        elif getattr(waited, "_asyncio_future_blocking", None):
            waited._asyncio_future_blocking = False
            self.waiting = waited
            waited.add_done_callback(self._advance)
        else:                         # what a Task refuses too
            self.loop.call_soon(self._step, RuntimeError(
                f"gRPC handler yielded {waited!r}, not a future"))

    def _cancel_unary(self) -> None:
        """Cancel the awaited future (its callback steps the coroutine), or mark the
        coroutine to get CancelledError at its next step, as ``Task.cancel`` does."""
        waiting = self.waiting
        if waiting is None or not waiting.cancel():
            self.must_cancel = True

    def _answer(self, response) -> None:
        serialize = self.handler.response_serializer
        try:
            if serialize is not None:
                response = serialize(response)
        except Exception as exc:      # noqa: BLE001
            self.failed(exc)
            return
        self.finish(_OK, "", response)

    # ------------------------------------------------------- stream body
    async def _requests(self):
        """The client's messages, one receive in flight at a time, until it half-closes."""
        deserialize = self.handler.request_deserializer
        while True:
            got = self.loop.create_future()
            self.call.start_server_batch((cygrpc.ReceiveMessageOperation(0),), _setter(got))
            raw = (await got).batch_operations[0].message()
            if raw is None:
                return
            yield deserialize(raw) if deserialize else raw

    async def _stream(self) -> None:
        handler = self.handler
        serialize = handler.response_serializer
        try:
            async with aclosing(handler.stream_stream(self._requests(), self)) as out:
                async for response in out:
                    if not await self.send(serialize(response) if serialize else response):
                        return                 # the call ended under us (client gone)
            self.finish(_OK, "")
        except Aborted:
            pass
        except asyncio.CancelledError:
            pass
        except Exception as exc:      # noqa: BLE001
            self.failed(exc)
