"""A decoupled BLS call's iterator left unfinished (or never started) releases the responses
queued and still to come when it ends, not when the garbage collector gets to its frame."""
from __future__ import annotations

import asyncio
import gc
import queue
import threading

import pytest

from tritond import messages
from tritond.workers.python.bls_call import _drain_queue, _Unread
from tritond.workers.python.response_iterator import ResponseIterator


class _Channel:
    """What the iterators use of a ``BlsChannel``: responses without outputs, released here."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.client = self
        self.dropped: list = []

    def drop(self, resp) -> None:
        self.dropped.append(resp.rid)

    def releaser(self, resp):
        return None

    def release(self, release) -> None:
        release()


@pytest.fixture()
def no_gc():
    """Only reference counting frees: what a cycle holds stays held."""
    gc.disable()
    yield
    gc.enable()


@pytest.mark.parametrize("take", [0, 1, 2])
def test_an_async_iterator_left_unfinished_in_asyncio_run_releases_the_rest(no_gc, take):
    ch = _Channel()

    async def read() -> _Unread:
        answers: queue.SimpleQueue = queue.SimpleQueue()
        sink = _Unread(ch, answers.put, _drain_queue(answers))
        for rid in range(4):
            sink.put(messages.Response(rid, final=False))
        responses = ResponseIterator(answers, ch, None, sink.token())
        if take:
            count = 0
            async for _ in responses:
                count += 1
                if count == take:
                    break
        return sink

    sink = asyncio.run(read())
    assert sink.abandoned
    assert ch.dropped == list(range(take, 4))
    sink.put(messages.Response(9))              # one still to come
    assert ch.dropped[-1] == 9


@pytest.mark.parametrize("take", [0, 1, 2])
def test_an_iterator_left_unfinished_releases_the_rest(no_gc, take):
    ch = _Channel()
    answers: queue.SimpleQueue = queue.SimpleQueue()
    sink = _Unread(ch, answers.put, _drain_queue(answers))
    for rid in range(4):
        sink.put(messages.Response(rid, final=False))
    responses = ResponseIterator(answers, ch, None, sink.token())
    if take:
        for count, _ in enumerate(responses, 1):
            if count == take:
                break
    del responses
    assert sink.abandoned
    assert ch.dropped == list(range(take, 4))
