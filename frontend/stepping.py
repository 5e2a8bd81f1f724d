"""A coroutine stepped on the event loop without an asyncio Task.

A Task per request costs an object and, worse, defers the coroutine's first
step through the loop's ready queue (one more loop iteration, and on a busy
loop more wake-ups and syscalls per request). The gRPC ``ModelInfer`` call
(``grpc/calls.py``) and the HTTP infer exchange (``http/exchange.py``) start
their handler inside the callback that delivered the request instead, and a
``Stepper`` runs it on with Task's protocol for coroutines: a coroutine yields
the future it awaits (``_asyncio_future_blocking``), whose done-callback steps
it again, or None (``asyncio.sleep(0)``: stepped again next turn); a cancel
cancels the awaited future, or is thrown in at the next step when there is
none. There is no current task inside (``asyncio.current_task()`` is None):
no ``asyncio.timeout``, and no ``asyncio.wait_for`` on Python >= 3.12, on a
stepped path. Each step runs in the context of the callback that resumes it;
nothing on these paths sets a ContextVar.

uvicorn's server waits on (and, past a graceful-shutdown timeout, cancels)
the objects in ``server_state.tasks``: a Stepper has the ``cancel`` and
``done`` that needs.
"""
from __future__ import annotations

import asyncio


class Stepper:
    """Runs ``coro``; then ``on_result(value)`` or ``on_error(exc)`` (Exception or
    CancelledError), once."""

    __slots__ = ("coro", "loop", "on_result", "on_error", "waiting", "must_cancel")

    def __init__(self, coro, loop: asyncio.AbstractEventLoop, on_result, on_error) -> None:
        self.coro = coro              # None once it ended
        self.loop = loop
        self.on_result = on_result
        self.on_error = on_error
        self.waiting: asyncio.Future | None = None    # the future it awaits
        self.must_cancel = False

    def start(self) -> None:
        """The first step, now (not next loop turn, as a Task's)."""
        self._step(None)

    def done(self) -> bool:
        return self.coro is None

    def cancel(self, msg=None) -> bool:
        """As ``Task.cancel``: cancel the awaited future (its callback steps the
        coroutine), or throw CancelledError in at the next step."""
        if self.coro is None:
            return False
        waiting = self.waiting
        if waiting is None or not waiting.cancel(msg=msg):
            self.must_cancel = True
        return True

    def _advance(self, _future=None) -> None:
        """Done-callback of the awaited future: step the coroutine."""
        self._step(None)

    def _step(self, exc: BaseException | None) -> None:
        """Run the coroutine to its next wait, or to its end."""
        self.waiting = None
        if self.must_cancel:
            self.must_cancel = False
            exc = asyncio.CancelledError()
        try:
            waited = self.coro.send(None) if exc is None else self.coro.throw(exc)
        except StopIteration as stop:
            self.coro = None
            self.on_result(stop.value)
            return
        except (Exception, asyncio.CancelledError) as err:  # noqa: BLE001 - the owner decides
            self.coro = None
            self.on_error(err)
            return
        if waited is None:            # a bare yield (asyncio.sleep(0)): again next turn
            self.loop.call_soon(self._advance)
        elif getattr(waited, "_asyncio_future_blocking", None):
            waited._asyncio_future_blocking = False
            self.waiting = waited
            waited.add_done_callback(self._advance)
        else:                         # what a Task refuses too
            self.loop.call_soon(self._step, RuntimeError(
                f"a stepped coroutine yielded {waited!r}, not a future"))
