"""Ragged batching in the worker: batch input values, flat ragged inputs, batch outputs
scattered by the source input's shape (real shm, a real ONNX Runtime model)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tritond.errors import Code, TritonError
from tritond.spec import BatchInput, TensorSpec
from tritond.workers.batchio import BatchIO, Unfusable, scatter_shape, value
from tritond.workers.onnxruntime import OnnxRuntimeBackend

from . import models
from .helpers import context, work
from .test_workers_executor import make_worker  # noqa: F401 - fixture

# the proto's examples: one batch-2 input of shape [2, 3, 1]... as Triton's backend computes
SHAPES = [(1, 2), (1, 4), (1, 1), (1, 3)]     # qa/L0_batch_input's [2], [4], [1], [3]


@pytest.mark.parametrize("kind, datatype, expected", [
    ("BATCH_ELEMENT_COUNT", "INT32", [2, 4, 1, 3]),
    ("BATCH_ACCUMULATED_ELEMENT_COUNT", "FP32", [2, 6, 7, 10]),
    ("BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO", "FP32", [0, 2, 6, 7, 10]),
    ("BATCH_ITEM_SHAPE", "INT32", [[2], [4], [1], [3]]),
    ("BATCH_ITEM_SHAPE_FLATTEN", "INT32", [2, 4, 1, 3]),
])
def test_batch_input_values(kind, datatype, expected):
    got = value(BatchInput(kind, ("T",), datatype, "IN"), SHAPES)
    assert got.dtype == (np.int32 if datatype == "INT32" else np.float32)
    assert got.tolist() == expected


def test_max_element_count_is_a_shape():
    got = value(BatchInput("BATCH_MAX_ELEMENT_COUNT_AS_SHAPE", ("T",), "FP32", "IN"), SHAPES)
    assert got.shape == (4,)


def test_item_shape_repeats_per_batch_item():
    # model_config.proto: a batch-2 [3, 1] and a batch-1 [2, 2] -> [[3, 1], [3, 1], [2, 2]]
    shapes = [(2, 3, 1), (1, 2, 2)]
    item = value(BatchInput("BATCH_ITEM_SHAPE", ("T",), "INT32", "IN"), shapes)
    assert item.tolist() == [[3, 1], [3, 1], [2, 2]]
    flat = value(BatchInput("BATCH_ITEM_SHAPE_FLATTEN", ("T",), "FP32", "IN"), shapes)
    assert flat.tolist() == [3, 1, 3, 1, 2, 2]
    # element counts are per request, not per item
    count = value(BatchInput("BATCH_ELEMENT_COUNT", ("T",), "INT32", "IN"), shapes)
    assert count.tolist() == [6, 4]


def test_scatter_shape_takes_dynamic_dims_from_the_source():
    out = TensorSpec("OUT", "FP32", (-1,))
    assert scatter_shape(out, (1, 5), batched=True) == (1, 5)
    assert scatter_shape(TensorSpec("OUT", "FP32", (2, -1)), (3, 7, 4), True) == (3, 2, 4)
    with pytest.raises(TritonError) as err:
        scatter_shape(TensorSpec("OUT", "FP32", (-1, -1)), (1, 5), True)
    assert err.value.code == Code.INVALID_ARG


def _batchio(flat=frozenset()):
    from tests.specs import spec
    return BatchIO(spec('''name: "m" backend: "onnxruntime" max_batch_size: 8
        input [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true },
                { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] optional: true } ]
        output [ { name: "O" data_type: TYPE_FP32 dims: [ -1 ] } ]
        batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "N" data_type: TYPE_INT32
                        source_input: "Y" } ]'''), flat)


def test_gather_joins_flat_and_batched_inputs():
    io = _batchio(frozenset({"X"}))
    a = work({"X": np.ones((1, 2), np.float32), "Y": np.zeros((1, 3), np.float32)}, ["O"])
    b = work({"X": np.ones((2, 2), np.float32), "Y": np.ones((2, 3), np.float32)}, ["O"], 2)
    joined = io.gather([a, b])
    assert joined.inputs["X"].shape == (6,)          # flat: 2 + 4 elements
    assert joined.inputs["Y"].shape == (3, 3)        # joined along the batch dim
    assert joined.inputs["N"].tolist() == [3, 6]     # element count per request


def test_gather_refuses_what_cannot_be_joined():
    io = _batchio()
    a = work({"X": np.ones((1, 2), np.float32), "Y": np.ones((1, 3), np.float32)}, ["O"])
    no_y = work({"X": np.ones((1, 2), np.float32)}, ["O"], 2)
    longer = work({"X": np.ones((1, 5), np.float32), "Y": np.ones((1, 3), np.float32)}, ["O"], 3)
    with pytest.raises(Unfusable):
        io.gather([a, no_y])          # different inputs: run one at a time
    with pytest.raises(Unfusable):
        io.gather([a, longer])        # X is not flat here: shapes differ
    with pytest.raises(TritonError) as err:
        io.gather([no_y])             # the batch input's source is missing
    assert err.value.code == Code.INVALID_ARG and "'Y'" in err.value.message


def _ragged_worker(repo, make_worker):
    config = models.ragged_batch_io(repo)
    return make_worker(OnnxRuntimeBackend(context(repo / "ragged")), config)


def _outputs(frontend, response):
    return {o.name: frontend.read(o) for o in response.outputs}


def test_one_batch_of_ragged_requests(repo, frontend, make_worker):
    w = _ragged_worker(repo, make_worker)
    xs = [np.arange(n, dtype=np.float32).reshape(1, n) + 10 * n for n in (2, 4, 1, 3)]
    reqs = [frontend.request(i + 1, {"INPUT": x}, batch=1) for i, x in enumerate(xs)]
    responses, executed = w.run(*reqs)
    assert executed.stats.batch_size == 4
    for x, resp in zip(xs, responses):
        assert resp.error is None, resp.error
        out = _outputs(frontend, resp)
        np.testing.assert_array_equal(out["OUT"], 2 * x)       # scattered: its own shape
        assert [o.shape for o in resp.outputs if o.name == "OUT"] == [list(x.shape)]
        assert out["COUNT_OUT"].tolist() == [[2, 4, 1, 3]]
        assert out["ACC_OUT"].tolist() == [[2, 6, 7, 10]]
        assert out["ACC0_OUT"].tolist() == [[0, 2, 6, 7, 10]]
        assert out["MAX_OUT"].tolist() == [[4]]
        assert out["ITEM_OUT"].tolist() == [[2, 4, 1, 3]]
        assert out["FLAT_OUT"].tolist() == [[2, 4, 1, 3]]


def test_single_request_gets_its_batch_inputs(repo, frontend, make_worker):
    w = _ragged_worker(repo, make_worker)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)      # a batch-2 request
    (resp,), _ = w.run(frontend.request(1, {"INPUT": x}, batch=2))
    assert resp.error is None, resp.error
    out = _outputs(frontend, resp)
    np.testing.assert_array_equal(out["OUT"], 2 * x)
    assert out["COUNT_OUT"].tolist() == [[6], [6]]
    assert out["ACC0_OUT"].tolist() == [[0, 6], [0, 6]]
    assert out["ITEM_OUT"].tolist() == [[3, 3], [3, 3]]
    assert out["MAX_OUT"].tolist() == [[6], [6]]


def test_scattered_output_lies_in_one_slot(repo, frontend, make_worker):
    w = _ragged_worker(repo, make_worker)
    a, b = np.ones((1, 2), np.float32), np.ones((1, 5), np.float32)
    r1, r2 = w.run(frontend.request(1, {"INPUT": a}, outputs=["OUT"], batch=1),
                   frontend.request(2, {"INPUT": b}, outputs=["OUT"], batch=1))[0]
    (o1,), (o2,) = r1.outputs, r2.outputs
    assert (o1.shape, o2.shape) == ([1, 2], [1, 5])
    assert o1.region == o2.region and o2.offset == o1.offset + o1.nbytes   # slices of one slot


def test_pytorch_model_gets_flat_ragged_input_and_batch_input(repo, frontend, make_worker):
    pytest.importorskip("torch")
    from tests import torch_models
    from tritond.repository.modelconfig import parse_pbtxt, to_json
    from tritond.workers.pytorch import PyTorchBackend

    model = torch_models.ragged(repo)
    config = json.loads(to_json(parse_pbtxt((model / "config.pbtxt").read_text(), "c")))
    w = make_worker(PyTorchBackend(context(model)), config)
    xs = [np.full((1, n), n, np.float32) for n in (3, 1, 2)]
    responses, _ = w.run(*[frontend.request(i + 1, {"INPUT__0": x}, batch=1)
                           for i, x in enumerate(xs)])
    for x, resp in zip(xs, responses):
        assert resp.error is None, resp.error
        out = _outputs(frontend, resp)
        np.testing.assert_array_equal(out["OUTPUT__0"], 2 * x)
        assert out["OUTPUT__1"].tolist() == [[3, 4, 6]]


def test_requests_that_cannot_be_joined_run_one_at_a_time(repo, frontend, make_worker):
    w = _ragged_worker(repo, make_worker)
    x = np.ones((1, 3), np.float32)
    ok, bad = w.run(frontend.request(1, {"INPUT": x}, batch=1),
                    frontend.request(2, {}, batch=1))[0]       # no source input at all
    assert ok.error is None, ok.error
    assert _outputs(frontend, ok)["COUNT_OUT"].tolist() == [[3]]    # a batch of its own
    assert bad.error is not None and bad.error.code == int(Code.INVALID_ARG)
    assert "needs input 'INPUT'" in bad.error.message


def test_unbatched_model_gets_its_ragged_input_flat(repo, frontend, make_worker):
    """Triton's onnxruntime backend feeds a ragged input flat whatever max_batch_size
    (and does not compare its config dims with the model's [-1])."""
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "flat0",
                              [models._vi("X", TensorProto.FLOAT, ["n"])],
                              [models._vi("Y", TensorProto.FLOAT, ["n"])])
    models._save(graph, repo / "flat0" / "1" / "model.onnx")
    config = {"name": "flat0", "backend": "onnxruntime", "max_batch_size": 0,
              "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [-1, -1],
                         "allow_ragged_batch": True}],
              "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [-1]}]}
    w = make_worker(OnnxRuntimeBackend(context(repo / "flat0")), config)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (resp,), _ = w.run(frontend.request(1, {"X": x}))
    assert resp.error is None, resp.error
    assert resp.outputs[0].shape == [6]
    np.testing.assert_array_equal(_outputs(frontend, resp)["Y"], x.reshape(-1))
