"""The BLS channel over real sockets: who reads answers, and when output slots go back."""
from __future__ import annotations

import itertools
import os
import queue
import threading

import pytest

from tritond import messages
from tritond.endpoint import SyncEndpoint
from tritond.framing import address
from tritond.workers.python import bls, pb_utils

_ids = itertools.count()


@pytest.fixture()
def chan(monkeypatch):
    server = f"blstest{os.getpid()}x{next(_ids)}"      # the channel's socket outlives it
    sched = SyncEndpoint(address(server, "scheduler"), messages.Release)
    callee = SyncEndpoint(address(server, "callee"), messages.Release)
    ch = bls.BlsChannel(server, "w9", sched.addr, 1 << 16)
    monkeypatch.setattr(bls, "_channel", ch)
    yield ch, sched, callee
    ch.close()
    for ep in (sched, callee):
        ep.close()


def _answer(ch, callee, rid: int) -> messages.Response:
    """The callee worker answers ``rid`` with one output slot of its own."""
    resp = messages.Response(rid, outputs=[messages.TensorRef("OUT", "FP32", [4], "/seg", 64, 16)],
                             instance=callee.addr)
    callee.send_now(ch.address, [resp])
    return resp


def _pending(ch) -> tuple[int, queue.SimpleQueue]:
    answers: queue.SimpleQueue = queue.SimpleQueue()
    ch.client.pending[7] = (_Sink(answers.put), [])
    return 7, answers


class _Sink:
    """A ResponseStream-like sink (the client hands it every Response)."""

    def __init__(self, put):
        self._put = put

    def done(self):
        return False

    def set_result(self, resp):
        self._put(resp)


def test_an_exec_caller_reads_its_own_answer_while_no_thread_reads(chan):
    ch, _, callee = chan
    rid, answers = _pending(ch)
    _answer(ch, callee, rid)
    resp = ch.wait(answers, 5.0)
    assert resp.rid == rid and resp.outputs[0].offset == 64
    assert ch._thread is None                      # no second thread woke for it


def test_once_the_thread_runs_it_reads_and_the_caller_waits_on_its_queue(chan):
    ch, _, callee = chan
    ch.start_reader()
    rid, answers = _pending(ch)
    _answer(ch, callee, rid)
    assert ch.wait(answers, 5.0).rid == rid
    assert ch._thread is not None and ch._thread.is_alive()
    with pytest.raises(queue.Empty):               # nothing more: Empty after the timeout
        ch.wait(answers, 0.05)


def test_outputs_dropped_inside_execute_wait_for_the_executed(chan, monkeypatch):
    ch, sched, callee = chan
    resp = _answer(ch, callee, 1)
    monkeypatch.setattr(pb_utils, "_executing", [object()])     # inside execute, main thread
    ch.release(ch.client.releaser(resp))
    assert sched.recv(0.2) == []                   # not sent on its own
    held = bls.held_releases()
    assert [(r.instance, r.slots) for r in held] == [(callee.addr, [("/seg", 64)])]
    assert bls.held_releases() == []               # taken once


@pytest.mark.parametrize("where", ["outside execute", "another thread"])
def test_outputs_dropped_elsewhere_go_at_once(chan, monkeypatch, where):
    ch, sched, callee = chan
    resp = _answer(ch, callee, 1)
    release = ch.client.releaser(resp)
    if where == "outside execute":
        monkeypatch.setattr(pb_utils, "_executing", [])
        ch.release(release)
    else:
        monkeypatch.setattr(pb_utils, "_executing", [object()])
        t = threading.Thread(target=ch.release, args=(release,))
        t.start()
        t.join()
    got = sched.recv(5.0)
    assert [(m.instance, m.slots) for m in got] == [(callee.addr, [("/seg", 64)])]
    assert bls.held_releases() == []


def test_a_callers_failing_callback_neither_ends_the_thread_nor_loses_other_answers(chan):
    ch, _, callee = chan
    ch.start_reader()

    def fails(resp):
        raise RuntimeError("Event loop is closed")     # e.g. a closed loop's callback

    ch.client.pending[5] = (_Sink(fails), [])
    rid, answers = _pending(ch)
    callee.send_now(ch.address, [messages.Response(5), messages.Response(rid)])   # one frame
    assert ch.wait(answers, 5.0).rid == rid
    assert ch._thread.is_alive()
    ch.client.pending[rid] = (_Sink(answers.put), [])
    _answer(ch, callee, rid)                           # and later ones still come
    assert ch.wait(answers, 5.0).rid == rid
