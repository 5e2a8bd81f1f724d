"""One RPC on :class:`~.engine.CoreServer`: its context, unary and streaming bodies.

The handlers are grpc's own ``RpcMethodHandler`` objects (built by
``servicer.generic_handlers``); their context is the ``Call`` itself, with the
two context methods they use under grpc.aio: ``invocation_metadata()`` and
``await abort(code, details)`` (which answers the call and raises). Every
completion-queue tag is a plain callable the engine calls on the event loop with
the event. A ModelInfer handler's coroutine is stepped by a ``Stepper`` (no
asyncio Task); every other handler runs in a Task.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

import grpc
from grpc._cython import cygrpc

from ..stepping import Stepper

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
                 "metadata_sent", "cancelled", "stepper", "taskless")

    def __init__(self, call, metadata, handler, loop, taskless: bool = False):
        self.call = call
        self.metadata = metadata
        self.handler = handler
        self.loop = loop
        self.task: asyncio.Task | None = None
        self.status_sent = False
        self.metadata_sent = False
        self.cancelled = False
        self.stepper: Stepper | None = None    # runs a TASKLESS unary handler
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
            elif self.stepper is not None:
                self.stepper.cancel()

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
        self.stepper = Stepper(coro, self.loop, self._answer, self._raised)
        self.stepper.start()

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
    # A TASKLESS handler's coroutine is stepped by a Stepper (../stepping.py;
    # bench/RESULTS.md, 2026-11-30 04:00): no Task object, and it starts inside
    # the dispatch that delivered its message (one loop iteration and ~4
    # syscalls less per call at one stream). Nothing on the gRPC infer path
    # needs a current task.
    def _raised(self, exc: BaseException) -> None:
        """The stepped handler ended with ``exc``."""
        if not isinstance(exc, (Aborted, asyncio.CancelledError)):
            self.failed(exc)   # else: answered by abort(), or the client left (core ended it)

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
