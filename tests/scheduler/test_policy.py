"""Priority levels, queue policies, timeouts and cancellation; the dispatch
policies (default, dynamic) on their own, and a policy of our own through the seam."""

import pytest

from tritond import messages
from tritond.errors import Code, TritonError
from tritond.scheduler.config import SchedConfig
from tritond.scheduler.core import Notify, SchedulerCore
from tritond.scheduler.policy import (PIPELINE_AHEAD_BATCHING, PIPELINE_AHEAD_SINGLE,
                                      DefaultPolicy, DynamicBatchPolicy, Policy, make_policy)
from tritond.scheduler.router import Batch, InstanceRouter

from .helpers import (US, config, core_with, dispatches, executed, instance, replies, request,
                      rids, table)


def busy_core(dynamic: dict, max_batch_size: int = 1):
    """A core whose only instance is busy with request 1000."""
    core = core_with(config(max_batch_size, dynamic))
    core.add(request(1000, batch=1), 0)
    (d,) = dispatches(core.step(0))
    return core, d


def test_priority_levels_served_first():
    dyn = {"priority_levels": 3, "default_priority_level": 2}
    core, d = busy_core(dyn)
    core.add(request(1, batch=1, priority=3), 1)
    core.add(request(2, batch=1, priority=0), 2)      # default level 2
    core.add(request(3, batch=1, priority=1), 3)
    core.add(request(4, batch=1, priority=9), 4)      # > levels: default level 2
    core.add(request(5, batch=1, priority=1), 5)
    order = []
    for t in range(10, 20):
        core.executed(executed(d), t)
        ds = dispatches(core.step(t))
        if not ds:
            break
        (d,) = ds
        order += rids(d)
    assert order == [3, 5, 2, 4, 1]


def test_the_largest_priority_levels_are_made_as_requests_need_them():
    # qa/L0_model_queue test_max_priority_levels: priority_levels 2^64 - 1, default level
    # 2^32; a request of priority 1 goes first and forms a preferred batch of 4 with the
    # first default one. No level is made per configured level, and the levels made for
    # requests' priorities go once they are empty.
    dyn = {"preferred_batch_size": [4, 8], "priority_levels": 2**64 - 1,
           "default_priority_level": 2**32}
    core, d = busy_core(dyn, max_batch_size=8)
    core.add(request(1, batch=2, priority=0), 1)          # the default level, 2^32
    core.add(request(2, batch=1, priority=2**32), 2)      # the default level named
    core.add(request(3, batch=2, priority=1), 3)
    queue = core.table.models[("m", 1)].policy.queue
    assert [lv.index for lv in queue.levels] == [0, 2**32 - 1]
    core.executed(executed(d), 10)
    (d,) = dispatches(core.step(10))
    assert rids(d) == [3, 1]
    for rid, priority in ((4, 7), (5, 2**63), (6, 2**64 - 1)):
        core.add(request(rid, batch=1, priority=priority), 11)
    assert [lv.index for lv in queue.levels] == [6, 2**32 - 1, 2**63 - 1, 2**64 - 2]
    core.executed(executed(d), 11)
    (d,) = dispatches(core.step(11))
    assert rids(d) == [4, 2, 5, 6]                        # 7, then 2^32 (default), ...
    assert [lv.index for lv in queue.levels] == [2**32 - 1]


def test_max_queue_size_rejects():
    core, _ = busy_core({"default_queue_policy": {"max_queue_size": 2}})
    assert core.add(request(1, batch=1), 1) == []
    assert core.add(request(2, batch=1), 1) == []
    (r,) = core.add(request(3, batch=1), 1)
    assert r.response.rid == 3
    assert (r.response.error.code, r.response.error.message) == (
        Code.UNAVAILABLE, "[request id: <id_unknown>] Exceeds maximum queue size")
    (r,) = core.add(request(4, batch=1, request_id="r4"), 1)     # Triton's LogRequest()
    assert r.response.error.message == "[request id: r4] Exceeds maximum queue size"


def test_max_queue_size_per_level():
    dyn = {"priority_levels": 2, "default_priority_level": 2,
           "priority_queue_policy": {"1": {"max_queue_size": 1}}}
    core, _ = busy_core(dyn)
    assert core.add(request(1, batch=1, priority=1), 1) == []
    assert len(core.add(request(2, batch=1, priority=1), 1)) == 1
    assert core.add(request(3, batch=1, priority=2), 1) == []   # level 2 is unlimited


def test_reject_timeout_while_all_instances_busy():
    core, _ = busy_core({"default_queue_policy": {"default_timeout_microseconds": 100}})
    core.add(request(1, batch=1), 1000)
    assert core.next_deadline_ns() == 1000 + 100 * US
    assert core.step(1000 + 99 * US) == []
    (r,) = core.step(1000 + 100 * US)
    assert r.response.rid == 1
    assert (r.response.error.code, r.response.error.message) == (
        Code.UNAVAILABLE, "Request timeout expired")
    assert core.next_deadline_ns() is None
    assert core.cancel("fe", 1, 2000 * US) == []   # already answered: no second outcome


def test_delay_action_served_after_fresh_requests():
    policy = {"default_timeout_microseconds": 100, "timeout_action": "DELAY"}
    core, d = busy_core({"default_queue_policy": policy})
    core.add(request(1, batch=1), 0)
    core.add(request(2, batch=1), 0)
    assert core.step(200 * US) == []              # delayed, not rejected
    core.add(request(3, batch=1), 200 * US)
    order = []
    t = 250 * US                                  # request 3 not yet expired
    while True:
        core.executed(executed(d), t)
        ds = dispatches(core.step(t))
        if not ds:
            break
        (d,) = ds
        order += rids(d)
    assert order == [3, 1, 2]


def test_timeout_override_only_lowers():
    policy = {"default_timeout_microseconds": 100, "allow_timeout_override": True}
    core, _ = busy_core({"default_queue_policy": policy})
    core.add(request(1, batch=1, timeout_us=50), 0)      # lowers: 50 us
    core.add(request(2, batch=1, timeout_us=500), 0)     # cannot raise: 100 us
    assert [r.response.rid for r in core.step(50 * US)] == [1]
    assert [r.response.rid for r in core.step(100 * US)] == [2]


def test_timeout_override_not_allowed_is_ignored():
    core, _ = busy_core({"default_queue_policy": {"default_timeout_microseconds": 100}})
    core.add(request(1, batch=1, timeout_us=10), 0)
    assert core.step(50 * US) == []
    assert len(core.step(100 * US)) == 1


def test_no_default_timeout_ignores_request_timeout():
    core, _ = busy_core({"default_queue_policy": {"allow_timeout_override": True}})
    core.add(request(1, batch=1, timeout_us=10), 0)
    assert core.step(10**12) == []
    assert core.next_deadline_ns() is None


def test_cancel_queued_request():
    core, d = busy_core({})
    core.add(request(1, batch=1), 1)
    core.add(request(2, batch=1), 1)
    (r,) = core.cancel("fe", 1, 5)
    assert (r.frontend, r.response.rid, r.response.error.code) == ("fe", 1, Code.CANCELLED)
    assert core.cancel("fe", 1, 6) == []
    core.executed(executed(d), 7)
    (d,) = dispatches(core.step(7))
    assert rids(d) == [2]


def test_cancel_executing_request_notifies_its_worker():
    # A running request is not answered by the scheduler (the worker still
    # will); its worker is told, so the model can see is_cancelled().
    core, d = busy_core({})
    (n,) = core.cancel(d.execute.requests[0].frontend, 1000, 1)
    assert type(n) is Notify and n.address == d.address
    # running: its worker may not have read the Execute yet, but must run it (see below)
    assert n.message == messages.CancelRunning(d.execute.batch_id, [("fe", 1000)], True)
    assert replies(core.step(1)) == []
    core.executed(executed(d), 2)
    assert core.cancel("fe", 1000, 3) == []       # answered by now: nothing to tell


def test_cancel_is_per_frontend():
    core, _ = busy_core({})
    core.add(request(1, batch=1, frontend="fe-a"), 1)
    core.add(request(1, batch=1, frontend="fe-b"), 1)
    (r,) = core.cancel("fe-b", 1, 2)
    assert r.frontend == "fe-b"


# ------------------------------------------------- dispatch policies on their own


def policy_for(cfg_json, n_instances: int = 1, pipeline: bool = False):
    cfg = SchedConfig(cfg_json)
    policy = make_policy(cfg)
    router = InstanceRouter(policy.depth if pipeline else 0)
    router.set_instances([instance(f"w{i}", i) for i in range(n_instances)], None)
    return policy, router


def take(policy, router, now_ns: int = 0) -> list[tuple[str, list[int]]]:
    """Every batch the policy forms now, as the core would dispatch them."""
    out = []
    while (batch := policy.next_batch(now_ns, router)) is not None:
        router.assign(batch.inst, batch)
        out.append((batch.inst.address, [e.req.rid for e in batch.entries]))
        assert batch.size == sum(e.size for e in batch.entries)
    return out


def test_policy_follows_the_config():
    assert type(make_policy(SchedConfig(config(8)))) is DefaultPolicy
    assert type(make_policy(SchedConfig(config(0, {})))) is DefaultPolicy
    assert type(make_policy(SchedConfig(config(8, {})))) is DynamicBatchPolicy


def test_default_policy_one_request_per_instance_then_behind():
    policy, router = policy_for(config(8), n_instances=2, pipeline=True)
    for rid in range(10):
        policy.add(request(rid, batch=1), rid)
    assert policy.depth == PIPELINE_AHEAD_SINGLE and policy.count == 10
    got = take(policy, router)
    assert got[:2] == [("w0", [0]), ("w1", [1])]                  # the idle ones first
    assert [a for a, _ in got[2:]] == ["w0", "w1"] * 3            # then 3 ahead of each
    assert [rids for _, rids in got] == [[r] for r in range(8)]
    assert policy.count == 2 and policy.next_batch(0, router) is None


def test_default_policy_without_an_instance_keeps_its_queue():
    policy, router = policy_for(config(), n_instances=0)
    policy.add(request(0), 0)
    assert policy.next_batch(0, router) is None and policy.count == 1
    assert policy.next_deadline(router) is None


def test_queue_rules_turn_pipelining_off():
    for dyn in ({"priority_levels": 2}, {"default_queue_policy": {"max_queue_size": 4}},
                {"default_queue_policy": {"default_timeout_microseconds": 5}}):
        assert make_policy(SchedConfig(config(8, dyn))).depth == 0
    assert make_policy(SchedConfig(config(8, {}))).depth == PIPELINE_AHEAD_BATCHING
    # sequences: direct holds one batch ahead (order is kept by the worker); oldest none
    policy, router = policy_for(config(sequence_batching={}), pipeline=True)
    assert policy.depth == 1 and router.depth == 1
    policy, router = policy_for(config(sequence_batching={"oldest": {}}), pipeline=True)
    assert policy.depth == 0 and router.depth == 0


def test_queue_full_is_a_rejection_with_triton_message():
    policy, _ = policy_for(config(4, {"default_queue_policy": {"max_queue_size": 1}}))
    policy.add(request(0, batch=1), 0)
    with pytest.raises(TritonError) as err:
        policy.add(request(1, batch=1), 0)
    assert (err.value.code, err.value.message) == (
        Code.UNAVAILABLE, "[request id: <id_unknown>] Exceeds maximum queue size")


def test_expire_returns_timed_out_entries_once():
    timeout = {"default_queue_policy": {"default_timeout_microseconds": 10}}
    policy, _ = policy_for(config(4, timeout))
    policy.add(request(0, batch=1), 0)
    policy.add(request(1, batch=1), 5 * US)
    assert list(policy.expire(9 * US)) == []
    assert [e.req.rid for e in policy.expire(10 * US)] == [0]
    assert [e.req.rid for e in policy.expire(20 * US)] == [1]
    assert list(policy.expire(30 * US)) == [] and policy.count == 0


def test_dynamic_policy_waits_for_the_window_only_with_an_instance_to_fill():
    policy, router = policy_for(config(8, {"preferred_batch_size": [4],
                                           "max_queue_delay_microseconds": 100}))
    policy.add(request(0, batch=1), 0)
    assert take(policy, router, 0) == []
    assert policy.next_deadline(router) == 100 * US
    assert take(policy, router, 100 * US) == [("w0", [0])]
    policy.add(request(1, batch=1), 101 * US)
    assert take(policy, router, 101 * US) == []         # no instance: no window to wait for
    assert policy.next_deadline(router) is None


def test_dynamic_policy_pipelines_only_batches_that_cannot_grow():
    policy, router = policy_for(config(4, {}), pipeline=True)
    for rid in range(6):
        policy.add(request(rid, batch=1), 0)
    assert take(policy, router) == [("w0", [0, 1, 2, 3])]     # 2 left: they may still grow
    for rid in range(6, 8):
        policy.add(request(rid, batch=1), 1)
    assert take(policy, router, 1) == [("w0", [4, 5, 6, 7])]   # full: queued behind
    policy.add(request(8, batch=1), 2)
    assert take(policy, router, 2) == []                       # w0 holds one ahead already


def test_dynamic_policy_with_a_delay_grows_a_closed_window_batch_until_the_instance_is_free():
    # As Triton's payload waiting for its instance: past its window a batch is
    # not queued behind a busy instance but takes in later requests meanwhile.
    policy, router = policy_for(config(4, {"max_queue_delay_microseconds": 50}), pipeline=True)
    policy.add(request(0, batch=1), 0)
    assert take(policy, router, 50 * US) == [("w0", [0])]
    policy.add(request(1, batch=1), 60 * US)
    assert take(policy, router, 60 * US) == []
    assert take(policy, router, 110 * US) == []                # window closed, w0 busy: grow
    assert policy.next_deadline(router) is None                # nothing to wait for but w0
    policy.add(request(2, batch=1), 120 * US)
    assert take(policy, router, 130 * US) == []
    router.finished(router.instances["w0"])                    # [0] executed
    assert take(policy, router, 140 * US) == [("w0", [1, 2])]  # one batch of both


def test_dynamic_policy_with_a_delay_pipelines_a_batch_that_cannot_grow():
    policy, router = policy_for(config(4, {"max_queue_delay_microseconds": 50}), pipeline=True)
    policy.add(request(0, batch=1), 0)
    assert take(policy, router, 50 * US) == [("w0", [0])]
    for rid in range(1, 5):
        policy.add(request(rid, batch=1), 60 * US)
    assert take(policy, router, 60 * US) == [("w0", [1, 2, 3, 4])]   # full: queued behind


# ------------------------------------- a policy of our own through the core's seam


class PinnedPolicy(Policy):
    """A toy sticky policy (the shape of a sequence batcher): requests with the
    same correlation id run one at a time, in order, on the instance their
    first request was pinned to."""

    __slots__ = ("done",)

    def __init__(self, cfg):
        super().__init__(cfg, 0)
        self.done = []

    def next_batch(self, now_ns, router):
        for entry in self.queue.walk():
            key = entry.req.correlation_id
            inst = router.pinned(key)
            if inst is None:
                inst = router.least_pinned()
                router.pin(key, inst)
            if inst.busy is None:
                self.queue.finish(entry)
                return Batch(inst, [entry], entry.size)
        return None

    def on_executed(self, batch, now_ns):
        self.done.append([e.req.rid for e in batch.entries])

    def on_instance_removed(self, inst):
        lost = [e for e in self.queue.walk() if e.req.correlation_id in inst.pins]
        for entry in lost:
            self.queue.finish(entry)
        return lost


def test_a_new_policy_plugs_in_without_changing_the_core():
    policies = []

    def make(cfg):
        policies.append(PinnedPolicy(cfg))
        return policies[-1]

    core = SchedulerCore(make_policy=make)
    core.set_models(table(("m", 1, config(), ["w0", "w1"])))
    for rid, seq in enumerate(["a", "b", "a", "b", "a"]):
        core.add(request(rid, correlation_id=seq), rid)
    ds = dispatches(core.step(10))
    assert [(d.address, rids(d)) for d in ds] == [("w0", [0]), ("w1", [1])]
    core.executed(executed(ds[0]), 11)
    (d,) = dispatches(core.step(11))
    assert (d.address, rids(d)) == ("w0", [2])              # "a" stays on w0
    assert policies[0].done == [[0]]
    out = core.set_models(table(("m", 1, config(), ["w0"])))      # w1 died
    # what ran on w1 fails, and so do the queued requests pinned to it
    assert sorted(r.response.rid for r in replies(out)) == [1, 3]
    assert {r.response.error.message for r in replies(out)} == {
        "model 'm' version 1: instance 'm_1' became unavailable while executing the request",
        "model 'm' version 1: instance 'm_1' became unavailable"}
    assert core.cancel("fe", 3, 12) == []                   # answered: gone from the index


def test_a_full_batch_leaves_the_queue_before_max_queue_size_refuses():
    """QA L0_metrics test_fail_max_queue_size: 10 requests reach an idle instance
    (max_batch_size 4, max_queue_size 4) at once: Triton's batcher takes a full batch
    out of the queue as soon as it has one, so 4 run, 4 wait and 2 are refused. The
    scheduler reads the 10 in one frame: it must not refuse 6."""
    core = core_with(config(4, {"max_queue_delay_microseconds": 100_000,
                                "default_queue_policy": {"max_queue_size": 4}}))
    out = []
    for rid in range(1, 11):
        out += core.add(request(rid, batch=1), 0)
    out += core.step(0)
    (d,) = dispatches(out)
    assert rids(d) == [1, 2, 3, 4]
    assert sorted(r.response.rid for r in replies(out)) == [9, 10]
    assert core.metrics()[0].pending == 4
    assert core.metrics()[0].failures["REJECTED"] == 0       # refused at enqueue: not counted


def test_requests_pipelined_behind_a_running_batch_are_pending():
    """nv_inference_pending_request_count counts every request not executing yet (QA
    metrics_queue_size_test): those tritond pipelined into a busy worker wait too."""
    core = SchedulerCore(pipeline=True)
    assert core.set_models(table(("m", 1, config(4, {}), ["w0"]))) == []
    core.add(request(1, batch=1), 0)
    (running,) = dispatches(core.step(0))
    for rid in range(2, 10):
        core.add(request(rid, batch=1), 1)
    (ahead,) = dispatches(core.step(1))              # one batch of 4 behind the running one
    assert len(rids(ahead)) == 4
    assert core.metrics()[0].pending == 8            # 4 pipelined + 4 queued
    core.executed(executed(running), 2)
    core.step(2)
    assert core.metrics()[0].pending == 4            # the pipelined batch runs now
