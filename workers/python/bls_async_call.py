"""``pb_utils.InferenceRequest.async_exec()``: a BLS call awaited on the caller's event loop.

The call is sent as ``exec()`` sends it (``bls_call.py``); the channel's reader thread
hands each answer to the caller's loop. A call given up (``asyncio.wait_for``, a cancelled
task) cancels the callee's request and releases its answers, queued or still to come.
"""
from __future__ import annotations

import asyncio

from . import bls, blstrace
from .bls_call import POLL_S, _Unary, _Unread, build, stream


async def execute_async(pb, decoupled: bool = False):
    """``async_exec()``: the answer resolves a future on the caller's event loop."""
    ch = bls.channel()
    bls.check_serving()
    ch.start_reader()
    loop = asyncio.get_running_loop()
    req, slots = build(pb, ch, decoupled)
    if decoupled:                   # Triton's (synchronous) ResponseIterator, as exec()'s
        return stream(pb, ch, req, slots)
    answers: asyncio.Queue = asyncio.Queue()
    sink = _Unread(ch, lambda resp: _to_loop(loop, sink, answers, resp), _drain_async(answers))
    rid = ch.send(req, slots, blstrace.watch(pb, req, sink.put))
    try:
        call = _Unary(ch, rid)
        while True:
            resp = await _next(answers)
            if resp is None:
                call.idle()
                continue
            if (answer := call.take(resp)) is not None:
                return answer
    except asyncio.CancelledError:       # given up (asyncio.wait_for, a cancelled task)
        ch.cancel(rid)
        sink.abandon()                   # its answers, queued or still to come: released
        raise


async def _next(answers: asyncio.Queue):
    """The next Response, or None after POLL_S without one."""
    if not answers.empty():
        return answers.get_nowait()
    getter = asyncio.ensure_future(answers.get())
    done, _ = await asyncio.wait((getter,), timeout=POLL_S)
    if done:
        return getter.result()
    getter.cancel()
    try:
        return await getter        # it may have completed while being cancelled
    except asyncio.CancelledError:
        return None


def _to_loop(loop, sink: _Unread, answers: asyncio.Queue, resp) -> None:
    """On the BLS thread: hand ``resp`` to the caller's loop; a loop already closed
    (``asyncio.run`` returned) has nobody to read it."""
    try:
        loop.call_soon_threadsafe(_arrived, sink, answers, resp)
    except RuntimeError:
        sink.ch.client.drop(resp)


def _arrived(sink: _Unread, answers: asyncio.Queue, resp) -> None:
    """On the caller's loop: a Response queued, or released if its iterator is gone."""
    with sink.ch.lock:              # not while ``sink.abandon`` drains the queue
        if not sink.abandoned:
            answers.put_nowait(resp)
            return
    sink.ch.release(lambda: sink.ch.client.drop(resp))


def _drain_async(answers: asyncio.Queue):
    def drain() -> list:
        items = []
        while not answers.empty():
            items.append(answers.get_nowait())
        return items
    return drain

