"""A client's cancel of a queued sequence request (scheduler/sequence_table.py), as Triton's
sequence batcher does it (core sequence_batch_scheduler.cc): the cancelled request keeps its
place; once its slot reaches it, it and every request queued behind it are answered
CANCELLED, the slot is freed and the id forgotten. A backlogged sequence with a cancelled
request is cancelled as a whole when a slot could take it."""
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tritond import messages
from tritond.errors import Code

from .helpers import US, core_with, dispatches, executed, replies, request, rids, table

START, END = messages.SEQUENCE_START, messages.SEQUENCE_END
START_ERROR = ("inference request for sequence 100 to model 'm' must specify the START flag "
               "on the first request of the sequence")
STRATEGIES = [{"direct": {}}, {"oldest": {"max_candidate_sequences": 1}}]


def seq_config(max_batch_size=1, strategy=None, **extra):
    sb = {"max_sequence_idle_microseconds": 1_000_000}
    sb.update(strategy or {"direct": {}})
    sb.update(extra)
    from .helpers import config
    return config(max_batch_size, sequence_batching=sb)


def req(rid, corrid, flags=0):
    return request(rid, batch=1, shape=(1,), correlation_id=corrid, flags=flags)


def answers(out):
    return sorted((r.response.rid, r.response.error.code, r.response.error.message)
                  for r in replies(out))


def cancelled(*rids_):
    return [(rid, Code.CANCELLED, "Request was cancelled") for rid in rids_]


def canceled_count(core):
    (m,) = core.metrics()
    return m.failures["CANCELED"]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=["direct", "oldest"])
def test_a_cancelled_request_and_those_behind_it_are_cancelled_when_its_slot_reaches_it(
        strategy):
    core = core_with(seq_config(strategy=strategy))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    core.add(req(3, 100), 1)
    assert core.cancel("fe", 2, 2) == []               # held in its place: nothing yet
    assert core.step(2) == []                          # the instance is busy with 1
    core.add(req(4, 100), 3)                           # still queued behind the cancelled one
    assert core.cancel("fe", 2, 3) == []               # a second cancel changes nothing
    assert core.metrics()[0].pending == 3
    assert core.executed(executed(d), 4) == []
    out = core.step(4)                                 # its slot reaches it
    assert dispatches(out) == [] and answers(out) == cancelled(2, 3, 4)
    assert canceled_count(core) == 3 and core.metrics()[0].pending == 0
    assert answers(core.add(req(5, 100), 5)) == [(5, Code.INVALID_ARG, START_ERROR)]
    core.add(req(6, 100, START), 6)                    # the slot is free: a new START runs
    (d,) = dispatches(core.step(6))
    assert rids(d) == [6] and d.execute.ended == [0]   # the worker drops the old state
    assert core.cancel("fe", 3, 7) == [] and core.step(7) == []   # answered already


@pytest.mark.parametrize("strategy", STRATEGIES, ids=["direct", "oldest"])
def test_requests_ahead_of_the_cancelled_one_still_run(strategy):
    core = core_with(seq_config(strategy=strategy))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    core.add(req(3, 100), 1)
    core.add(req(4, 100, END), 1)
    assert core.cancel("fe", 3, 2) == []
    core.executed(executed(d), 3)
    (d,) = dispatches(core.step(3))                    # 2 was ahead of it: it runs
    assert rids(d) == [2]
    assert answers(core.step(3)) == []
    core.executed(executed(d), 4)
    out = core.step(4)
    assert dispatches(out) == [] and answers(out) == cancelled(3, 4)


def test_a_cancelled_head_of_an_idle_slot_is_answered_at_once():
    core = core_with(seq_config(max_batch_size=2))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.executed(executed(d), 1)
    core.add(req(2, 100), 2)
    core.add(req(3, 100), 2)
    core.add(req(9, 200, START), 2)
    assert core.cancel("fe", 2, 2) == []
    out = core.step(2)                                 # 2 heads slot 0: cancelled with 3
    assert answers(out) == cancelled(2, 3)
    (d,) = dispatches(out)                             # slot 0 is free now: a not-ready row
    assert [(s.slot, s.ready) for s in d.execute.slots] == [(0, False), (1, True)]
    assert rids(d)[1] == 9 and d.execute.ended == [0]


def test_a_backlogged_sequence_with_a_cancelled_request_is_cancelled_when_a_slot_frees():
    core = core_with(seq_config())
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 200, START), 1)                    # backlog: the only slot is 100's
    core.add(req(3, 200), 1)
    core.add(req(4, 300, START | END), 1)              # backlog too, behind 200
    assert core.cancel("fe", 3, 2) == []               # not the first: all of 200 goes
    core.executed(executed(d), 3)
    assert answers(core.step(3)) == []                 # no slot frees: nothing yet
    core.add(req(5, 100, END), 4)
    out = core.step(4)               # 100's END frees the slot: 200 is cancelled, 300 seated
    assert answers(out) == cancelled(2, 3)
    (d,) = dispatches(out)
    assert rids(d) == [5]
    core.executed(executed(d), 5)
    (d,) = dispatches(core.step(5))
    assert rids(d) == [4]
    assert answers(core.add(req(6, 200), 6))[0][1] == Code.INVALID_ARG


def test_a_pipelined_instance_reaches_a_cancelled_head_once_its_slot_has_nothing_in_flight():
    """direct pipelines one batch ahead: an instance kept busy by another slot still
    reaches the cancelled request, once its own slot's step has run (Triton looks when
    the batch finished, so that a rescheduled request is queued behind by then)."""
    from tritond.scheduler.core import SchedulerCore
    core = SchedulerCore(pipeline=True)
    core.set_models(table(("m", 1, seq_config(max_batch_size=2), ["w0"])))
    core.add(req(1, 100, START), 0)
    core.add(req(2, 200, START), 0)
    (d,) = dispatches(core.step(0))                    # slots 0 and 1 in flight
    core.add(req(3, 200), 1)
    core.add(req(4, 200), 1)
    assert core.cancel("fe", 3, 1) == []
    core.add(req(5, 100), 1)
    out = core.step(1)
    assert answers(out) == []                          # 200's step 2 is still running
    (ahead,) = dispatches(out)                         # slot 1 waits: not in the batch
    assert rids(ahead) == [5] and [(s.slot, s.ready) for s in ahead.execute.slots] == [(0, True)]
    core.executed(executed(d), 2)                      # busy with 5 now, slot 1 idle
    core.add(req(6, 100), 2)
    out = core.step(2)
    assert answers(out) == cancelled(3, 4)
    (d,) = dispatches(out)
    assert rids(d) == [6] and d.execute.ended == [1]


def test_a_lost_instance_answers_a_held_cancel_once():
    core = core_with(seq_config(), instances=("w0", "w1"))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    core.cancel("fe", 2, 1)
    live = "w1" if d.address == "w0" else "w0"
    out = core.set_models(table(("m", 1, seq_config(), [live])))
    assert sorted(r.response.rid for r in replies(out)) == [1, 2]
    assert core.step(2) == [] and core.cancel("fe", 2, 2) == []


def test_a_config_change_answers_a_held_cancel_cancelled():
    core = core_with(seq_config())
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    core.cancel("fe", 2, 1)
    out = core.set_models(table(("m", 1, seq_config(max_sequence_idle_microseconds=5), ["w0"])))
    assert (2, Code.CANCELLED, "Request was cancelled") in answers(out)
    assert core.step(2) == []


def test_an_iterative_sequence_cancels_its_rescheduled_request_queued_behind():
    """Triton's IterativeSequencer re-enqueues a rescheduled request at the tail: a
    client's cancelled request ahead of it takes it along."""
    core = core_with(seq_config(iterative_sequence=True))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    core.add(req(3, 100), 1)
    msg = executed(d)
    msg.rescheduled = [("fe", 1)]
    assert core.executed(msg, 2) == []                 # 1 goes behind 3
    assert core.cancel("fe", 2, 3) == []
    out = core.step(3)
    assert dispatches(out) == [] and answers(out) == cancelled(1, 2, 3)
    assert answers(core.add(req(4, 100), 4)) == [(4, Code.INVALID_ARG, START_ERROR)]
    core.add(req(5, 100, START), 5)
    (d,) = dispatches(core.step(5))
    assert rids(d) == [5] and d.execute.ended == [0]


def test_a_cancel_of_a_request_pipelined_behind_the_running_batch_ends_its_sequence():
    """direct pipelining sent 2 to the worker behind 1: the worker skips it (told by
    CancelRunning) and, as in Triton where 2 would still head its slot's queue, the
    requests behind it are cancelled and the sequence ends."""
    from tritond.scheduler.core import Notify, SchedulerCore
    core = SchedulerCore(pipeline=True)
    core.set_models(table(("m", 1, seq_config(), ["w0"])))
    core.add(req(1, 100, START), 0)
    (d1,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    (d2,) = dispatches(core.step(1))                   # ahead of the running batch
    core.add(req(3, 100), 2)
    core.add(req(4, 100), 2)
    (note,) = core.cancel("fe", 2, 3)
    assert isinstance(note, Notify) and note.message.batch_id == d2.execute.batch_id
    assert note.message.requests == [("fe", 2)]
    core.add(req(5, 100), 4)                           # queued behind the cancelled one too
    core.executed(executed(d1), 5)
    assert core.step(5) == []                          # 2 is in flight: its worker skips it
    out = core.executed(executed(d2, failed=[2]), 6)   # (and answers it)
    assert answers(out) == cancelled(3, 4, 5)          # 2 is not answered twice
    assert core.step(6) == []
    assert canceled_count(core) == 4                   # 2 counts as CANCELED, as in Triton
    assert answers(core.add(req(7, 100), 7)) == [(7, Code.INVALID_ARG, START_ERROR)]
    core.add(req(8, 100, START), 8)
    (d,) = dispatches(core.step(8))
    assert rids(d) == [8] and d.execute.ended == [0]


def test_a_pipelined_iterative_sequence_cancels_the_rescheduled_request_too():
    """As above with pipelining: 2 went to the worker behind 1 and is cancelled there;
    1 comes back rescheduled behind 3, and all that is queued is cancelled once the
    slot has nothing in flight (not a START error for 1)."""
    from tritond.scheduler.core import SchedulerCore
    core = SchedulerCore(pipeline=True)
    core.set_models(table(("m", 1, seq_config(iterative_sequence=True), ["w0"])))
    core.add(req(1, 100, START), 0)
    (d1,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    (d2,) = dispatches(core.step(1))
    core.add(req(3, 100), 1)
    assert len(core.cancel("fe", 2, 2)) == 1           # the worker is told
    msg = executed(d1)
    msg.rescheduled = [("fe", 1)]
    assert core.executed(msg, 3) == [] and core.step(3) == []
    assert answers(core.executed(executed(d2, failed=[2]), 4)) == cancelled(1, 3)
    assert core.step(4) == []


def test_a_running_iterative_request_cancelled_and_rescheduled_is_queued_cancelled():
    """Triton enqueues a cancelled rescheduled request like any other: behind what was
    queued (which still runs), and when its slot reaches it, it ends the sequence."""
    core = core_with(seq_config(iterative_sequence=True))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    (note,) = core.cancel("fe", 1, 2)                  # running: the worker is told
    assert note.message.requests == [("fe", 1)]
    msg = executed(d)
    msg.rescheduled = [("fe", 1)]                      # the model rescheduled it anyway
    assert core.executed(msg, 3) == []
    (d,) = dispatches(core.step(3))                    # 2 was ahead of it: it runs
    assert rids(d) == [2]
    core.add(req(3, 100), 4)                           # queued behind 1
    core.executed(executed(d), 5)                      # 2 answered: the id is forgotten
    out = core.step(5)
    assert dispatches(out) == [] and answers(out) == cancelled(1, 3)
    assert answers(core.add(req(4, 100), 6))[0][1] == Code.INVALID_ARG


seq_ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 4), st.sampled_from([0, START, END, START | END])),
    st.tuples(st.just("cancel"), st.integers(0, 4)),     # how far back from the last added
    st.tuples(st.just("done"), st.integers(0, 1)),
    st.tuples(st.just("tick"), st.integers(0, 3)),
), max_size=50)


@settings(max_examples=200, deadline=None)
@example(ops=[("add", 1, START), ("add", 1, 0), ("cancel", 0)], oldest=False, pipeline=True,
         slots=1, n_inst=1)      # cancelled while pipelined, nothing behind it
@given(ops=seq_ops, oldest=st.booleans(), pipeline=st.booleans(), slots=st.integers(1, 3),
       n_inst=st.integers(1, 2))
def test_every_sequence_request_gets_exactly_one_outcome_with_cancels(ops, oldest, pipeline,
                                                                      slots, n_inst):
    """Random sequences, cancels anywhere (queued, pipelined, running, backlogged, twice)
    and executions: every request is answered or run exactly once, a request the worker
    skips (cancelled while pipelined) is not answered by the scheduler too, and nothing
    is left once every sequence went idle."""
    from tritond.scheduler.core import Notify, SchedulerCore
    strategy = {"oldest": {"max_candidate_sequences": slots}} if oldest else {"direct": {}}
    core = SchedulerCore(pipeline=pipeline)
    core.set_models(table(("m", 1, seq_config(slots, strategy, max_sequence_idle_microseconds=
                                              1000), [f"w{i}" for i in range(n_inst)])))
    outcomes: dict[int, int] = {}
    busy: dict[str, list] = {}
    skip: set = set()            # cancelled while pipelined: the worker answers them
    now, added = 0, 0

    def absorb(out):
        for o in out:
            if isinstance(o, Notify):
                d = next(d for d in busy[o.address]
                         if d.execute.batch_id == o.message.batch_id)
                if d is not busy[o.address][0]:
                    skip.update(rid for _, rid in o.message.requests)
            elif hasattr(o, "response"):
                outcomes[o.response.rid] = outcomes.get(o.response.rid, 0) + 1
            else:
                busy.setdefault(o.address, []).append(o)
                for r, s in zip(o.execute.requests, o.execute.slots):
                    if s.ready:
                        outcomes[r.rid] = outcomes.get(r.rid, 0) + 1

    def finish(addr):
        d = busy[addr].pop(0)
        if not busy[addr]:
            del busy[addr]
        failed = [r.rid for r in d.execute.requests if r.rid in skip]
        absorb(core.executed(executed(d, failed=failed), now))

    for op in ops:
        if op[0] == "add":
            absorb(core.add(req(added, op[1], op[2]), now))
            added += 1
        elif op[0] == "cancel":
            absorb(core.cancel("fe", max(added - 1 - op[1], 0), now))
        elif op[0] == "done" and busy:
            finish(sorted(busy)[op[1] % len(busy)])
        elif op[0] == "tick":
            now += op[1] * 500 * US
        absorb(core.step(now))
    for _ in range(added + 3):          # drain: run everything, let every sequence go idle
        for addr in list(busy):
            while addr in busy:
                finish(addr)
        now += 2000 * US
        absorb(core.step(now))
    assert outcomes == {rid: 1 for rid in range(added)}
    assert core.metrics()[0].pending == 0
    table_ = core._models[("m", 1)].policy.table      # no cancel left holding a slot
    assert not table_.cancelled and not any(
        seq is not None and seq.cancelled_head() for h in table_.homes.values()
        for seq in h.slots)


@pytest.mark.parametrize("change", ["reload", "unload"])
def test_a_sequence_ended_by_a_skipped_request_is_answered_before_a_model_change(change):
    """The Executed of the batch whose cancelled request the worker skipped ends its
    sequence; a ModelTable read in the same turn (a config change, an unload) must not
    lose the requests that were queued behind it: each is answered once."""
    from tritond.scheduler.core import SchedulerCore
    core = SchedulerCore(pipeline=True)
    core.set_models(table(("m", 1, seq_config(), ["w0"])))
    core.add(req(1, 100, START), 0)
    (d1,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    (d2,) = dispatches(core.step(1))                   # pipelined behind 1
    core.add(req(3, 100), 2)
    core.add(req(4, 100), 2)
    core.cancel("fe", 2, 3)                            # the worker will skip 2
    core.executed(executed(d1), 4)
    assert core.step(4) == []
    out = core.executed(executed(d2, failed=[2]), 5)   # the same read as the ModelTable:
    if change == "reload":
        out += core.set_models(table(("m", 1, seq_config(max_sequence_idle_microseconds=7),
                                      ["w0"])))
    else:
        out += core.set_models(table())
    out += core.step(5)
    assert answers(out) == cancelled(3, 4)
    if change == "reload":
        assert canceled_count(core) == 3               # 2 (the worker's) and 3, 4
    assert core.cancel("fe", 3, 6) == [] and core.step(6) == []


@pytest.mark.parametrize("flags", [0, START], ids=["continuing", "started-again"])
def test_a_config_change_cancels_the_requests_queued_behind_a_held_cancel(flags):
    """The old version's batcher would have cancelled them with the held one once its
    slot reached it (Triton keeps serving the old version's queue): a config change
    answers them CANCELLED too (counted CANCELED), rather than queue them on the new
    version (where a START for the id would run, and a continuing request fail)."""
    core = core_with(seq_config())
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    core.add(req(3, 100, flags), 1)
    core.cancel("fe", 2, 1)
    core.add(req(4, 200, START), 1)                    # another sequence: moved, it runs
    out = core.set_models(table(("m", 1, seq_config(max_sequence_idle_microseconds=5), ["w0"])))
    assert answers(out) == cancelled(2, 3)
    assert canceled_count(core) == 2
    core.executed(executed(d), 2)
    (d,) = dispatches(core.step(2))
    assert rids(d) == [4]
    assert core.cancel("fe", 3, 3) == [] and core.step(3) == []


life_ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 3), st.sampled_from([0, START, END, START | END])),
    st.tuples(st.just("cancel"), st.integers(0, 4)),
    # (reschedule: iterative; no step after it: the next op is in the same read)
    st.tuples(st.just("done"), st.integers(0, 1), st.booleans(), st.booleans()),
    st.tuples(st.just("tick"), st.integers(0, 3)),
    st.tuples(st.just("reload"), st.integers(0, 1)),     # a config change (same read as ops)
    st.tuples(st.just("kill"), st.integers(0, 1)),       # an instance dies and restarts
), max_size=40)


@settings(max_examples=500, deadline=None)
@example(ops=[("add", 1, START), ("add", 1, 0), ("add", 1, 0), ("cancel", 1),
              ("done", 0, False, False), ("done", 0, False, True), ("reload", 0)],
         oldest=False, pipeline=True, iterative=False, n_inst=1)   # skipped, then a reload
@example(ops=[("add", 1, START), ("add", 1, 0), ("reload", 0), ("cancel", 0), ("kill", 0)],
         oldest=False, pipeline=True, iterative=False, n_inst=1)   # cancelled, then a death
@given(ops=life_ops, oldest=st.booleans(), pipeline=st.booleans(), iterative=st.booleans(),
       n_inst=st.integers(1, 2))
def test_every_sequence_request_gets_one_outcome_through_reloads_deaths_and_reschedules(
        ops, oldest, pipeline, iterative, n_inst):
    """As above, with config changes, instance deaths and iterative reschedules among
    the cancels: every request is answered or run exactly once (a rescheduled one runs
    again, so its run does not count), and nothing is left queued or held."""
    from tritond.scheduler.core import Notify, SchedulerCore
    strategy = {"oldest": {"max_candidate_sequences": 2}} if oldest else {"direct": {}}
    extra = {"iterative_sequence": True} if iterative else {}
    addrs = [f"w{i}" for i in range(n_inst)]

    def model_table(idle_us, live=addrs):
        return table(("m", 1, seq_config(2, strategy, max_sequence_idle_microseconds=idle_us,
                                         **extra), list(live)))

    core = SchedulerCore(pipeline=pipeline)
    idle_us = 1000
    core.set_models(model_table(idle_us))
    outcomes: dict[int, int] = {}
    busy: dict[str, list] = {}
    skip: set = set()
    now, added = 0, 0

    def count(rid, n):
        outcomes[rid] = outcomes.get(rid, 0) + n

    def absorb(out):
        for o in out:
            if isinstance(o, Notify):
                d = next((d for d in busy.get(o.address, ())
                          if d.execute.batch_id == o.message.batch_id), None)
                if d is not None and d is not busy[o.address][0]:
                    skip.update(rid for _, rid in o.message.requests)
            elif hasattr(o, "response"):
                count(o.response.rid, 1)
            else:
                busy.setdefault(o.address, []).append(o)
                for r, s in zip(o.execute.requests, o.execute.slots):
                    if s.ready:
                        count(r.rid, 1)

    def finish(addr, reschedule=False):
        d = busy[addr].pop(0)
        if not busy[addr]:
            del busy[addr]
        failed = [r.rid for r in d.execute.requests if r.rid in skip]
        msg = executed(d, failed=failed)
        if iterative and reschedule:
            again = [r for r, s in zip(d.execute.requests, d.execute.slots)
                     if s.ready and r.rid not in skip and not r.flags & END]
            msg.rescheduled = [("fe", r.rid) for r in again]
            for r in again:
                count(r.rid, -1)          # it runs (or is answered) again
        absorb(core.executed(msg, now))

    for op in ops:
        if op[0] == "add":
            absorb(core.add(req(added, op[1], op[2]), now))
            added += 1
        elif op[0] == "cancel":
            absorb(core.cancel("fe", max(added - 1 - op[1], 0), now))
        elif op[0] == "done" and busy:
            finish(sorted(busy)[op[1] % len(busy)], op[2])
        elif op[0] == "tick":
            now += op[1] * 500 * US
        elif op[0] == "reload":
            idle_us += 1
            absorb(core.set_models(model_table(idle_us)))
        elif op[0] == "kill":
            dead = addrs[op[1] % len(addrs)]
            for d in busy.pop(dead, []):          # never answered by the dead worker
                for r, s in zip(d.execute.requests, d.execute.slots):
                    if s.ready:
                        count(r.rid, -1)
            absorb(core.set_models(model_table(idle_us, [a for a in addrs if a != dead])))
            absorb(core.set_models(model_table(idle_us)))
        if not (op[0] == "done" and op[3]):
            absorb(core.step(now))
    for _ in range(3 * added + 3):
        for addr in list(busy):
            while addr in busy:
                finish(addr)
        now += 2000 * US
        absorb(core.step(now))
    assert outcomes == {rid: 1 for rid in range(added)}
    assert core.metrics()[0].pending == 0
    table_ = core._models[("m", 1)].policy.table
    assert not table_.cancelled and not table_.dropped


def test_a_config_change_cancels_the_requests_behind_a_skipped_one():
    """2 was cancelled while pipelined (its worker skips it; it marks its sequence's
    head): a config change before that batch's Executed answers 3 and 4, queued behind
    it, CANCELLED, as the old batcher would once 2's batch was done."""
    from tritond.scheduler.core import SchedulerCore
    core = SchedulerCore(pipeline=True)
    core.set_models(table(("m", 1, seq_config(), ["w0"])))
    core.add(req(1, 100, START), 0)
    (d1,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    (d2,) = dispatches(core.step(1))
    core.add(req(3, 100), 2)
    core.add(req(4, 100, START), 2)
    core.cancel("fe", 2, 3)
    out = core.set_models(table(("m", 1, seq_config(max_sequence_idle_microseconds=9), ["w0"])))
    assert answers(out) == cancelled(3, 4)
    core.executed(executed(d1), 4)
    out = core.executed(executed(d2, failed=[2]), 5) + core.step(5)
    assert answers(out) == [] and dispatches(out) == []
