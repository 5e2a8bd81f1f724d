"""A gRPC server on grpcio's core completion queue, driven from the asyncio loop.

Why not ``grpc.aio.server``: on this 2-core host its per-call machinery costs
more CPU than the whole rest of a request (bench/grpc_server_cost.py: a raw
echo costs ~120-150 µs per call under grpc.aio, ~30 µs here). grpc.aio's
poller thread writes one byte to a socketpair per completion event (4 events
per unary call) and the loop wakes to read each; it asks core for the next
call only after the loop handled the last one; every call also costs two
tasks and a future per batch. Here one thread blocks in
``CompletionQueue.poll`` (the GIL released), accepts each new call itself
(asks for the next one at once, starts the call's batches: core calls only)
and hands the other events to the loop with one ``call_soon_threadsafe`` per
*batch*: those arriving while a dispatch is already scheduled ride along with
it, and those with nothing to do there (a sent answer, a call that closed
uncancelled) are dropped. A unary call wakes the loop for its message only.
Core does the rest as it
does for grpc.aio and ``grpc.server`` (HTTP/2, TLS, deadlines, keepalive,
message limits, compression): the same ``cygrpc`` objects both are built on.

Handlers are the ``RpcMethodHandler``s of ``grpc.method_handlers_generic_handler``
(unary-unary and stream-stream, the shapes tritond serves); see ``calls``.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading

import grpc
from grpc._cython import cygrpc

from .calls import TASKLESS, Call

_log = logging.getLogger("tritond.frontend.grpc")
_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]
_OP_COMPLETE = cygrpc.CompletionType.operation_complete


class _Details:
    """What ``GenericRpcHandler.service`` reads (grpc.HandlerCallDetails)."""

    __slots__ = ("method", "invocation_metadata")

    def __init__(self, method: str, metadata):
        self.method = method
        self.invocation_metadata = metadata


class CoreServer:
    """The subset of ``grpc.aio.Server`` tritond uses: ports, start, stop."""

    def __init__(self, options: list[tuple[str, object]], generic_handlers: list,
                 taskless: frozenset[str] = TASKLESS):
        self._taskless = taskless            # unary methods stepped without a Task (calls.py)
        self._server = cygrpc.Server(tuple(options), False)
        self._cq = cygrpc.CompletionQueue()
        self._server.register_completion_queue(self._cq)
        self._generic = list(generic_handlers)
        self._methods: dict[str, object] = {}       # path -> handler, known paths only
        self._events: collections.deque = collections.deque()
        self._armed = False
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: asyncio.Future | None = None
        self._thread: threading.Thread | None = None
        self._accept_tag = self._accept      # one bound method: the poller compares by identity

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_http2_port(address.encode())

    def add_secure_port(self, address: str, credentials: grpc.ServerCredentials) -> int:
        return self._server.add_http2_port(address.encode(), credentials._credentials)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._drained = self._loop.create_future()
        self._server.start(backup_queue=False)
        self._running = True
        self._server.request_call(self._cq, self._cq, self._accept_tag)
        self._thread = threading.Thread(target=self._poll, name="grpc-cq", daemon=True)
        self._thread.start()

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls; cancel the rest now (``grace`` None or 0) or after ``grace`` s."""
        if not self._running:
            return
        self._running = False
        done = self._loop.create_future()
        self._server.shutdown(self._cq, lambda event: done.done() or done.set_result(None))
        if grace:
            try:
                await asyncio.wait_for(asyncio.shield(done), grace)
            except asyncio.TimeoutError:
                pass
        self._server.cancel_all_calls()
        await done
        self._cq.shutdown()          # the poller delivers what is left, then returns
        await self._drained
        self._server.destroy()

    # ---------------------------------------------------------- poller side
    def _poll(self) -> None:
        """Poller thread: block on the queue; wake the loop once per batch of events."""
        events = self._events
        loop = self._loop
        while True:
            event = self._cq.poll()
            if event.completion_type != _OP_COMPLETE:
                break                 # the queue's shutdown (no deadline given: no timeout)
            tag = event.tag
            if tag is self._accept_tag:
                self._accept(event)   # here: a unary call needs the loop only for its message
                continue
            # Nothing to do on the loop for a sent answer (tag None) or a call that
            # ended without a cancellation: no wake-up for them.
            if tag is None or (type(tag) is Call and not event.batch_operations[0].cancelled()):
                continue
            events.append(event)
            if not self._armed:
                self._armed = True
                try:
                    loop.call_soon_threadsafe(self._dispatch)
                except RuntimeError:  # the loop closed without stop(): nothing to serve
                    return
        try:
            loop.call_soon_threadsafe(self._finished)
        except RuntimeError:
            pass

    def _accept(self, event) -> None:
        """A new call (runs in the poller): ask for the next one, start this one.

        Only core calls here (thread-safe), no loop state: a unary call's batches
        start from this thread; a stream's task is created on the loop.
        """
        try:
            self._accept_call(event)
        except Exception:  # noqa: BLE001 - the poller must keep polling
            _log.exception("gRPC call setup failed")

    def _accept_call(self, event) -> None:
        if not event.success:         # the server is shutting down
            return
        if self._running:
            try:
                self._server.request_call(self._cq, self._cq, self._accept_tag)
            except ValueError:        # stop() began shutting the server down meanwhile
                pass
        call = event.call
        method = event.call_details.method.decode()
        handler = self._handler(method, event.invocation_metadata)
        if handler is None:
            call.start_server_batch((
                cygrpc.SendInitialMetadataOperation((), 0),
                cygrpc.SendStatusFromServerOperation((), _UNIMPLEMENTED, "Method not found!", 0),
            ), None)
            return
        served = Call(call, event.invocation_metadata, handler, self._loop,
                      taskless=method in self._taskless)
        if handler.request_streaming:
            self._loop.call_soon_threadsafe(served.start)
        else:
            served.start()

    def _handler(self, method: str, metadata):
        handler = self._methods.get(method)
        if handler is None:
            details = _Details(method, metadata)
            for generic in self._generic:
                handler = generic.service(details)
                if handler is not None:
                    self._methods[method] = handler    # only served paths: bounded
                    break
        return handler

    # ------------------------------------------------------------ loop side
    def _dispatch(self) -> None:
        # Disarm before draining: an event appended from here on schedules a
        # new dispatch, or is popped by this one; none is left behind.
        self._armed = False
        events = self._events
        while events:
            event = events.popleft()
            try:
                event.tag(event)
            except Exception:  # noqa: BLE001 - one call's failure must not stall the rest
                _log.exception("gRPC completion handler failed")

    def _finished(self) -> None:
        self._dispatch()
        if not self._drained.done():
            self._drained.set_result(None)
