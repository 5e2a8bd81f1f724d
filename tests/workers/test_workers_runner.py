"""BatchRunner: one Execute over a real backend, real shm and a real StreamHub; ``post``
(the worker's outbox) records what would be sent."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from tritond import messages
from tritond.errors import Code
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache
from tritond.workers.answers import EnsembleAnswers
from tritond.workers.cancel import CancelWatch
from tritond.workers.executor import Executor
from tritond.workers.onnxruntime import OnnxRuntimeBackend
from tritond.workers.outputs import OutputWriter
from tritond.workers.runner import BatchRunner
from tritond.workers.shapes import ModelIO
from tritond.workers.streams import StreamHub

from tests.specs import spec_from_dict

from . import models
from .helpers import context


@pytest.fixture
def runner(repo, frontend):
    """A BatchRunner on add_sub (ONNX Runtime); ``runner.sent`` is what it posted."""
    backend = OnnxRuntimeBackend(context(models.add_sub(repo)))
    spec = spec_from_dict(backend.auto_complete({"name": "m"}))
    backend.load(spec)
    pool = ArenaPool(frontend.server_id, "w1", 1 << 20)
    cache = SegmentCache()
    writer = OutputWriter(pool, cache)
    io = ModelIO(spec)
    sent: list = []
    post = lambda addr, msg: sent.append((addr, msg))      # noqa: E731
    hub = StreamHub("@w1", writer, io, post, lambda: None)
    runner = BatchRunner(Executor(backend, io, cache, writer, "@w1"), hub, CancelWatch(None),
                         EnsembleAnswers("@w1", post), post, "@sched", "@w1", "m_0",
                         logging.getLogger("test"))
    runner.sent = sent
    try:
        yield runner
    finally:
        hub.close()
        backend.unload()
        cache.close()
        pool.close()


def test_a_request_cancelled_before_its_batch_started_is_answered_cancelled_not_run(
        runner, frontend):
    sent = runner.sent
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    reqs = [frontend.request(rid, {"INPUT0": a, "INPUT1": a}, batch=1) for rid in (1, 2)]
    runner.run(messages.Execute(5, reqs), [messages.CancelRunning(5, [("fe", 2)])])
    answers = {m.rid: m for addr, m in sent if type(m) is messages.Response}
    assert answers[1].error is None
    np.testing.assert_array_equal(
        frontend.read(next(o for o in answers[1].outputs if o.name == "OUTPUT0")), a + a)
    assert answers[2].error == messages.ErrorInfo(int(Code.CANCELLED),
                                                  "Request was cancelled")
    executed = [(addr, m) for addr, m in sent if type(m) is messages.Executed]
    assert len(executed) == 1 and executed[0][0] == "@sched"
    assert executed[0][1].batch_id == 5 and executed[0][1].failed == [2]
    assert type(sent[-1][1]) is messages.Executed          # after the answers


def test_a_cancel_of_the_running_batch_read_with_its_execute_runs_it(runner, frontend):
    """The scheduler dispatched the batch (running) and then cancelled a request of it; the
    worker reads both at once. The request runs (its model sees is_cancelled()), as in
    Triton once a backend has it; skipping it left a sequence's slot without that step
    and counted the request a BACKEND failure."""
    sent = runner.sent
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    reqs = [frontend.request(rid, {"INPUT0": a, "INPUT1": a}, batch=1) for rid in (1, 2)]
    runner.run(messages.Execute(5, reqs), [messages.CancelRunning(5, [("fe", 2)], True)])
    answers = {m.rid: m for addr, m in sent if type(m) is messages.Response}
    assert answers[1].error is None and answers[2].error is None
    np.testing.assert_array_equal(
        frontend.read(next(o for o in answers[2].outputs if o.name == "OUTPUT0")), a + a)
    (executed,) = [m for addr, m in sent if type(m) is messages.Executed]
    assert executed.failed == []
