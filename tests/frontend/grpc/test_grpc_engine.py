"""engine.CoreServer with plain handlers, called by a real grpc client over loopback.

The servicer suites (test_grpc_servicer, integration) run tritond's RPCs on
it; these pin the server's own contract: statuses, metadata, cancellation,
deadlines, streams in order, unknown methods and both ways of stopping.
"""
from __future__ import annotations

import asyncio
import threading

import grpc
import pytest

from tritond.frontend.grpc.engine import CoreServer

SERVICE = "t.S"


class Handlers:
    """The test service; ``cancelled`` and ``release`` cross from the loop's thread."""

    def __init__(self):
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.held_in = threading.Event()
        self.release: asyncio.Event | None = None

    async def echo(self, request, context):
        return request

    async def fail(self, request, context):
        raise ValueError("boom")

    async def abort(self, request, context):
        await context.abort(grpc.StatusCode.NOT_FOUND, "nope")

    async def meta(self, request, context):
        return dict(context.invocation_metadata())["k"].encode()

    async def hang(self, request, context):
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def held(self, request, context):
        self.held_in.set()
        await self.release.wait()
        return b"released"

    async def spin(self, request, context):
        """Only bare yields (asyncio.sleep(0)): a cancellation lands between steps."""
        self.started.set()
        try:
            while True:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def yields(self, request, context):
        """Bare yields, a task and a shielded future awaited, then the answer."""
        for _ in range(3):
            await asyncio.sleep(0)
        doubled = await asyncio.get_running_loop().create_task(_twice(request))
        return await asyncio.shield(_twice(doubled))

    async def odd(self, request, context):
        await _Odd()

    async def chat(self, requests, context):
        async for request in requests:
            if request == b"abort":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "asked to")
            yield request.upper()

    def generic(self):
        unary = {name: grpc.unary_unary_rpc_method_handler(getattr(self, name.lower()))
                 for name in ("Echo", "Fail", "Abort", "Meta", "Hang", "Held", "Spin",
                              "Yields", "Odd")}
        unary["Chat"] = grpc.stream_stream_rpc_method_handler(self.chat)
        return [grpc.method_handlers_generic_handler(SERVICE, unary)]


async def _twice(data: bytes) -> bytes:
    await asyncio.sleep(0)
    return data * 2


class _Odd:
    """An awaitable that yields what no asyncio Task accepts."""

    def __await__(self):
        yield 42


class Running:
    """A CoreServer on an event loop in a background thread."""

    def __init__(self, stepped: bool = True):
        self.handlers = Handlers()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # stepped: every unary method but Echo is stepped without a Task, as tritond's
        # ModelInfer is (calls.TASKLESS); else all run in Tasks, as its other methods do.
        names = ("Fail", "Abort", "Meta", "Hang", "Held", "Spin", "Yields", "Odd")
        self.server = CoreServer([], self.handlers.generic(), taskless=frozenset(
            f"/{SERVICE}/{m}" for m in names) if stepped else frozenset())
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.call(self.server.start())
        self.handlers.release = self.call(self._event())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    @staticmethod
    async def _event():
        return asyncio.Event()

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def unary(self, name: str, body: bytes = b"x", **kw):
        return self.channel.unary_unary(f"/{SERVICE}/{name}")(body, **kw)

    def close(self) -> None:
        self.channel.close()
        self.call(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(params=["stepped", "task"])
def srv(request):
    running = Running(stepped=request.param == "stepped")
    yield running
    running.close()


def _status(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code(), err.value.details()


def test_unary_round_trip_and_metadata(srv):
    assert srv.unary("Echo", b"\x00payload") == b"\x00payload"
    assert srv.unary("Meta", metadata=(("k", "v1"),)) == b"v1"


def test_abort_and_handler_errors_become_statuses(srv):
    assert _status(lambda: srv.unary("Abort")) == (grpc.StatusCode.NOT_FOUND, "nope")
    code, details = _status(lambda: srv.unary("Fail"))
    assert code == grpc.StatusCode.UNKNOWN and "ValueError" in details and "boom" in details
    assert srv.unary("Echo", b"after") == b"after"       # the server keeps going


def test_unknown_method_is_unimplemented(srv):
    code, _ = _status(lambda: srv.channel.unary_unary("/t.S/Nope")(b""))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_deadline_cancels_the_handler(srv):
    code, _ = _status(lambda: srv.unary("Hang", timeout=0.3))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert srv.handlers.cancelled.wait(10)


def test_client_cancel_cancels_the_handler(srv):
    future = srv.channel.unary_unary(f"/{SERVICE}/Hang").future(b"")
    assert srv.handlers.started.wait(10)
    future.cancel()
    assert srv.handlers.cancelled.wait(10)


def test_stream_answers_in_order_then_ok(srv):
    chat = srv.channel.stream_stream(f"/{SERVICE}/Chat")
    assert list(chat(iter([b"a", b"b", b"c"] * 50))) == [b"A", b"B", b"C"] * 50
    assert list(chat(iter([]))) == []


def test_stream_abort_ends_the_stream_with_its_status(srv):
    chat = srv.channel.stream_stream(f"/{SERVICE}/Chat")
    replies = chat(iter([b"a", b"abort", b"c"]))
    assert next(replies) == b"A"
    code, details = _status(lambda: next(replies))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "asked to")


def test_stop_with_grace_lets_a_call_finish():
    running = Running()
    try:
        pending = running.channel.unary_unary(f"/{SERVICE}/Held").future(b"")
        # an Echo answered first does not prove the Held call reached the server under load
        assert running.handlers.held_in.wait(10)
        stopping = asyncio.run_coroutine_threadsafe(running.server.stop(30), running.loop)
        running.loop.call_soon_threadsafe(running.handlers.release.set)
        assert pending.result(10) == b"released"
        stopping.result(10)
        # the poller ended with the queue (it signals the loop just before it returns)
        running.server._thread.join(10)
        assert not running.server._thread.is_alive()
    finally:
        running.close()


def test_stop_now_cancels_calls_in_flight():
    running = Running()
    try:
        pending = running.channel.unary_unary(f"/{SERVICE}/Hang").future(b"")
        assert running.handlers.started.wait(10)
        running.call(running.server.stop(None))
        assert running.handlers.cancelled.wait(10)
        assert pending.exception(10).code() in (grpc.StatusCode.CANCELLED,
                                                grpc.StatusCode.UNAVAILABLE)
    finally:
        running.close()


def test_unary_handler_steps_bare_yields_tasks_and_shields(srv):
    # unary handlers run without a Task (calls.Call._step): every way a
    # coroutine can wait under asyncio resumes it
    assert srv.unary("Yields", b"ab") == b"abababab"


def test_unary_handler_yielding_a_non_future_is_unknown(srv):
    code, details = _status(lambda: srv.unary("Odd"))
    assert code == grpc.StatusCode.UNKNOWN and "RuntimeError" in details and "42" in details
    assert srv.unary("Echo", b"after") == b"after"


def test_cancel_between_bare_yields_reaches_the_handler(srv):
    # no future to cancel: the CancelledError is thrown in at the next step
    future = srv.channel.unary_unary(f"/{SERVICE}/Spin").future(b"")
    assert srv.handlers.started.wait(10)
    future.cancel()
    assert srv.handlers.cancelled.wait(10)
    assert srv.unary("Echo", b"after") == b"after"


def test_calls_resumed_in_one_turn_each_get_their_answer(srv):
    # 32 calls released by one event resume in one loop turn (as the answers of
    # one scheduler frame do), with other calls arriving meanwhile
    held = srv.channel.unary_unary(f"/{SERVICE}/Held")
    echo = srv.channel.unary_unary(f"/{SERVICE}/Echo")
    pending = [held.future(b"") for _ in range(32)]
    assert srv.unary("Echo") == b"x"           # the held calls are in by now
    srv.loop.call_soon_threadsafe(srv.handlers.release.set)
    echoes = [echo.future(bytes([i])) for i in range(32)]
    assert [p.result(10) for p in pending] == [b"released"] * 32
    assert [e.result(10) for e in echoes] == [bytes([i]) for i in range(32)]
