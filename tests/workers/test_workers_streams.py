"""StreamHub: responses handed over from model threads, output-slot credits, markers, stats."""
from __future__ import annotations

import threading
import time
import uuid

import numpy as np

from tritond import messages
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache
from tritond.workers import streams
from tritond.workers.outputs import OutputWriter
from tritond.workers.python import pb_utils
from tritond.workers.shapes import ModelIO
from tritond.workers.streams import StreamHub

from tests.specs import spec_from_dict

from .helpers import request

SPEC = spec_from_dict({"name": "m", "backend": "python", "max_batch_size": 0,
                       "input": [{"name": "X", "data_type": "TYPE_INT32", "dims": [1]}],
                       "output": [{"name": "Y", "data_type": "TYPE_INT32", "dims": [-1]}]})


def _hub():
    pool = ArenaPool("t" + uuid.uuid4().hex[:10], "w0", 1 << 20)
    writer = OutputWriter(pool, SegmentCache())
    posted, flushes = [], []
    hub = StreamHub("w0-addr", writer, ModelIO(SPEC), lambda a, m: posted.append((a, m)),
                    lambda: flushes.append(1))
    return hub, posted, pool


def _resp(v, n=1):
    return pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.full([n], v, np.int32))])


def test_sends_from_a_thread_wait_for_the_loop_then_leave_in_order():
    hub, posted, pool = _hub()
    stream = hub.open(request(7, outputs=["Y"]), ["Y"])
    t = threading.Thread(target=lambda: [hub.submit(stream, _resp(i), False) for i in range(3)]
                         + [hub.submit(stream, None, True)])
    t.start()
    t.join()
    assert posted == []                      # nothing leaves before the loop drains
    hub.on_wake()                            # the eventfd was written once
    hub.drain()
    resps = [m for _, m in posted]
    assert [r.final for r in resps] == [False, False, False, True]
    assert [r.empty for r in resps] == [False, False, False, True]
    assert all(r.rid == 7 and r.instance == "w0-addr" for r in resps)
    assert [len(r.outputs) for r in resps] == [1, 1, 1, 0]
    assert [a for a, _ in posted] == ["fe"] * 4
    hub.close()
    pool.close()


def test_a_full_stream_blocks_the_sender_until_the_reader_releases(monkeypatch):
    monkeypatch.setattr(streams, "MAX_HELD", 2)
    hub, posted, pool = _hub()
    stream = hub.open(request(1, outputs=["Y"]), ["Y"])
    done = threading.Event()

    def model():
        for i in range(3):
            hub.submit(stream, _resp(i), False)
        done.set()
    t = threading.Thread(target=model)
    t.start()
    time.sleep(0.2)
    assert not done.is_set()                 # the third send waits for a credit
    hub.drain()
    first = posted[0][1].outputs[0]
    assert hub.writer.release(first.region, first.offset)
    hub.released(first.region, first.offset)
    assert done.wait(2)
    t.join()
    hub.close()
    pool.close()


def test_a_cancelled_stream_never_blocks(monkeypatch):
    monkeypatch.setattr(streams, "MAX_HELD", 1)
    hub, posted, pool = _hub()
    stream = hub.open(request(1, outputs=["Y"]), ["Y"])
    hub.submit(stream, _resp(0), False)
    hub.cancel([("fe", 1)])
    assert hub.is_cancelled(("fe", 1))
    hub.submit(stream, _resp(1), False)      # would block if not cancelled (main thread)
    assert len(posted) == 2
    hub.close()
    pool.close()


def test_marker_for_open_requests_with_nothing_sent_and_response_stats():
    hub, posted, pool = _hub()
    quiet = hub.open(request(1), ["Y"])
    busy = hub.open(request(2), ["Y"])
    hub.submit(busy, _resp(5), False)
    hub.after_execute()
    markers = [m for _, m in posted if m.empty and not m.final]
    assert [(m.rid, m.instance) for m in markers] == [(1, "w0-addr")]
    hub.submit(quiet, None, True)
    bad = pb_utils.InferenceResponse(error=pb_utils.TritonError("no"))
    hub.submit(busy, bad, True)
    rows = dict(hub.take_stats())
    # busy's first (success) and quiet's bare final (empty) both count compute_infer
    assert rows[0][0] == 2 and rows[0][4] == 1         # busy's first: success
    assert rows[0][8] == 1                            # quiet's bare final: empty_response
    assert rows[1][6] == 1                            # busy's second: fail
    assert hub.take_stats() == []
    hub.close()
    pool.close()


def test_response_stats_of_empty_and_cancelled_responses_are_tritons():
    """Triton's InferenceStatsAggregator (QA L0_response_statistics): an empty response
    counts compute_infer too, a cancelled one counts cancel with its duration, and an error
    response with code CANCELLED is a cancel, not a fail."""
    hub, posted, pool = _hub()
    a, b, c = (hub.open(request(i), ["Y"]) for i in (1, 2, 3))
    hub.submit(a, None, True)                                          # index 0: empty
    hub.submit(b, _resp(1), False)                                     # index 0: success
    hub.cancel([b.key])
    time.sleep(0.002)
    hub.submit(b, _resp(2), True)                                      # index 1: cancel
    hub.submit(c, _resp(1), False)                                     # index 0: success
    gone = pb_utils.TritonError("stopped", pb_utils.TritonError.CANCELLED)
    hub.submit(c, pb_utils.InferenceResponse(error=gone), True)        # index 1: cancel
    rows = dict(hub.take_stats())
    ci, ci_ns, co, _, ok, _, fail, _, empty, empty_ns, cancel, cancel_ns = rows[0]
    assert (ci, co, ok, fail, empty, cancel) == (3, 2, 2, 0, 1, 0)
    assert ci_ns >= empty_ns > 0
    ci, _, co, _, ok, _, fail, _, empty, _, cancel, cancel_ns = rows[1]
    assert (ci, co, ok, fail, empty, cancel) == (0, 0, 0, 0, 0, 2)
    assert cancel_ns >= 2_000_000                     # b's waited 2 ms since its first
    hub.close()
    pool.close()


def test_a_parked_stream_is_dropped_once_answered_elsewhere_only():
    """A rescheduled request's stream waits for its next step (workers/python/reschedule.py).
    A plain cancel only flags it: the scheduler may still run that step (a cancel that met
    the request in flight), which then sees is_cancelled. Once the frontend says another
    process gave the final answer, a parked stream is dropped; a running one is kept (its
    model may still send)."""
    from tritond.workers.python import reschedule
    hub, posted, pool = _hub()
    parked = hub.open(request(1, outputs=["Y"]), ["Y"])
    running = hub.open(request(2, outputs=["Y"]), ["Y"])
    reschedule.park(hub, parked.key)
    hub.cancel([parked.key, running.key])
    assert set(hub.streams) == {parked.key, running.key}
    assert parked.cancelled and running.cancelled
    again = reschedule.sink(hub, request(1, outputs=["Y"]), ["Y"])   # its next step runs
    assert again.args[0] is parked and not parked.parked and hub.is_cancelled(parked.key)
    reschedule.park(hub, parked.key)
    hub.cancel([parked.key, running.key], answered=True)
    assert list(hub.streams) == [running.key]
    hub.close()
    pool.close()
