"""Executor + OutputWriter over real shared memory and real backends (no processes)."""
from __future__ import annotations

import numpy as np
import pytest

from tritond import messages
from tritond.errors import Code
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache
from tritond.workers.executor import Executor
from tritond.workers.onnxruntime import OnnxRuntimeBackend
from tritond.workers.outputs import OutputWriter
from tritond.workers.python.backend import PythonBackend
from tritond.workers.shapes import ModelIO

from tests.specs import spec_from_dict

from . import models
from .helpers import context


class Worker:
    """The worker's data-path objects around one loaded backend."""

    def __init__(self, server_id: str, backend, config: dict) -> None:
        spec = spec_from_dict(config)
        backend.load(spec)
        self.pool = ArenaPool(server_id, "w1", 1 << 20)
        self.cache = SegmentCache()
        self.writer = OutputWriter(self.pool, self.cache)
        self.executor = Executor(backend, ModelIO(spec), self.cache, self.writer, "@w1")

    def run(self, *requests, batch_id: int = 1):
        responses, executed = self.executor.run(messages.Execute(batch_id, list(requests)))
        return [r for _, r in responses], executed

    def release(self, response) -> None:
        for ref in response.outputs:
            self.writer.release(ref.region, ref.offset)

    def close(self) -> None:
        self.cache.close()
        self.pool.close()


@pytest.fixture
def make_worker(frontend):
    made = []

    def make(backend, config=None):
        cfg = backend.auto_complete(config or {"name": "m"})
        w = Worker(frontend.server_id, backend, cfg)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def ints(rows, start=0):
    return np.arange(start, start + rows * 16, dtype=np.int32).reshape(rows, 16)


def test_single_request_outputs_and_release(repo, frontend, make_worker):
    w = make_worker(OnnxRuntimeBackend(context(models.add_sub(repo))))
    a, b = ints(2), ints(2, 100)
    req = frontend.request(7, {"INPUT0": a, "INPUT1": b}, batch=2)
    (resp,), executed = w.run(req)
    assert resp.error is None and resp.instance == "@w1" and resp.model_version == 1
    out = {ref.name: frontend.read(ref) for ref in resp.outputs}
    np.testing.assert_array_equal(out["OUTPUT0"], a + b)
    np.testing.assert_array_equal(out["OUTPUT1"], a - b)
    assert executed.batch_id == 1 and executed.failed == [] and executed.stats.batch_size == 2
    assert executed.stats.compute_infer_ns > 0
    # both outputs share one arena slot, each at its own 64-byte-aligned offset
    assert w.writer.live_slots == 1 and w.pool.stats()["live"] == 1
    first, second = resp.outputs
    assert first.region == second.region and second.offset - first.offset == 128
    assert w.writer.release(first.region, first.offset)
    assert w.writer.live_slots == 1          # the slot lives while a slice is unreleased
    assert w.writer.release(second.region, second.offset)
    assert w.writer.live_slots == 0 and w.pool.stats()["live"] == 0


def test_fused_batch_writes_each_output_once_and_slices_it(repo, frontend, make_worker):
    w = make_worker(OnnxRuntimeBackend(context(models.add_sub(repo))))
    parts = [ints(1), ints(2, 50), ints(1, 500)]
    reqs = [frontend.request(i, {"INPUT0": p, "INPUT1": p}, outputs=outs, batch=len(p))
            for i, (p, outs) in enumerate(zip(parts, [["OUTPUT0"], [], ["OUTPUT1"]]))]
    responses, executed = w.run(*reqs)
    assert executed.stats.batch_size == 4
    assert [[r.name for r in resp.outputs] for resp in responses] == \
        [["OUTPUT0"], ["OUTPUT0", "OUTPUT1"], ["OUTPUT1"]]
    for p, resp in zip(parts, responses):
        for ref in resp.outputs:
            assert ref.shape == list(p.shape)
            expected = p + p if ref.name == "OUTPUT0" else p - p
            np.testing.assert_array_equal(frontend.read(ref), expected)
    # One slot per batch output, every slice inside it.
    assert w.writer.live_slots == 2 and w.pool.stats()["live"] == 2
    for resp in responses[:-1]:
        w.release(resp)
    assert w.writer.live_slots == 1          # OUTPUT1's slot still has a live slice
    w.release(responses[-1])
    assert w.writer.live_slots == 0 and w.pool.stats()["live"] == 0


def _address(arr) -> int:
    return arr.__array_interface__["data"][0]


def test_batch_of_adjacent_inputs_is_one_view_not_a_copy(repo, frontend, make_worker):
    """Requests whose inputs lie back to back in one segment are fused without a copy."""
    w = make_worker(OnnxRuntimeBackend(context(models.add_sub(repo))))
    parts = [ints(1), ints(2, 50), ints(1, 500)]       # 64-byte rows: arena slots abut
    # Every request's INPUT0 first, then every INPUT1: each input is one span.
    refs = {n: [frontend.stage(n, p + k) for p in parts]
            for k, n in enumerate(("INPUT0", "INPUT1"))}
    assert [r.offset for r in refs["INPUT0"]] == [0, 64, 192]
    reqs = [messages.Request(rid=i, frontend="fe", model="m", version=1, batch=len(p),
                             inputs=[refs["INPUT0"][i], refs["INPUT1"][i]])
            for i, p in enumerate(parts)]
    errors: dict = {}
    items = list(w.executor._map_inputs(reqs, errors).values())
    fused = w.executor._fuse(items)
    for n in ("INPUT0", "INPUT1"):
        assert fused.inputs[n].shape == (4, 16)
        assert _address(fused.inputs[n]) == _address(items[0].inputs[n])   # the arena itself
        np.testing.assert_array_equal(fused.inputs[n], np.concatenate([i.inputs[n] for i in items]))
    responses, executed = w.run(*reqs)
    assert executed.stats.batch_size == 4 and not errors
    for p, resp in zip(parts, responses):
        out = {ref.name: frontend.read(ref) for ref in resp.outputs}
        np.testing.assert_array_equal(out["OUTPUT0"], p + p + 1)
        np.testing.assert_array_equal(out["OUTPUT1"], -np.ones_like(p))


def test_batch_of_scattered_inputs_is_copied(repo, frontend, make_worker):
    """Not adjacent (interleaved inputs, or out of request order): one concatenated copy."""
    w = make_worker(OnnxRuntimeBackend(context(models.add_sub(repo))))
    a, b = ints(1), ints(1, 16)
    reqs = [frontend.request(i, {"INPUT0": x, "INPUT1": x}, batch=1) for i, x in enumerate((a, b))]
    items = list(w.executor._map_inputs(reqs, {}).values())
    fused = w.executor._fuse(items)
    assert not np.shares_memory(fused.inputs["INPUT0"], items[0].inputs["INPUT0"])
    np.testing.assert_array_equal(fused.inputs["INPUT0"], np.concatenate([a, b]))
    first, second = frontend.stage("INPUT0", a), frontend.stage("INPUT0", b)
    swapped = [messages.Request(rid=i, frontend="fe", model="m", version=1, batch=1,
                                inputs=[ref, frontend.stage("INPUT1", a)])
               for i, ref in enumerate((second, first))]     # adjacent, but b before a
    items = list(w.executor._map_inputs(swapped, {}).values())
    fused = w.executor._fuse(items)
    assert not np.shares_memory(fused.inputs["INPUT0"], items[0].inputs["INPUT0"])
    np.testing.assert_array_equal(fused.inputs["INPUT0"], np.concatenate([b, a]))


def test_ragged_requests_run_one_by_one(repo, frontend, make_worker):
    w = make_worker(OnnxRuntimeBackend(context(models.identity_fp32(repo))))
    x = np.ones((1, 3), np.float32)
    y = np.arange(10, dtype=np.float32).reshape(2, 5)
    r1, r2 = w.run(frontend.request(1, {"INPUT0": x}, batch=1),
                   frontend.request(2, {"INPUT0": y}, batch=2))[0]
    np.testing.assert_array_equal(frontend.read(r1.outputs[0]), x)
    np.testing.assert_array_equal(frontend.read(r2.outputs[0]), y)


def test_strings_with_reshape_report_config_dims(repo, frontend, make_worker):
    w = make_worker(OnnxRuntimeBackend(context(models.string_identity(repo))))
    a = np.array([[b"x"], [b"yy"]], dtype=object)
    b = np.array([["zzz".encode()]], dtype=object)
    r1, r2 = w.run(frontend.request(1, {"INPUT0": a}, batch=2),
                   frontend.request(2, {"INPUT0": b}, batch=1))[0]
    assert r1.outputs[0].dtype == "BYTES" and r1.outputs[0].shape == [2, 1]
    assert frontend.read(r1.outputs[0]).tolist() == [[b"x"], [b"yy"]]
    assert frontend.read(r2.outputs[0]).tolist() == [[b"zzz"]]
    assert r1.outputs[0].region == r2.outputs[0].region       # one slot, two slices


def test_output_into_client_region(repo, frontend, make_worker):
    w = make_worker(OnnxRuntimeBackend(context(models.add_sub(repo))))
    client = frontend.pool.alloc(64 * 4)       # stands in for a client-registered region
    dest = messages.TensorRef("OUTPUT0", "INT32", [1, 16], client.region, client.offset,
                              64 * 4, kind=messages.CLIENT_SHM)
    a = ints(1)
    req = frontend.request(1, {"INPUT0": a, "INPUT1": a}, outputs=["OUTPUT0"], batch=1,
                           dests={"OUTPUT0": dest})
    (resp,), _ = w.run(req)
    (ref,) = resp.outputs
    assert (ref.kind, ref.region, ref.offset, ref.nbytes) == \
        (messages.CLIENT_SHM, client.region, client.offset, 64)
    np.testing.assert_array_equal(np.frombuffer(client.view[:64], np.int32), (a + a).ravel())
    assert w.writer.live_slots == 0


def test_client_region_too_small(repo, frontend, make_worker):
    w = make_worker(OnnxRuntimeBackend(context(models.add_sub(repo))))
    client = frontend.pool.alloc(16)
    dest = messages.TensorRef("OUTPUT1", "INT32", [1, 16], client.region, client.offset, 16,
                              kind=messages.CLIENT_SHM)
    a = ints(1)
    (resp,), executed = w.run(frontend.request(1, {"INPUT0": a, "INPUT1": a}, batch=1,
                                               outputs=["OUTPUT0", "OUTPUT1"],
                                               dests={"OUTPUT1": dest}))
    assert resp.error.code == Code.INVALID_ARG   # the client's region: a client error
    assert resp.error.message == (
        "shared memory size specified with the request for output 'OUTPUT1' (16 bytes) "
        "should be at least 64 bytes to hold the results")
    assert executed.failed == [1]
    assert w.writer.live_slots == 0            # OUTPUT0's slot was given back


RAISES = '''
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "X").as_numpy()
        if x[0] < 0:
            raise ValueError("negative input")
        return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy() + 1)])
                for r in requests]
'''


def test_model_exception_fails_only_that_batch(repo, frontend, make_worker):
    cfg = {"name": "raises", "backend": "python",
           "input": [{"name": "X", "data_type": "TYPE_INT64", "dims": [1]}],
           "output": [{"name": "Y", "data_type": "TYPE_INT64", "dims": [1]}]}
    w = make_worker(PythonBackend(context(models.python_model(repo, "raises", RAISES))), cfg)
    neg, pos = np.array([-1], np.int64), np.array([1], np.int64)
    responses, executed = w.run(frontend.request(1, {"X": neg}), frontend.request(2, {"X": pos}))
    assert all(r.error.code == Code.INTERNAL and "ValueError: negative input" in r.error.message
               for r in responses)
    assert executed.failed == [1, 2]
    (resp,), executed = w.run(frontend.request(3, {"X": pos}), batch_id=2)
    assert frontend.read(resp.outputs[0]).tolist() == [2] and executed.failed == []


def test_unmappable_input_fails_that_request_only(repo, frontend, make_worker):
    w = make_worker(OnnxRuntimeBackend(context(models.identity_fp32(repo))))
    good = frontend.request(1, {"INPUT0": np.ones((1, 2), np.float32)}, batch=1)
    bad = frontend.request(2, {"INPUT0": np.ones((1, 2), np.float32)}, batch=1)
    bad.inputs[0].region = "/tritond-nosuch-1-x"
    r_good, r_bad = w.run(good, bad)[0]
    assert r_good.error is None
    # a server segment that is gone: retryable, and its name is not shown to the client
    assert (r_bad.error.code, r_bad.error.message) == (
        Code.UNAVAILABLE, "a server buffer is no longer available; retry")
