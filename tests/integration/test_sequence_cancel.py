"""A client's cancel of a queued request of a sequence, through a real tritond and the
real tritonclient, as Triton's sequence batcher does it (core sequence_batch_scheduler.cc;
qa/L0_request_cancellation scheduler_test.py): the cancelled request keeps its place;
once its slot reaches it, it and every request queued behind it are answered CANCELLED,
the slot is freed (a backlogged sequence takes it), the id is forgotten (a later request
without START fails) and each cancelled request counts as a CANCELED failure. Plain
direct and oldest models, and iterative ones (unary and gRPC stream).

The first request of each sequence waits on a gate (gated_repo.py) until the test has
queued the rest and the scheduler has the cancel (its verbose log says so), so what
each request gets does not depend on timing. Inputs live in one-off shared-memory
segments (--input-arena-byte-size=0): a request never answered would keep its segment.
"""
from __future__ import annotations

import queue
import re
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.integration.gated_repo import write
from tests.integration.sched_repo import wait_for
from tests.server import Server, segments_of

START_ERROR = ("inference request for sequence {} to model '{}' must specify the START flag "
               "on the first request of the sequence")
CANCELLED = ("StatusCode.CANCELLED", "Request was cancelled")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("seqcancel")
    gate = root / "gate"
    gate.mkdir()
    # tests leave sequences live (no END): a stop would wait the whole exit timeout for them
    srv = Server([write(root / "models", gate)], "--log-verbose=1",
                 "--input-arena-byte-size=0", "--exit-timeout-secs=2")
    yield srv, gate
    srv.stop()


def _inputs(n, model):
    shape = [1] if "iterative" in model else [1, 1]
    inp = grpcclient.InferInput("IN", shape, "INT32")
    inp.set_data_from_numpy(np.full(shape, n, np.int32))
    return [inp]


def _seen(result):
    return tuple(int(result.as_numpy(k).flat[0]) for k in ("OUT", "CORRID", "STARTED", "ENDED"))


def _metric(srv, name, model, reason=None) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics").read().decode()
    labels = f'model="{model}"' + (f',reason="{reason}"' if reason else "") + ',version="1"'
    found = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\d+)", text, re.M)
    return int(found.group(1)) if found else 0


def _cancels_seen(srv) -> int:
    return srv.output().count("cancel of request ")


def _no_input_segments(srv):
    """Every input segment of the frontend is gone (given back once idle, which needs
    every request answered)."""
    return not [s for s in segments_of(srv.proc.pid) if "-in-" in s]


class Calls:
    """Unary async_infer calls of one sequence; ``answers`` collects their outcomes."""

    def __init__(self, srv, model, corrid):
        self.client = grpcclient.InferenceServerClient(srv.grpc_url)
        self.model, self.corrid = model, corrid
        self.q: queue.Queue = queue.Queue()
        self.futures = {}

    def send(self, name, n, **kw):
        self.futures[name] = self.client.async_infer(
            self.model, _inputs(n, self.model),
            lambda result, error: self.q.put((name, result, error)),
            request_id=name, sequence_id=self.corrid, **kw)

    def answers(self, count):
        out = {}
        for _ in range(count):
            name, result, error = self.q.get(timeout=60)
            out[name] = _seen(result) if error is None else (error.status(), error.message())
        return out

    def infer(self, n, **kw):
        """One blocking call: what it saw, or (status, message)."""
        try:
            return _seen(self.client.infer(self.model, _inputs(n, self.model),
                                           sequence_id=self.corrid, **kw))
        except grpcclient.InferenceServerException as exc:
            return exc.status(), exc.message()


def _cancel(srv, calls, name):
    """Cancel ``name``'s call and wait until the scheduler has the cancel."""
    before = _cancels_seen(srv)
    calls.futures[name].cancel()
    wait_for(lambda: _cancels_seen(srv) > before, what="the scheduler to get the cancel")


@pytest.fixture(scope="module")
def unpipelined(tmp_path_factory):
    """direct without instance pipelining: b waits in the scheduler, as in Triton."""
    root = tmp_path_factory.mktemp("seqcancel-unpipelined")
    gate = root / "gate"
    gate.mkdir()
    srv = Server([write(root / "models", gate)], "--log-verbose=1",
                 "--input-arena-byte-size=0", "--instance-pipelining=false",
                 "--exit-timeout-secs=2")
    yield srv, gate
    srv.stop()


@pytest.mark.parametrize("model,corrid", [("gated_direct", 71), ("gated_oldest", 72)])
def test_a_cancelled_queued_request_takes_those_behind_it(served, model, corrid):
    # direct pipelines b behind a (in the worker: skipped there); oldest keeps it queued.
    # Either way b, c, d and e are pending: none executes yet (Triton's count).
    _queued_cancel(*served, model, corrid, queued=4)


def test_a_cancelled_queued_request_of_a_direct_batcher_without_pipelining(unpipelined):
    _queued_cancel(*unpipelined, "gated_direct", 75, queued=4)


def _queued_cancel(srv, gate, model, corrid, queued):
    """a runs (gated), b, c and d of its sequence queue behind it, e (another sequence)
    waits in the backlog; b is cancelled: c and d are cancelled with it, e gets the slot."""
    calls = Calls(srv, model, corrid)
    other = Calls(srv, model, corrid + 100)
    cancelled_before = _metric(srv, "nv_inference_request_failure", model, "CANCELED")
    try:
        calls.send("a", 105, sequence_start=True)        # waits on the gate
        wait_for(lambda: (gate / f"{corrid}.waiting").exists(), what="a to run")
        calls.send("b", 1)
        calls.send("c", 2)
        calls.send("d", 3, sequence_end=True)
        other.send("e", 4, sequence_start=True, sequence_end=True)   # backlog: one slot
        wait_for(lambda: _metric(srv, "nv_inference_pending_request_count", model) == queued,
                 what=f"{queued} requests queued")
        _cancel(srv, calls, "b")
        (gate / str(corrid)).touch()
        got = calls.answers(4)
        assert got["a"] == (5, corrid, 1, 0)
        assert got["b"][0] == "StatusCode.CANCELLED"     # the client's own cancel
        assert got["c"] == CANCELLED and got["d"] == CANCELLED
        assert other.answers(1) == {"e": (4, corrid + 100, 1, 1)}   # the slot was freed
        assert _metric(srv, "nv_inference_request_failure", model, "CANCELED") == \
            cancelled_before + 3
        assert calls.infer(1) == ("StatusCode.INVALID_ARGUMENT",
                                  START_ERROR.format(corrid, model))
        assert calls.infer(6, sequence_start=True, sequence_end=True) == (6, corrid, 1, 1)
        assert _metric(srv, "nv_inference_pending_request_count", model) == 0
        wait_for(lambda: _no_input_segments(srv), what="the input segments to go")
    finally:
        calls.client.close()
        other.client.close()


def test_an_iterative_sequence_cancels_its_rescheduled_request_too(served):
    """a's first step waits on the gate; b and c are the client's requests of the same
    id. b is cancelled: a's reschedule goes behind c (Triton's IterativeSequencer), and
    when b heads the slot b, c and a are all cancelled."""
    srv, gate = served
    model, corrid = "gated_iterative", 73
    calls = Calls(srv, model, corrid)
    try:
        calls.send("a", 102, sequence_start=True)        # two steps, the first gated
        wait_for(lambda: (gate / f"{corrid}.waiting").exists(), what="a to run")
        calls.send("b", 1)
        calls.send("c", 1)
        wait_for(lambda: _metric(srv, "nv_inference_pending_request_count", model) == 2,
                 what="b pipelined behind a, c queued: both pending")
        _cancel(srv, calls, "b")
        (gate / str(corrid)).touch()
        got = calls.answers(3)
        assert got["b"][0] == "StatusCode.CANCELLED"
        assert got["a"] == CANCELLED and got["c"] == CANCELLED
        assert calls.infer(1) == ("StatusCode.INVALID_ARGUMENT",
                                  START_ERROR.format(corrid, model))
        assert calls.infer(2, sequence_start=True) == (0, corrid, 0, 0)   # the slot is free
        wait_for(lambda: _no_input_segments(srv), what="the input segments to go")
    finally:
        calls.client.close()


def test_a_cancelled_stream_frees_the_slot_of_its_iterative_sequence(served):
    """A gRPC stream with a running step and a request queued behind it is cancelled:
    the running one ends at its reschedule (cancelled), the queued one when the slot
    reaches it; the slot serves a new START and nothing is left in shared memory."""
    srv, gate = served
    model, corrid = "gated_iterative_stream", 74
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    got: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    cancelled_before = _metric(srv, "nv_inference_request_failure", model, "CANCELED")
    try:
        client.async_stream_infer(model, _inputs(103, model), request_id="a",
                                  sequence_id=corrid, sequence_start=True)
        wait_for(lambda: (gate / f"{corrid}.waiting").exists(), what="a to run")
        client.async_stream_infer(model, _inputs(1, model), request_id="b",
                                  sequence_id=corrid)
        client.async_stream_infer(model, _inputs(1, model), request_id="c",
                                  sequence_id=corrid)
        wait_for(lambda: _metric(srv, "nv_inference_pending_request_count", model) == 2,
                 what="b and c pending")
        before = _cancels_seen(srv)
        client.stop_stream(cancel_requests=True)
        wait_for(lambda: _cancels_seen(srv) >= before + 3, what="the three cancels")
        (gate / str(corrid)).touch()
        result, error = got.get(timeout=30)
        assert result is None and error.status() == "StatusCode.CANCELLED"   # the client's
        wait_for(lambda: _metric(srv, "nv_inference_request_failure", model, "CANCELED") ==
                 cancelled_before + 3, what="a, b and c counted CANCELED")
        again = grpcclient.InferenceServerClient(srv.grpc_url)
        fresh: queue.Queue = queue.Queue()
        again.start_stream(callback=lambda result, error: fresh.put((result, error)))
        try:
            again.async_stream_infer(model, _inputs(1, model), sequence_id=corrid)
            result, error = fresh.get(timeout=30)      # the id is forgotten
            assert result is None and error.message() == START_ERROR.format(corrid, model)
            again.async_stream_infer(model, _inputs(2, model), sequence_id=corrid,
                                     sequence_start=True)
            assert [_seen(fresh.get(timeout=30)[0]) for _ in range(2)] == [
                (1, corrid, 1, 0), (0, corrid, 0, 0)]        # the one slot is free
        finally:
            again.stop_stream()
            again.close()
        wait_for(lambda: _no_input_segments(srv), what="the input segments to go")
    finally:
        client.close()
