"""frontend/stepping.py: a coroutine stepped as a Task would be, on a real event loop."""
from __future__ import annotations

import asyncio

import pytest

from tritond.frontend.stepping import Stepper


def run(make_coro, between=None):
    """Step ``make_coro(loop)``; ``between(stepper)`` runs once it first waits.
    Returns ('result', value) or ('error', exc) and the current task seen inside."""
    async def body():
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        seen = []

        async def wrapped():
            seen.append(asyncio.current_task())
            return await make_coro(loop)

        stepper = Stepper(wrapped(), loop, lambda v: ended.set_result(("result", v)),
                          lambda e: ended.set_result(("error", e)))

        def begin():                       # as the protocol does: in a loop callback
            stepper.start()
            started.append(list(seen))     # the first step ran now
            if between is not None:
                between(stepper)
        started = []
        loop.call_soon(begin)
        outcome = await ended
        assert started == [[None]]         # ... and in no Task
        assert stepper.done() and not stepper.cancel()
        return outcome
    return asyncio.run(body())


def test_awaited_futures_bare_yields_tasks_and_shields():
    async def coro(loop):
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, 2)
        await asyncio.sleep(0)
        got = await fut
        got += await asyncio.ensure_future(asyncio.sleep(0, 3))
        return got + await asyncio.shield(asyncio.sleep(0.01, 4))
    assert run(coro) == ("result", 9)


def test_an_error_ends_it_with_on_error():
    async def coro(loop):
        await asyncio.sleep(0)
        raise KeyError("x")
    kind, exc = run(coro)
    assert kind == "error" and type(exc) is KeyError


def test_cancel_while_awaiting_cancels_the_awaited_future():
    awaited = []

    async def coro(loop):
        fut = loop.create_future()
        awaited.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            return "saw the cancel"
    assert run(coro, lambda s: s.cancel()) == ("result", "saw the cancel")
    assert awaited[0].cancelled()


def test_cancel_between_bare_yields_is_thrown_in_at_the_next_step():
    steps = []

    async def coro(loop):
        while True:
            steps.append(len(steps))
            await asyncio.sleep(0)
    kind, exc = run(coro, lambda s: s.cancel())
    assert kind == "error" and isinstance(exc, asyncio.CancelledError)
    assert steps == [0]                    # cancelled before its second step


def test_a_cancel_the_coroutine_swallows_lets_it_go_on():
    async def coro(loop):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0)
        return "went on"
    assert run(coro, lambda s: s.cancel()) == ("result", "went on")


def test_yielding_a_non_future_raises_runtimeerror_inside():
    class Odd:
        def __await__(self):
            yield "not a future"

    async def coro(loop):
        with pytest.raises(RuntimeError, match="not a future"):
            await Odd()
        return "refused"
    assert run(coro) == ("result", "refused")
