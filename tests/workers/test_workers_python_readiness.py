"""The readiness channel of a worker whose Python model defines is_ready(): answered on its
own thread; checks that arrive while is_ready() runs share that call's answer (python_backend
keeps one check in flight per instance)."""
from __future__ import annotations

import os
import threading

from tritond import messages
from tritond.channel import address
from tritond.endpoint import SyncEndpoint
from tritond.framing import READY_SUFFIX
from tritond.workers.python.readiness import ReadinessChannel


def _replies(ep: SyncEndpoint, n: int) -> list:
    got: list = []
    while len(got) < n:
        got += ep.recv(30)
    return got


def test_checks_during_a_call_share_its_answer_and_errors_are_replies():
    sid = f"rd{os.getpid():x}"
    worker = address(sid, "w0")
    sched = SyncEndpoint(address(sid, "scheduler"), messages.TO_SCHEDULER)
    entered, release = threading.Event(), threading.Event()
    calls = []

    def check() -> bool:
        calls.append(1)
        entered.set()
        release.wait(30)
        if len(calls) == 2:
            raise ValueError("no")
        return True

    channel = ReadinessChannel(worker, "w0_0", check)
    try:
        sched.send_now(worker + READY_SUFFIX, [messages.UserReadyCheck(1, sched.addr)])
        assert entered.wait(30)            # the first check is running
        sched.send_now(worker + READY_SUFFIX, [messages.UserReadyCheck(2, sched.addr)])
        release.set()
        replies = _replies(sched, 2)
        assert [(r.instance, r.qid, r.ready, r.error) for r in replies] == [
            (worker, 1, True, None), (worker, 2, True, None)]
        assert len(calls) == 1             # one call answered both
        sched.send_now(worker + READY_SUFFIX, [messages.UserReadyCheck(3, sched.addr)])
        (reply,) = _replies(sched, 1)
        assert (reply.qid, reply.ready, reply.error.message) == (3, False, "ValueError: no")
    finally:
        channel.close()
        sched.close()
