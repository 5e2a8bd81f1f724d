"""Several requests queued under one client-chosen correlation id of an iterative model
(issue 11), through a real tritond and the real tritonclient, as Triton core does it
(sequence_utils.cc, IterativeSequencer::RescheduleRequest):

- a rescheduled request goes behind the requests already queued for its slot, so two
  requests of one id take turns, each with the slot's state and its own flags;
- the first one released for good ends the sequence at once (Triton enqueues a
  cancelled END null request): a later request of the id without START fails, a
  request still queued runs once more but its reschedule fails (Triton releases it
  without an answer; tritond answers the START error), and the slot is freed after it;
- a request the client sent with END cannot be rescheduled (core's INVALID_ARG).

The model sleeps 0.3 s per step, so the second request is queued before the first
step ends."""
from __future__ import annotations

import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.integration.iterative_repo import write
from tests.server import Server

START_ERROR = ("inference request for sequence 42 to model '{}' must specify the START flag "
               "on the first request of the sequence")
NOT_CONFIGURED = ("Request is released with TRITONSERVER_REQUEST_RELEASE_RESCHEDULE, while the "
                  "model is not configured to handle such a flag.")
SEEN = ("OUT", "CORRID", "STARTED", "ENDED")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    srv = Server([write(tmp_path_factory.mktemp("queued"),
                        names=["iterative_queue", "iterative_queue_unary"])])
    yield srv
    srv.stop()


def _inputs(n):
    inp = grpcclient.InferInput("IN", [1], "INT32")
    inp.set_data_from_numpy(np.array([n], np.int32))
    return [inp]


def _seen(result):
    return tuple(int(result.as_numpy(k)[0]) for k in SEEN)


class Stream:
    def __init__(self, srv):
        self.client = grpcclient.InferenceServerClient(srv.grpc_url)
        self.q: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.q.put((result, error)))

    def send(self, n, rid, **kwargs):
        self.client.async_stream_infer("iterative_queue", _inputs(n), request_id=rid,
                                       sequence_id=42, **kwargs)

    def get(self):
        """(request id, OUT, CORRID, STARTED, ENDED), or the error's message."""
        result, error = self.q.get(timeout=30)
        if error is not None:
            return error.message()
        return (result.get_response().id, *_seen(result))

    def close(self):
        self.client.stop_stream()
        self.client.close()


def test_two_requests_of_one_id_take_turns_until_one_ends_the_sequence(served):
    s = Stream(served)
    try:
        s.send(2, "a", sequence_start=True)
        s.send(3, "b")
        assert [s.get() for _ in range(5)] == [
            ("a", 1, 42, 1, 0),            # a's START step; its reschedule goes behind b
            ("b", 2, 42, 0, 0),            # b, in the same slot, its own flags
            ("a", 0, 42, 0, 0),            # a's second step: answered, the sequence ends
            ("b", 1, 42, 0, 0),            # b was queued already: it runs once more ...
            START_ERROR.format("iterative_queue")]   # ... and cannot run again
        s.send(1, "c")                     # the id is forgotten: no step without START
        assert s.get() == START_ERROR.format("iterative_queue")
        s.send(1, "d", sequence_start=True)     # the one slot was freed
        assert s.get() == ("d", 0, 42, 1, 0)
    finally:
        s.close()


def test_unary_requests_of_one_id_and_a_request_with_end(served):
    client = grpcclient.InferenceServerClient(served.grpc_url)
    model = "iterative_queue_unary"
    done: queue.Queue = queue.Queue()
    try:
        for n, rid, start in ((2, "a", True), (3, "b", False)):
            client.async_infer(model, _inputs(n),
                               lambda result, error, rid=rid: done.put((rid, result, error)),
                               request_id=rid, sequence_id=42, sequence_start=start)
        got = dict((rid, (r, e)) for rid, r, e in (done.get(timeout=30) for _ in range(2)))
        result, error = got["a"]
        assert error is None and _seen(result) == (0, 42, 0, 0)   # its last step: flags 0
        result, error = got["b"]
        assert result is None and error.message() == START_ERROR.format(model)
        with pytest.raises(InferenceServerException) as err:     # END: no reschedule
            client.infer(model, _inputs(2), sequence_id=42, sequence_start=True,
                         sequence_end=True)
        assert err.value.message() == NOT_CONFIGURED
        assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
        result = client.infer(model, _inputs(1), sequence_id=42, sequence_start=True)
        assert _seen(result) == (0, 42, 1, 0)     # the slot was freed after each
    finally:
        client.close()
