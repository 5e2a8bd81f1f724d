"""The sequence batcher (scheduler/sequence.py) through the pure core: slots, order,
backlog, idle timeout, not-ready rows, oldest batching, instance loss, Triton's errors."""

from tritond import messages
from tritond.errors import Code

from .helpers import (MS, US, config, core_with, dispatches, executed, replies, request, rids,
                      table)

START, END = messages.SEQUENCE_START, messages.SEQUENCE_END


def seq_config(max_batch_size=2, strategy=None, idle_us=1_000_000):
    sb = {"max_sequence_idle_microseconds": idle_us}
    sb.update(strategy or {"direct": {}})
    return config(max_batch_size, sequence_batching=sb)


def req(rid, corrid, flags=0, **kw):
    return request(rid, batch=1, shape=(1,), correlation_id=corrid, flags=flags, **kw)


def error(out):
    (r,) = replies(out)
    return r.response.error.code, r.response.error.message


def slots(d):
    return [(s.slot, s.ready) for s in d.execute.slots]


def test_requests_without_a_correlation_id_are_refused():
    core = core_with(seq_config())
    assert error(core.add(req(1, 0, START), 0)) == (
        Code.INVALID_ARG, "inference request to model 'm' must specify a non-zero or non-empty "
        "correlation ID")
    assert error(core.add(req(2, "", START), 0))[0] == Code.INVALID_ARG


def test_unknown_sequence_without_start_is_refused():
    core = core_with(seq_config())
    assert error(core.add(req(1, 42), 0)) == (
        Code.INVALID_ARG, "inference request for sequence 42 to model 'm' must specify the "
        "START flag on the first request of the sequence")
    assert error(core.add(req(2, "abc"), 0))[1].startswith("inference request for sequence abc ")


def test_batch_size_above_one_is_refused():
    core = core_with(seq_config())
    out = core.add(request(1, batch=2, shape=(1,), correlation_id=7, flags=START), 0)
    assert error(out) == (Code.INVALID_ARG, "inference request to model 'm' must specify "
                                            "batch-size 1 due to requirements of sequence batcher")


def test_a_correlation_id_must_have_the_type_of_the_corrid_control():
    """Triton's ValidateCorrelationId: string ids for TYPE_STRING, uint64 (and none) for
    the integer types; models without a CORRID control take either."""
    def corrid_config(dtype):
        control = {"name": "CORRID", "control": [
            {"kind": "CONTROL_SEQUENCE_CORRID", "data_type": dtype}]}
        return config(2, sequence_batching={"direct": {}, "control_input": [control]})
    core = core_with(corrid_config("TYPE_UINT32"))
    assert error(core.add(req(1, "7", START), 0)) == (
        Code.INVALID_ARG, "[request id: <id_unknown>] sequence batching control 'CORRID' "
        "data-type is 'BYTES', but model 'm' expects 'UINT32'")
    assert core.add(req(2, 7, START), 0) == []
    two = request(3, batch=2, shape=(1,), correlation_id="7", flags=START)
    assert "data-type is 'BYTES'" in error(core.add(two, 0))[1]      # checked first, as Triton
    core = core_with(corrid_config("TYPE_STRING"))
    for rid, corrid in ((1, 7), (2, 0)):
        assert error(core.add(req(rid, corrid, START), 0)) == (
            Code.INVALID_ARG, "[request id: <id_unknown>] sequence batching control 'CORRID' "
            "data-type is 'UINT64', but model 'm' expects 'BYTES'")
    assert core.add(req(3, "7", START), 0) == []
    core = core_with(seq_config())
    assert core.add(req(1, "7", START), 0) == [] and core.add(req(2, 8, START), 0) == []


def test_direct_rows_are_slots_and_requests_run_in_order():
    core = core_with(seq_config(max_batch_size=4))
    core.add(req(1, 100, START), 0)
    core.add(req(2, 200, START), 0)
    core.add(req(3, 100), 0)           # behind 1: waits for the next batch
    (d,) = dispatches(core.step(0))
    assert rids(d) == [1, 2] and slots(d) == [(0, True), (1, True)]
    assert dispatches(core.step(1)) == []          # the instance is busy
    core.executed(executed(d), 2)
    (d,) = dispatches(core.step(2))
    assert rids(d) == [3] and slots(d) == [(0, True)]


def test_direct_pads_idle_slots_below_a_busy_one_with_not_ready_rows():
    core = core_with(seq_config(max_batch_size=4))
    core.add(req(1, 100, START), 0)
    core.add(req(2, 200, START), 0)
    (d,) = dispatches(core.step(0))
    core.executed(executed(d), 1)
    core.add(req(3, 200), 2)           # only slot 1 has work
    (d,) = dispatches(core.step(2))
    assert slots(d) == [(0, False), (1, True)]
    null, real = d.execute.requests
    assert (null.frontend, real.rid) == ("", 3) and null.rid < 0
    assert null.inputs == real.inputs      # shaped like a real row, never answered


def test_end_frees_the_slot_for_the_backlog():
    core = core_with(seq_config(max_batch_size=1))
    core.add(req(1, 100, START), 0)
    core.add(req(2, 200, START | END), 0)   # no free slot: backlog
    (d,) = dispatches(core.step(0))
    assert rids(d) == [1]
    core.executed(executed(d), 1)
    assert dispatches(core.step(1)) == []   # 100 still holds the only slot
    core.add(req(3, 100, END), 2)
    (d,) = dispatches(core.step(2))
    assert rids(d) == [3]
    core.executed(executed(d), 3)
    (d,) = dispatches(core.step(3))
    assert rids(d) == [2] and slots(d) == [(0, True)]


def test_sequences_spread_over_instances_and_stay_there():
    core = core_with(seq_config(max_batch_size=1), instances=("w0", "w1"))
    core.add(req(1, 100, START), 0)
    core.add(req(2, 200, START), 0)
    first = dispatches(core.step(0))
    assert sorted(rids(d) for d in first) == [[1], [2]]
    home = {rids(d)[0]: d.address for d in first}
    for d in first:
        core.executed(executed(d), 1)
    core.add(req(3, 200), 2)
    core.add(req(4, 100), 2)
    out = {d.address: rids(d) for d in dispatches(core.step(2))}
    assert out == {home[1]: [4], home[2]: [3]}


def test_idle_sequence_frees_its_slot_and_later_requests_fail():
    core = core_with(seq_config(max_batch_size=1, idle_us=1000))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.executed(executed(d), 10 * US)
    core.add(req(2, 200, START), 20 * US)    # backlog until 100 times out
    assert dispatches(core.step(20 * US)) == []
    wake = core.next_deadline_ns()
    assert wake is not None and wake <= 1000 * US + 1
    (d,) = dispatches(core.step(wake))
    assert rids(d) == [2] and d.execute.ended == [0]     # the worker drops 100's state
    assert error(core.add(req(3, 100), wake + 1))[1].startswith(
        "inference request for sequence 100 to model 'm' must specify the START flag")


def test_a_late_request_of_an_idle_sequence_fails():
    core = core_with(seq_config(max_batch_size=2, idle_us=1000))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.executed(executed(d), 1)
    assert error(core.add(req(2, 100), 2 * MS))[0] == Code.INVALID_ARG
    core.add(req(3, 100, START), 3 * MS)     # a new START is welcome
    (d,) = dispatches(core.step(3 * MS))
    assert rids(d) == [3]


def test_oldest_batches_ready_sequences_oldest_first():
    strategy = {"oldest": {"max_candidate_sequences": 4, "preferred_batch_size": [2],
                           "max_queue_delay_microseconds": 1000}}
    core = core_with(seq_config(max_batch_size=2, strategy=strategy))
    core.add(req(1, 100, START), 0)
    assert dispatches(core.step(0)) == []               # waits for a batch of 2
    assert core.next_deadline_ns() == 1000 * US
    core.add(req(2, 200, START), 10)
    core.add(req(3, 300, START), 20)
    (d,) = dispatches(core.step(20))
    assert rids(d) == [1, 2] and slots(d) == [(0, True), (1, True)]
    core.executed(executed(d), 30)
    (d,) = dispatches(core.step(1000 * US + 20))         # 3 alone once its window closed
    assert rids(d) == [3] and slots(d) == [(2, True)]


def test_direct_waits_for_its_minimum_slot_utilization_up_to_the_queue_delay():
    """Triton's direct queue delay: with half the slots required, one ready slot of four
    waits until a second one is ready or its request waited the delay."""
    strategy = {"direct": {"max_queue_delay_microseconds": 1000,
                           "minimum_slot_utilization": 0.5}}
    core = core_with(seq_config(max_batch_size=4, strategy=strategy))
    core.add(req(1, 100, START), 0)
    assert dispatches(core.step(0)) == []
    assert core.next_deadline_ns() == 1000 * US
    core.add(req(2, 200, START), 10)
    (d,) = dispatches(core.step(10))                   # 2 of 4 slots: half, it goes
    assert rids(d) == [1, 2] and slots(d) == [(0, True), (1, True)]
    core.executed(executed(d), 20)
    core.add(req(3, 100, END), 30)
    assert dispatches(core.step(30)) == []
    (d,) = dispatches(core.step(1000 * US + 30))       # alone once the delay passed
    assert rids(d) == [3] and slots(d) == [(0, True)]


def test_direct_without_a_queue_delay_ignores_the_slot_utilization():
    strategy = {"direct": {"minimum_slot_utilization": 1.0}}
    core = core_with(seq_config(max_batch_size=4, strategy=strategy))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    assert rids(d) == [1]


def test_oldest_never_runs_two_requests_of_one_sequence_together():
    strategy = {"oldest": {"max_candidate_sequences": 4}}
    core = core_with(seq_config(max_batch_size=4, strategy=strategy))
    for rid in (1, 2, 3):
        core.add(req(rid, 100, START if rid == 1 else 0), rid)
    order = []
    for t in range(10, 14):
        ds = dispatches(core.step(t))
        if not ds:
            break
        (d,) = ds
        order.append(rids(d))
        core.executed(executed(d), t)
    assert order == [[1], [2], [3]]


def test_lost_instance_fails_its_sequences_until_a_new_start():
    core = core_with(seq_config(max_batch_size=1), instances=("w0", "w1"))
    core.add(req(1, 100, START), 0)
    core.add(req(2, 200, START), 0)
    ds = {rids(d)[0]: d for d in dispatches(core.step(0))}
    dead = ds[1].address
    live = ds[2].address
    core.add(req(3, 100), 1)                              # queued behind 1
    out = core.set_models(table(("m", 1, seq_config(max_batch_size=1), [live])))
    codes = {r.response.rid: r.response.error.code for r in replies(out)}
    assert codes == {1: Code.UNAVAILABLE, 3: Code.UNAVAILABLE}
    code, message = error(core.add(req(4, 100), 2))
    assert code == Code.UNAVAILABLE and "sequence 100" in message and "START" in message
    core.executed(executed(ds[2]), 3)
    core.add(req(5, 200, END), 3)                         # the other sequence goes on
    (d,) = dispatches(core.step(3))
    assert rids(d) == [5] and d.address == live


def test_direct_rows_of_another_shape_wait_for_the_next_batch():
    core = core_with(seq_config(max_batch_size=4))
    core.add(request(1, batch=1, shape=(2,), correlation_id=100, flags=START), 0)
    core.add(request(2, batch=1, shape=(3,), correlation_id=200, flags=START), 0)
    (d,) = dispatches(core.step(0))
    # slot 1 waits (shapes must agree): a not-ready row holds its place, as in Triton
    assert rids(d) == [1, -2] and slots(d) == [(0, True), (1, False)]
    core.executed(executed(d), 1)
    (d,) = dispatches(core.step(1))
    assert slots(d) == [(0, False), (1, True)] and rids(d)[1] == 2


def test_backlogged_sequence_times_out_as_a_whole():
    core = core_with(seq_config(max_batch_size=1))
    core.add(req(1, 100, START), 0)
    (d,) = dispatches(core.step(0))
    core.add(req(2, 200, START, timeout_us=1000), 10)
    core.add(req(3, 200), 20)
    assert core.next_deadline_ns() == 10 + 1000 * US
    out = core.step(10 + 1000 * US)
    assert sorted((r.response.rid, r.response.error.message) for r in replies(out)) == [
        (2, "timeout of the corresponding sequence has been expired"),
        (3, "timeout of the corresponding sequence has been expired")]
    assert error(core.add(req(4, 200), 30 * MS))[0] == Code.INVALID_ARG   # it is gone


def pipelined_core(cfg, instances=("w0",)):
    from tritond.scheduler.core import SchedulerCore
    core = SchedulerCore(pipeline=True)
    assert core.set_models(table(("m", 1, cfg, instances))) == []
    return core


def test_direct_pipelines_the_next_step_behind_the_running_batch():
    """A sequence's next request goes to its busy instance at once (one batch ahead);
    the worker runs them in order. More waits for the instance."""
    core = pipelined_core(seq_config(max_batch_size=2))
    core.add(req(1, 100, START), 0)
    (d1,) = dispatches(core.step(0))
    core.add(req(2, 100), 1)
    core.add(req(3, 200, START), 1)
    (d2,) = dispatches(core.step(1))
    assert d2.address == d1.address and rids(d2) == [2, 3] and slots(d2) == [(0, True),
                                                                             (1, True)]
    core.add(req(4, 100, END), 2)
    assert dispatches(core.step(2)) == []               # one batch ahead at most
    core.executed(executed(d1), 3)
    (d3,) = dispatches(core.step(3))
    assert rids(d3) == [4]


def test_a_dead_instance_fails_what_it_held_ahead_even_an_end():
    """The requests pipelined behind a dead instance's running batch fail with its
    sequences (an END among them too: its sequence is no longer live), none is lost."""
    core = pipelined_core(seq_config(max_batch_size=1), instances=("w0", "w1"))
    core.add(req(1, 100, START), 0)
    (d1,) = dispatches(core.step(0))
    core.add(req(2, 100, END), 1)
    (d2,) = dispatches(core.step(1))
    assert d2.address == d1.address
    live = "w1" if d1.address.endswith("w0") else "w0"
    out = core.set_models(table(("m", 1, seq_config(max_batch_size=1), [live])))
    codes = {r.response.rid: r.response.error.code for r in replies(out)}
    assert codes == {1: Code.UNAVAILABLE, 2: Code.UNAVAILABLE}
    core.add(req(5, 100, START | END), 2)               # a new START is served
    (d,) = dispatches(core.step(2))
    assert rids(d) == [5]
