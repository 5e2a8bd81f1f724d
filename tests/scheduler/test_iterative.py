"""Iterative sequences (scheduler/iterative.py) through the pure core: ids given to
requests without one, a rescheduled request keeping its slot, the end of a sequence
when its request leaves, Triton's errors."""
import msgspec

from tritond import messages
from tritond.errors import Code

from .helpers import config, core_with, dispatches, executed, replies, request, rids

START, END = messages.SEQUENCE_START, messages.SEQUENCE_END


def it_config(max_batch_size=2, idle_us=1_000_000):
    return config(max_batch_size, sequence_batching={
        "iterative_sequence": True, "max_sequence_idle_microseconds": idle_us, "direct": {}})


def req(rid, corrid=0, flags=0):
    return request(rid, batch=1, shape=(1,), correlation_id=corrid, flags=flags)


def again(d, *rows, failed=()):
    msg = executed(d, failed=failed)
    msg.rescheduled = [(r.frontend, r.rid) for r in d.execute.requests if r.rid in rows]
    return msg


def seen(d):
    """(rid, correlation id, flags, slot) of each row, as the worker decodes them."""
    ex = msgspec.msgpack.decode(msgspec.msgpack.encode(d.execute), type=messages.Execute)
    return [(r.rid, r.correlation_id, r.flags, s.slot) for r, s in zip(ex.requests, ex.slots)]


def test_requests_without_an_id_each_start_a_sequence_of_their_own():
    core = core_with(it_config())
    assert core.add(req(1), 0) == [] and core.add(req(2), 0) == []
    (d,) = dispatches(core.step(0))
    assert seen(d) == [(1, 1, START, 0), (2, 2, START, 1)]


def test_a_rescheduled_request_runs_again_in_its_slot_without_start():
    core = core_with(it_config())
    core.add(req(1), 0)
    core.add(req(2), 0)
    (d,) = dispatches(core.step(0))
    assert core.executed(again(d, 1), 1) == []       # 2 answered: its sequence ends
    (d,) = dispatches(core.step(1))
    assert seen(d) == [(1, 1, 0, 0)] and d.execute.ended == [1]   # the worker drops 2's state
    core.add(req(3), 2)                              # takes the slot 2 left
    core.executed(again(d, 1), 3)
    (d,) = dispatches(core.step(3))
    assert seen(d) == [(1, 1, 0, 0), (3, 3, START, 1)]


def test_a_freed_slot_is_told_to_the_worker_and_serves_the_backlog():
    core = core_with(it_config(max_batch_size=1))
    core.add(req(1), 0)
    core.add(req(2), 0)                              # one slot: waits in the backlog
    (d,) = dispatches(core.step(0))
    assert rids(d) == [1]
    core.executed(again(d, 1), 1)
    (d,) = dispatches(core.step(1))
    assert seen(d) == [(1, 1, 0, 0)]                 # the rescheduled one keeps the slot
    assert replies(core.executed(executed(d), 2)) == []   # answered: the slot is free
    (d,) = dispatches(core.step(2))
    assert seen(d) == [(2, 2, START, 0)] and d.execute.ended == [0]


def test_a_client_id_is_kept_and_the_counter_skips_it():
    core = core_with(it_config())
    core.add(req(1, 2, START), 0)
    core.add(req(2), 0)
    core.add(req(3), 0)
    (d,) = dispatches(core.step(0))
    assert [(rid, c) for rid, c, _, _ in seen(d)] == [(1, 2), (2, 1)]
    core.executed(executed(d), 1)
    (d,) = dispatches(core.step(1))
    assert [(rid, c) for rid, c, _, _ in seen(d)] == [(3, 3)]


def test_a_cancelled_rescheduled_request_ends_its_sequence():
    core = core_with(it_config(max_batch_size=1))
    core.add(req(1), 0)
    (d,) = dispatches(core.step(0))
    core.executed(again(d, 1), 1)                    # queued again ...
    assert core.cancel(d.execute.requests[0].frontend, 1, 2) == []   # held in its place
    core.add(req(2), 3)                              # waits in the backlog
    out = core.step(3)                               # its slot reaches it: answered ...
    (r,), (d,) = replies(out), dispatches(out)
    assert (r.response.rid, r.response.error.code) == (1, Code.CANCELLED)
    assert seen(d) == [(2, 2, START, 0)] and d.execute.ended == [0]   # ... and the slot freed


def test_a_sequence_reaped_while_running_fails_its_reschedule_as_triton_does():
    core = core_with(it_config(idle_us=1000))
    core.add(req(1), 0)
    (d,) = dispatches(core.step(0))
    (r,) = replies(core.executed(again(d, 1), 5_000_000))   # 5 ms > 1 ms idle
    assert (r.response.rid, r.response.error.code) == (1, Code.INVALID_ARG)
    assert r.response.error.message == (
        "inference request for sequence 1 to model 'm' must specify the START flag on the "
        "first request of the sequence")


def test_a_failed_step_ends_its_sequence():
    core = core_with(it_config(max_batch_size=1))
    core.add(req(1), 0)
    core.add(req(2), 0)
    (d,) = dispatches(core.step(0))
    core.executed(executed(d, failed=[1]), 1)
    (d,) = dispatches(core.step(1))
    assert seen(d) == [(2, 2, START, 0)]


def test_a_rescheduled_request_of_a_retiring_instance_fails_unavailable():
    from tritond.scheduler.core import Notify
    from .helpers import table
    cfg = it_config(max_batch_size=1)
    core = core_with(cfg)
    core.add(req(1), 0)
    (d,) = dispatches(core.step(0))
    tbl = table(("m", 1, cfg, ["w1"]))
    tbl.retiring = ["w0"]                            # a reload: w0 finishes what it runs
    core.set_models(tbl)
    out = core.executed(again(d, 1), 1)
    (r,) = replies(out)
    assert (r.response.rid, r.response.error.code) == (1, Code.UNAVAILABLE)
    assert "is unloading; the request cannot be rescheduled" in r.response.error.message
    assert any(isinstance(o, Notify) for o in out)   # and w0 reports drained


def test_an_unloading_model_answers_a_reschedule_unavailable():
    from .helpers import table
    cfg = it_config(max_batch_size=1)
    core = core_with(cfg)
    core.add(req(1), 0)
    (d,) = dispatches(core.step(0))
    core.set_models(table(("m", 1, cfg, ["w0"], "UNLOADING")))
    (r,) = replies(core.executed(again(d, 1), 1))
    assert r.response.error.code == Code.UNAVAILABLE


START_ERROR = ("inference request for sequence 42 to model 'm' must specify the START flag on "
               "the first request of the sequence")


def test_a_finished_request_ends_its_sequence_while_queued_ones_of_its_id_still_run():
    """Triton's IterativeSequencer: the release enqueues a cancelled END null request
    behind the queue; the id is forgotten at once, the queued requests still run."""
    core = core_with(it_config(max_batch_size=1))
    core.add(req(1, 42, START), 0)
    core.add(req(2, 42), 0)                          # the client's second request of 42
    (d,) = dispatches(core.step(0))
    assert seen(d) == [(1, 42, START, 0)]
    core.executed(again(d, 1), 1)                    # goes behind 2 (Enqueue appends)
    (d,) = dispatches(core.step(1))
    assert seen(d) == [(2, 42, 0, 0)]
    assert replies(core.executed(executed(d), 2)) == []   # 2 answered: the sequence ends ...
    (r,) = replies(core.add(req(3, 42), 3))          # ... no step of 42 without START
    assert (r.response.rid, r.response.error.message) == (3, START_ERROR)
    (d,) = dispatches(core.step(3))
    assert seen(d) == [(1, 42, 0, 0)] and not d.execute.ended   # 1 still runs, in the slot
    (r,) = replies(core.executed(again(d, 1), 4))    # and cannot run again
    assert (r.response.rid, r.response.error.code) == (1, Code.INVALID_ARG)
    assert r.response.error.message == START_ERROR
    core.add(req(4, 7, START), 5)                    # the slot is free now
    (d,) = dispatches(core.step(5))
    assert seen(d) == [(4, 7, START, 0)] and d.execute.ended == [0]


def test_a_new_start_of_an_ending_id_takes_another_slot():
    core = core_with(it_config(max_batch_size=2))
    core.add(req(1, 42, START), 0)
    core.add(req(2, 42), 0)
    (d,) = dispatches(core.step(0))
    core.executed(executed(d), 1)                    # 1 answered: 42 ends, 2 still queued
    core.add(req(3, 42, START), 2)                   # a new sequence 42
    (d,) = dispatches(core.step(2))
    assert seen(d) == [(2, 42, 0, 0), (3, 42, START, 1)]


def test_a_request_with_end_cannot_be_rescheduled():
    core = core_with(it_config(max_batch_size=1))
    core.add(req(1, 42, START | END), 0)
    (d,) = dispatches(core.step(0))
    (r,) = replies(core.executed(again(d, 1), 1))
    assert (r.response.rid, r.response.error.code) == (1, Code.INVALID_ARG)
    assert r.response.error.message == (
        "Request is released with TRITONSERVER_REQUEST_RELEASE_RESCHEDULE, while the model "
        "is not configured to handle such a flag.")
    core.add(req(2, 42, START), 2)
    (d,) = dispatches(core.step(2))
    assert seen(d) == [(2, 42, START, 0)]
