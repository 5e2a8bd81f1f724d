"""Model table changes: instances and model versions coming and going."""
from tritond.errors import Code

from .helpers import config, core_with, dispatches, executed, replies, request, rids, table


def test_instance_disappearing_fails_only_its_requests():
    cfg = config()
    core = core_with(cfg, instances=("w0", "w1"))
    for rid in range(3):
        core.add(request(rid), 0)
    d0, d1 = dispatches(core.step(0))
    out = core.set_models(table(("m", 1, cfg, ["w1"])))
    (r,) = replies(out)
    assert r.response.rid == rids(d0)[0]
    assert r.response.error.code == Code.UNAVAILABLE
    assert r.response.error.message == (
        "model 'm' version 1: instance 'm_0' became unavailable while executing the request")
    assert core.executed(executed(d0), 1) == []      # late notice from the dead instance
    core.executed(executed(d1), 1)
    (d,) = dispatches(core.step(1))
    assert (d.address, rids(d)) == ("w1", [2])


def test_new_instance_is_used():
    cfg = config()
    core = core_with(cfg, instances=())
    core.add(request(0), 0)
    assert core.step(0) == []
    core.set_models(table(("m", 1, cfg, ["w5"])))
    assert [d.address for d in dispatches(core.step(1))] == ["w5"]


def test_model_gone_fails_queued_and_new_requests():
    cfg = config()
    core = core_with(cfg)
    core.add(request(0), 0)
    (d,) = dispatches(core.step(0))
    core.add(request(1), 0)
    out = core.set_models(table())
    assert sorted(r.response.rid for r in replies(out)) == [0, 1]
    assert all(r.response.error.code == Code.UNAVAILABLE for r in replies(out))
    (r,) = core.add(request(2), 1)
    assert r.response.error.code == Code.UNAVAILABLE
    assert core.step(2) == [] and core.next_deadline_ns() is None


def test_unloading_drains_but_accepts_nothing_new():
    cfg = config()
    core = core_with(cfg)
    core.add(request(0), 0)
    core.add(request(1), 0)
    (d,) = dispatches(core.step(0))
    assert core.set_models(table(("m", 1, cfg, ["w0"], "UNLOADING"))) == []
    assert len(core.add(request(2), 1)) == 1
    core.executed(executed(d), 2)
    assert rids(dispatches(core.step(2))[0]) == [1]


def test_config_change_keeps_queue_and_busy_instance():
    core = core_with(config(8, {}))
    core.add(request(0, batch=1), 0)
    (d,) = dispatches(core.step(0))
    core.add(request(1, batch=1), 1)
    core.add(request(2, batch=1), 1)
    new_cfg = config(8, {"preferred_batch_size": [2]})
    assert core.set_models(table(("m", 1, new_cfg, ["w0"]))) == []
    assert core.step(2) == []                         # w0 still busy
    core.executed(executed(d), 3)
    (d,) = dispatches(core.step(3))
    assert rids(d) == [1, 2]
    assert core.stats_json()["model_stats"][0]["execution_count"] == 1


def test_config_change_shrinking_queue_rejects_excess():
    core = core_with(config(1, {}))
    core.add(request(0, batch=1), 0)
    dispatches(core.step(0))
    core.add(request(1, batch=1), 0)
    core.add(request(2, batch=1), 0)
    small = config(1, {"default_queue_policy": {"max_queue_size": 1}})
    (r,) = replies(core.set_models(table(("m", 1, small, ["w0"]))))
    assert r.response.rid == 2
    assert core.cancel("fe", 2, 1) == []
