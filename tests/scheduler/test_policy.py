"""Priority levels, queue policies, timeouts and cancellation (§8.3)."""
from tritond import messages
from tritond.errors import Code
from tritond.scheduler.core import Notify

from .helpers import US, config, core_with, dispatches, executed, replies, request, rids


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


def test_max_queue_size_rejects():
    core, _ = busy_core({"default_queue_policy": {"max_queue_size": 2}})
    assert core.add(request(1, batch=1), 1) == []
    assert core.add(request(2, batch=1), 1) == []
    (r,) = core.add(request(3, batch=1), 1)
    assert r.response.rid == 3
    assert (r.response.error.code, r.response.error.message) == (
        Code.UNAVAILABLE, "Exceeds maximum queue size")


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
    assert n.message == messages.CancelRunning(d.execute.batch_id, [("fe", 1000)])
    assert replies(core.step(1)) == []
    core.executed(executed(d), 2)
    assert core.cancel("fe", 1000, 3) == []       # answered by now: nothing to tell


def test_cancel_is_per_frontend():
    core, _ = busy_core({})
    core.add(request(1, batch=1, frontend="fe-a"), 1)
    core.add(request(1, batch=1, frontend="fe-b"), 1)
    (r,) = core.cancel("fe-b", 1, 2)
    assert r.frontend == "fe-b"
