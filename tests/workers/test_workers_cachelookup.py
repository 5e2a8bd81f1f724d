"""A worker's response-cache lookups (workers/cachelookup.py) over a real store, real
shared memory and a real ONNX backend (no processes): marked requests hit without
running, misses are inserted, unmarked requests and uncached models are untouched."""
from __future__ import annotations

import numpy as np
import pytest

from tritond import cacheentry
from tritond.shm import lru
from tritond.shm.region import segment_name
from tritond.workers.cachelookup import CacheLookup
from tritond.workers.onnxruntime import OnnxRuntimeBackend

from tests.specs import spec_from_dict

from . import models
from .helpers import context
from .test_workers_executor import Worker


@pytest.fixture
def cached(repo, frontend):
    """(worker whose model has response_cache, its store, the rows of each execution)."""
    backend = OnnxRuntimeBackend(context(models.add_sub(repo)))
    cfg = backend.auto_complete({"name": "m", "response_cache": {"enable": True}})
    w = Worker(frontend.server_id, backend, cfg)
    seg = lru.create(segment_name(frontend.server_id, "cache"), 1 << 20)
    w.executor.lookup = CacheLookup.open(seg.name, spec_from_dict(cfg), w.cache, w.writer, "@w1")
    runs = []
    execute = backend.execute
    backend.execute = lambda items: runs.append(
        sum(i.inputs["INPUT0"].shape[0] for i in items)) or execute(items)
    yield w, lru.SharedLru.attach(seg.name), runs
    w.executor.lookup.close()
    w.close()
    seg.close()
    seg.unlink()


def ints(start=0):
    return np.arange(start, start + 16, dtype=np.int32).reshape(1, 16)


def marked(frontend, rid, a, outputs=()):
    req = frontend.request(rid, {"INPUT0": a, "INPUT1": a}, outputs=outputs, batch=1)
    req.cache = True
    return req


def raw(frontend, resp):
    return {ref.name: (ref.dtype, ref.shape, frontend.read(ref).tobytes()) for ref in resp.outputs}


def test_a_marked_miss_runs_and_is_inserted_then_hits_without_running(frontend, cached):
    w, store, runs = cached
    (miss,), executed = w.run(marked(frontend, 1, ints()))
    assert runs == [1] and [rid for rid, _ in executed.misses] == [1] and executed.hits == []
    assert len(store.keys_by_recency()) == 1
    (hit,), executed = w.run(marked(frontend, 2, ints()), batch_id=2)     # staged anew
    assert runs == [1] and [rid for rid, _ in executed.hits] == [2] and executed.misses == []
    assert hit.error is None and hit.instance == "@w1" and hit.model_version == 1
    assert raw(frontend, hit) == raw(frontend, miss)        # byte for byte
    w.release(miss)
    w.release(hit)
    assert w.writer.live_slots == 0                          # a hit's slot is released as any


def test_a_batch_runs_only_its_misses_and_unmarked_requests(frontend, cached):
    w, _, runs = cached
    w.run(marked(frontend, 1, ints()))
    plain = frontend.request(3, {"INPUT0": ints(), "INPUT1": ints()}, batch=1)   # a client's
    responses, executed = w.run(marked(frontend, 1, ints()), marked(frontend, 2, ints(50)),
                                plain, batch_id=2)
    assert runs == [1, 2]                   # the new input and the unmarked request ran
    assert sorted(r.rid for r in responses) == [1, 2, 3]
    assert [rid for rid, _ in executed.hits] == [1] and [rid for rid, _ in executed.misses] == [2]
    for resp in responses:
        out = {ref.name: frontend.read(ref) for ref in resp.outputs}
        a = ints(50) if resp.rid == 2 else ints()
        np.testing.assert_array_equal(out["OUTPUT0"], a + a)


def test_requested_outputs_key_and_answer_in_the_order_asked(frontend, cached):
    w, _, runs = cached
    (full,), _ = w.run(marked(frontend, 1, ints(), outputs=["OUTPUT1", "OUTPUT0"]))
    (again,), executed = w.run(marked(frontend, 2, ints()), batch_id=2)   # every output: same key
    assert runs == [1] and [r.name for r in again.outputs] == ["OUTPUT0", "OUTPUT1"]
    (one,), executed = w.run(marked(frontend, 3, ints(), outputs=["OUTPUT1"]), batch_id=3)
    assert runs == [1, 1] and [r.name for r in one.outputs] == ["OUTPUT1"]   # a subset: its own
    (hit,), executed = w.run(marked(frontend, 4, ints(), outputs=["OUTPUT1", "OUTPUT0"]),
                             batch_id=4)
    assert [r.name for r in hit.outputs] == ["OUTPUT1", "OUTPUT0"] and executed.hits


def test_the_key_is_the_frontends(frontend, cached):
    # An entry put under the key a frontend computes for the same request answers a step.
    w, store, runs = cached
    a = ints(7)
    key = cacheentry.key("m", 1, [("INPUT0", "INT32", [1, 16], a.tobytes()),
                                  ("INPUT1", "INT32", [1, 16], a.tobytes())],
                         [], {"OUTPUT0", "OUTPUT1"}, None)
    fake = np.full((1, 16), 9, np.int32).tobytes()
    store.put(key, cacheentry.encode("1", {}, [("OUTPUT0", "INT32", [1, 16], fake)]))
    (resp,), executed = w.run(marked(frontend, 1, a))
    assert runs == [] and executed.hits
    assert [frontend.read(r).tobytes() for r in resp.outputs] == [fake]


def test_uncached_models_have_no_lookup(repo, frontend):
    cfg = {"name": "m", "response_cache": {"enable": False}, "output": [{"name": "O"}]}
    assert CacheLookup.open("/seg", spec_from_dict(cfg), None, None, "@w") is None
    cfg["response_cache"]["enable"] = True
    assert CacheLookup.open("", spec_from_dict(cfg), None, None, "@w") is None   # no --cache-config
    assert CacheLookup.open("/seg", spec_from_dict(cfg), None, None, "@w") is not None
