"""Drain before swap (scheduler/drain.py): retiring workers finish what they hold."""
from tritond import messages

from .helpers import config, core_with, dispatches, executed, replies, request, rids, table
from tritond.scheduler.core import Notify


def drained(out: list) -> list[str]:
    return [o.message.name for o in out
            if isinstance(o, Notify) and isinstance(o.message, messages.Drained)]


def retiring(tbl: messages.ModelTable, *addresses: str) -> messages.ModelTable:
    tbl.retiring = list(addresses)
    return tbl


def test_retired_instance_finishes_its_batch_then_reports():
    cfg = config()
    core = core_with(cfg)
    core.retirement.parent = "parent"
    core.add(request(0), 0)
    core.add(request(1), 0)
    (d,) = dispatches(core.step(0))
    out = core.set_models(retiring(table(("m", 1, cfg, ["w1"])), "w0"))
    assert replies(out) == [] and drained(out) == []      # not failed: it still runs
    (d1,) = dispatches(core.step(1))                       # the queue goes to the new one
    assert (d1.address, rids(d1)) == ("w1", [1])
    out = core.executed(executed(d), 2)
    assert drained(out) == ["instance:w0"] and out[0].address == "parent"
    assert core.stats_json()["model_stats"][0]["execution_count"] == 1


def test_idle_retired_instance_reports_at_once():
    cfg = config()
    core = core_with(cfg, instances=("w0", "w1"))
    out = core.set_models(retiring(table(("m", 1, cfg, ["w1"])), "w0"))
    assert drained(out) == ["instance:w0"]


def test_instance_not_retiring_still_fails_its_batch():
    cfg = config()
    core = core_with(cfg)
    core.add(request(0), 0)
    dispatches(core.step(0))
    out = core.set_models(table(("m", 1, cfg, [])))
    assert [r.response.rid for r in replies(out)] == [0]


def test_unloading_version_reports_empty_queue_once():
    cfg = config()
    core = core_with(cfg)
    core.add(request(0), 0)
    core.add(request(1), 0)
    (d,) = dispatches(core.step(0))
    assert drained(core.set_models(table(("m", 1, cfg, ["w0"], "UNLOADING")))) == []
    core.executed(executed(d), 1)
    out = core.step(1)
    assert rids(dispatches(out)[0]) == [1] and drained(out) == ["model:m:1"]
    assert drained(core.set_models(table(("m", 1, cfg, ["w0"], "UNLOADING")))) == []


def test_release_to_retiring_instance_goes_at_once():
    cfg = config()
    core = core_with(cfg)
    core.add(request(0), 0)
    dispatches(core.step(0))
    core.set_models(retiring(table(("m", 1, cfg, [])), "w0"))
    (n,) = core.release(messages.Release("w0", [("seg", 8)]))
    assert n.address == "w0" and n.message.slots == [("seg", 8)]


def test_retiring_instance_no_longer_listed_fails_what_it_held():
    cfg = config()
    core = core_with(cfg)
    core.add(request(0), 0)
    dispatches(core.step(0))
    core.set_models(retiring(table(("m", 1, cfg, [])), "w0"))
    out = core.set_models(table(("m", 1, cfg, [])))       # the worker died while draining
    (r,) = replies(out)
    assert r.response.rid == 0
    assert r.response.error.message == ("model 'm' version 1: instance 'm_0' became "
                                        "unavailable while executing the request")


def test_a_retiring_instances_pipelined_request_cancelled_counts_canceled():
    """Cancelled while it waited behind the retiring instance's running batch: its worker
    skips it and answers it; the scheduler counts it CANCELED, as it does for a live
    instance (cancels.py), not as the model's (BACKEND) failure."""
    from tritond.scheduler.core import SchedulerCore
    cfg = config(1)
    core = SchedulerCore(pipeline=True)
    core.set_models(table(("m", 1, cfg, ["w0"])))
    core.add(request(1, batch=1), 0)
    (d1,) = dispatches(core.step(0))
    core.add(request(2, batch=1), 1)
    (d2,) = dispatches(core.step(1))
    core.set_models(retiring(table(("m", 1, cfg, ["w1"])), "w0"))
    (note,) = core.cancel("fe", 2, 2)
    assert note.address == "w0" and note.message.batch_id == d2.execute.batch_id
    core.executed(executed(d1), 3)
    core.executed(executed(d2, failed=[2]), 4)
    failures = core.metrics()[0].failures
    assert failures["CANCELED"] == 1 and failures["BACKEND"] == 0
