"""The response cache in the scheduler core: which requests it marks for their worker's
lookup (Request.cache) and how the worker's hits and misses count (Triton's
UpdateSuccessCacheHit/Miss)."""
from __future__ import annotations

import msgspec

from tritond.scheduler.core import SchedulerCore

from tests.scheduler.helpers import (MS, _view, config, dispatches, executed, full_request,
                                     request, table)
from tests.scheduler.test_ensembles import IDENTITY, IN, _ensemble, _step
from tests.specs import spec

CACHED = spec('name: "add_sub" backend: "python" '
              'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, '
              '{ name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ] '
              'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, '
              '{ name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ] '
              'response_cache { enable: true }')
CHAIN = _ensemble("chain", [_step("add_sub", IN, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])


def _core(cache_on=True) -> SchedulerCore:
    core = SchedulerCore(address="sched")
    core.cache_on = cache_on
    core.set_models(table(("add_sub", 1, CACHED, ["w0", "w1", "w2"]),
                          ("identity", 1, IDENTITY, ["w9"]),
                          ("chain", 1, CHAIN, [])))
    return core


def _marks(out) -> list[tuple[int, bool]]:
    return [(r.rid, r.cache) for d in dispatches(out) for r in d.execute.requests]


def _bls(rid, model, inputs):
    """A BLS request as a worker sends it (batch -1: the scheduler knows if it batches)."""
    req = full_request(rid, model=model, version=-1, inputs=inputs, frontend="bls")
    req.batch = -1
    return _view(msgspec.msgpack.encode(req))


def test_steps_and_bls_calls_of_a_cached_model_are_marked_a_clients_request_is_not():
    core = _core()
    inputs = ("INPUT0", "INPUT1")
    core.add(request(1, model="add_sub", inputs=inputs), 0)          # a client's
    core.add(_bls(2, "add_sub", inputs), 0)                          # a BLS call
    core.add(request(3, model="chain", inputs=inputs), 0)            # an ensemble step
    core.add(_bls(4, "identity", ("IN",)), 0)                        # a model not cached
    out = core.settle(core.step(0), 0)
    marks = {(r.frontend, r.rid): r.cache for d in dispatches(out) for r in d.execute.requests}
    (step,) = [k for k in marks if k[0] == "sched"]                  # the step's own rid
    assert marks == {("fe", 1): False, ("bls", 2): True, step: True, ("bls", 4): False}


def test_nothing_is_marked_without_a_sized_cache():
    core = _core(cache_on=False)
    core.add(_bls(2, "add_sub", ("INPUT0", "INPUT1")), 0)
    assert _marks(core.step(0)) == [(2, False)]


def _stats(core, name="m"):
    (s,) = core.stats_json(name)["model_stats"]
    return s


def test_a_workers_hits_and_misses_count_as_triton_counts_them():
    core = SchedulerCore()
    core.set_models(table(("m", 1, config(8, {}), ["w0"])))
    for rid, batch in ((0, 1), (1, 2), (2, 1)):
        core.add(request(rid, batch=batch, arrival_ns=100), 1000)
    (d,) = dispatches(core.step(5000))
    msg = executed(d, compute=(10, 100, 1000), end=9000)
    msg.hits, msg.misses = [(0, 50)], [(1, 70)]
    core.executed(msg, 10 * MS)
    s = _stats(core)
    inf = s["inference_stats"]
    assert (s["inference_count"], s["execution_count"]) == (3, 1)      # the hit did not run
    assert inf["success"] == {"count": 3, "ns": 3 * (9000 - 100) + 70}
    assert inf["queue"] == {"count": 3, "ns": 3 * (5000 - 100)}
    assert inf["cache_hit"] == {"count": 1, "ns": 50}
    assert inf["cache_miss"] == {"count": 1, "ns": 70}
    assert inf["compute_infer"]["count"] == 2
    assert [b["batch_size"] for b in s["batch_stats"]] == [3]


def test_a_batch_of_hits_only_is_no_execution():
    core = SchedulerCore()
    core.set_models(table(("m", 1, config(8, {}), ["w0"])))
    core.add(request(0, batch=1), 0)
    (d,) = dispatches(core.step(0))
    msg = executed(d, end=500)
    msg.hits = [(0, 20)]
    core.executed(msg, MS)
    s = _stats(core)
    assert (s["inference_count"], s["execution_count"], s["batch_stats"]) == (0, 0, [])
    assert s["inference_stats"]["success"]["count"] == 1
    assert s["inference_stats"]["cache_hit"] == {"count": 1, "ns": 20}
    core.add(request(1, batch=1), MS)
    assert len(dispatches(core.step(MS))) == 1     # the instance is free again
