"""CancelWatch: a running model polls the worker's inbox without losing other messages."""
import os

from tritond import messages
from tritond.channel import address
from tritond.endpoint import SyncEndpoint
from tritond.workers.cancel import CancelWatch
from tritond.workers.python.inference import InferenceRequest


def test_poll_keeps_other_messages_in_order(tmp_path):
    sid = f"cw{os.getpid():x}"
    worker = SyncEndpoint(address(sid, "w0"), messages.TO_WORKER)
    sched = SyncEndpoint(address(sid, "scheduler"), messages.TO_SCHEDULER)
    try:
        watch = CancelWatch(worker)
        watch.start(7)
        assert not watch.is_cancelled(("fe", 1))          # nothing waiting: no block
        release = messages.Release("w0", [("r", 0)])
        nxt = messages.Execute(8, [])
        sched.send_now(worker.addr, [release, messages.CancelRunning(6, [("fe", 2)]),
                                     messages.CancelRunning(7, [("fe", 1)]), nxt])
        for _ in range(100):                               # the frame may take a moment
            if watch.is_cancelled(("fe", 1)):
                break
        assert watch.is_cancelled(("fe", 1))
        assert not watch.is_cancelled(("fe", 2))           # stale: another batch
        assert watch.take() == [release, nxt]
        watch.stop()
        assert not watch.cancelled and watch.take() == []
    finally:
        worker.close()
        sched.close()


def test_request_outside_a_worker_is_never_cancelled():
    req = InferenceRequest(request_id="x")
    assert req.is_cancelled() is False
    req._cancel_key = ("fe", 1)
    assert req.is_cancelled() is False
    assert req.get_response_sender().is_cancelled() is False


def test_cancels_ahead_of_a_batch_wait_for_it_and_a_plain_start_stays_open():
    worker = SyncEndpoint(address(f"ca{os.getpid():x}", "w0"), messages.TO_WORKER)
    try:
        watch = CancelWatch(worker)
        assert watch.start(3) == set()        # nothing came ahead: the quick path
        watch.note(messages.CancelRunning(3, [("fe", 1)]))       # the running batch
        watch.note(messages.CancelRunning(5, [("fe", 7)]))       # a pipelined one, not started
        watch.note(messages.CancelRunning(2, [("fe", 9)]))       # stale: dropped
        assert watch.is_cancelled(("fe", 1)) and not watch.is_cancelled(("fe", 7))
        watch.stop()
        assert watch.start(4) == set() and not watch.is_cancelled(("fe", 1))
        watch.stop()
        assert watch.start(5) == {("fe", 7)}
        assert watch.is_cancelled(("fe", 7))
        watch.stop()
        assert watch.ahead == {} and watch.take() == []
    finally:
        worker.close()


def test_a_cancel_of_the_batch_the_scheduler_runs_is_seen_but_never_skips_it():
    """The scheduler sent the Execute and then a cancel for its running batch; both reach
    the worker before it starts the batch (one read). The batch runs whole and its model
    sees is_cancelled(), as a Triton backend that got the request would: only a pipelined
    batch's cancel (running False) skips the request."""
    worker = SyncEndpoint(address(f"cr{os.getpid():x}", "w0"), messages.TO_WORKER)
    try:
        watch = CancelWatch(worker)
        watch.note(messages.CancelRunning(4, [("fe", 1)], True))
        watch.note(messages.CancelRunning(6, [("fe", 2)], True))
        assert watch.start(4) == set()              # nothing skipped
        assert watch.is_cancelled(("fe", 1)) and not watch.is_cancelled(("fe", 2))
        watch.stop()
        assert watch.start(6) == set() and watch.is_cancelled(("fe", 2))
        watch.stop()
        assert watch.start(7) == set() and not watch.is_cancelled(("fe", 2))
    finally:
        worker.close()
