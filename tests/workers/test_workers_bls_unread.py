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


def _finished_stream(ch: _Channel, count: int) -> tuple[ResponseIterator, _Unread]:
    answers: queue.SimpleQueue = queue.SimpleQueue()
    sink = _Unread(ch, answers.put, _drain_queue(answers))
    for rid in range(count):
        sink.put(messages.Response(rid, final=rid == count - 1))
    return ResponseIterator(answers, ch, None, sink.token()), sink


def test_a_finished_iterator_starts_over_and_an_unfinished_pass_resumes():
    """python_backend's ResponseIterator::Iter: once a pass read the final response, the
    next ``for`` starts from the first one (the same objects, kept until the iterator
    goes); a pass stopped midway is resumed by the next ``for``, in the first pass too."""
    ch = _Channel()
    responses, _ = _finished_stream(ch, 4)
    first = []
    for resp in responses:
        first.append(resp)
        break
    first += list(responses)                    # the first pass resumes
    assert len(first) == 4
    for resp in responses:                      # a second pass, stopped after two
        if resp is first[1]:
            break
    assert list(responses) == first[2:]         # resumed, not restarted
    assert list(responses) == first             # then from the start again
    assert asyncio.run(_collect(responses)) == first       # ``async for`` alike
    assert ch.dropped == []                     # none released while the iterator lives


async def _collect(responses) -> list:
    return [r async for r in responses]
