"""A config that disagrees with its ONNX model fails to load, naming the tensor and both
values (Triton's onnxruntime backend messages), unit by unit and through a real tritond."""
from __future__ import annotations

import time

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server import Server
from tritond.errors import Code, TritonError
from tritond.workers import onnxio
from tritond.workers.onnxio import Tensor

from . import models

MODEL_IN = [Tensor("INPUT0", "tensor(int32)", [-1, 16]), Tensor("INPUT1", "tensor(int32)", [-1, 16])]
MODEL_OUT = [Tensor("OUTPUT0", "tensor(int32)", [-1, 16]), Tensor("OUTPUT1", "tensor(int32)", [-1, 16])]


def _io(name, dtype="TYPE_INT32", dims=(16,)):
    return {"name": name, "data_type": dtype, "dims": list(dims)}


def _config(mbs=8, inputs=None, outputs=None):
    return {"max_batch_size": mbs,
            "input": inputs if inputs is not None else [_io("INPUT0"), _io("INPUT1")],
            "output": outputs if outputs is not None else [_io("OUTPUT0"), _io("OUTPUT1")]}


# case -> (config, message the load error must contain)
CASES = {
    "bad_name": (_config(inputs=[_io("INPUT0"), _io("INPUTX")]),
                 "unexpected inference input 'INPUTX', allowed inputs are: INPUT0, INPUT1"),
    "bad_dtype": (_config(inputs=[_io("INPUT0", "TYPE_FP32"), _io("INPUT1")]),
                  "configuration expects datatype TYPE_FP32 for input 'INPUT0', "
                  "model provides TYPE_INT32"),
    "bad_out_dtype": (_config(outputs=[_io("OUTPUT0"), _io("OUTPUT1", "TYPE_INT64")]),
                      "configuration expects datatype TYPE_INT64 for output 'OUTPUT1', "
                      "model provides TYPE_INT32"),
    "bad_dims": (_config(inputs=[_io("INPUT0", dims=(8,)), _io("INPUT1")]),
                 "tensor 'INPUT0': the model expects 2 dimensions (shape [-1,16]) but the model "
                 "configuration specifies 2 dimensions (an initial batch dimension because "
                 "max_batch_size > 0 followed by the explicit tensor shape, making complete "
                 "shape [-1,8])"),
    "no_batch_dim": (_config(mbs=0),
                     "tensor 'INPUT0': the model expects 2 dimensions (shape [-1,16]) but the "
                     "model configuration specifies 1 dimensions (shape [16])"),
    "missing_input": (_config(inputs=[_io("INPUT0")]),
                      "configuration expects 1 inputs, model provides 2"),
    "bad_out_name": (_config(outputs=[_io("OUTPUT0"), _io("OUT9")]),
                     "unexpected inference output 'OUT9', allowed outputs are: OUTPUT0, OUTPUT1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mismatch_is_invalid_arg_naming_both_values(case):
    config, expected = CASES[case]
    with pytest.raises(TritonError) as err:
        onnxio.check("m", config, MODEL_IN, MODEL_OUT)
    assert err.value.code == Code.INVALID_ARG
    assert expected in err.value.message


def test_matching_configs_pass():
    onnxio.check("m", _config(), MODEL_IN, MODEL_OUT)
    flat = _config(mbs=0, inputs=[_io("INPUT0", dims=(-1, 16)), _io("INPUT1", dims=(4, 16))],
                   outputs=[_io("OUTPUT0", dims=(-1, 16)), _io("OUTPUT1", dims=(-1, 16))])
    onnxio.check("m", flat, MODEL_IN, MODEL_OUT)   # a fixed config dim may narrow a dynamic one


def test_fixed_first_dim_cannot_batch():
    fixed = [Tensor("INPUT0", "tensor(float)", [2, 3])]
    with pytest.raises(TritonError, match="the first dimension must be -1; but shape expected "
                                          r"by the model is \[2,3\]"):
        onnxio.check("m", {"max_batch_size": 4, "input": [_io("INPUT0", "TYPE_FP32", (3,))]},
                     fixed, [])


def test_scalar_model_tensor_accepts_only_ones():
    scalar = [Tensor("X", "tensor(float)", [])]
    onnxio.check("m", {"input": [_io("X", "TYPE_FP32", (1,))]}, scalar, [])
    with pytest.raises(TritonError, match=r"scalar tensor 'X', should only provide 1 .* "
                                          r"Model configuration provided: \[2\]\."):
        onnxio.check("m", {"input": [_io("X", "TYPE_FP32", (2,))]}, scalar, [])


def _ragged(mbs=8, dims=(-1,)):
    return {"max_batch_size": mbs,
            "input": [dict(_io("X", "TYPE_FP32", dims), allow_ragged_batch=True)]}


@pytest.mark.parametrize("mbs", [8, 0])
def test_ragged_input_needs_model_shape_minus_one(mbs):
    """Triton's ValidateInputs: a ragged input is fed flat, so the model must take
    [-1] (whatever max_batch_size); the config's dims are not compared."""
    onnxio.check("m", _ragged(mbs, dims=(-1, -1)), [Tensor("X", "tensor(float)", [-1])], [])
    for shape in ([-1, -1], [4], [-1, 3]):
        with pytest.raises(TritonError) as err:
            onnxio.check("m", _ragged(mbs), [Tensor("X", "tensor(float)", shape)], [])
        assert err.value.code == Code.INVALID_ARG
        assert err.value.message == (
            "unable to load model 'm', configuration expects model provides input with "
            "shape [-1]  for ragged input 'X', model provides "
            f"[{','.join(map(str, shape))}]")


def _pbtxt(name: str, config: dict) -> str:
    def tensors(items):
        return ", ".join(f'{{ name: "{t["name"]}" data_type: {t["data_type"]} '
                         f'dims: {t["dims"]} }}' for t in items)
    return (f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: {config["max_batch_size"]}\n'
            f'input [ {tensors(config["input"])} ]\noutput [ {tensors(config["output"])} ]\n'
            'instance_group [ { kind: KIND_CPU count: 1 } ]\n')


def test_mismatched_models_are_unavailable_through_tritond(tmp_path):
    for case, (config, _) in CASES.items():
        models.add_sub(tmp_path, case)
        (tmp_path / case / "config.pbtxt").write_text(_pbtxt(case, config))
    models.add_sub(tmp_path, "good")
    (tmp_path / "good" / "config.pbtxt").write_text(_pbtxt("good", _config()))
    srv = Server([tmp_path], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(srv.url)
        deadline = time.monotonic() + 90
        while not client.is_model_ready("good") or any(
                r.get("state") not in ("READY", "UNAVAILABLE")
                for r in client.get_model_repository_index()):
            assert time.monotonic() < deadline, srv.output()
            time.sleep(0.2)
        rows = {r["name"]: r for r in client.get_model_repository_index()}
        for case, (_, expected) in CASES.items():
            assert rows[case]["state"] == "UNAVAILABLE", rows[case]
            assert expected in rows[case]["reason"], rows[case]
        assert rows["good"]["state"] == "READY"
    finally:
        srv.stop()


# Triton's onnxruntime backend counts the config's inputs less its optional ones (it
# takes those for overridable initializers, which ORT does not list among the inputs)
OPT_IN = [Tensor("X", "tensor(float)", [-1])]
OPT_INIT = [Tensor("Y", "tensor(float)", [-1])]


def _optional(mbs, ragged=False):
    y = dict(_io("Y", "TYPE_FP32", (-1,)), optional=True)
    if ragged:
        y["allow_ragged_batch"] = True
    return {"max_batch_size": mbs, "input": [_io("X", "TYPE_FP32", (-1,)), y],
            "output": []}


def test_optional_input_refused_for_a_batching_model():
    """Triton's ValidateInputs: any optional input with max_batch_size > 0."""
    with pytest.raises(TritonError) as err:
        onnxio.check("m", _optional(8), [Tensor("X", "tensor(float)", [-1, -1])], [],
                     OPT_INIT)
    assert err.value.code == Code.INVALID_ARG
    assert err.value.message == ("unable to load model 'm', optional input 'Y' is not "
                                 "supported for models that support batching")


def test_optional_input_is_an_overridable_initializer():
    onnxio.check("m", _optional(0), OPT_IN, [], OPT_INIT)
    # an optional plain graph input: the count disagrees, as in Triton
    with pytest.raises(TritonError, match="configuration expects 1 inputs, model provides 2"):
        onnxio.check("m", _optional(0), OPT_IN + OPT_INIT, [])
    with pytest.raises(TritonError, match="for ragged input 'Y', which is not supported for "
                                          "optional input"):
        onnxio.check("m", _optional(0, ragged=True), OPT_IN, [], OPT_INIT)


def _with_initializer(repo, name: str, mbs: int):
    """Y = X + B, B an overridable initializer (a graph input with a default: [10])."""
    from onnx import TensorProto, helper
    dim = ["batch", "n"] if mbs else ["n"]
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "B"], ["Y"])], name,
        [models._vi("X", TensorProto.FLOAT, dim), models._vi("B", TensorProto.FLOAT, [1])],
        [models._vi("Y", TensorProto.FLOAT, dim)],
        initializer=[helper.make_tensor("B", TensorProto.FLOAT, [1], [10.0])])
    models._save(graph, repo / name / "1" / "model.onnx")
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: {mbs}\n'
        'input [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] },\n'
        '        { name: "B" data_type: TYPE_FP32 dims: [ 1 ] optional: true } ]\n'
        'output [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
        'instance_group [ { kind: KIND_CPU count: 1 } ]\n')


def test_optional_input_with_batching_fails_to_load_through_tritond(tmp_path):
    _with_initializer(tmp_path, "opt_batched", 8)
    _with_initializer(tmp_path, "opt_plain", 0)
    srv = Server([tmp_path], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(srv.url)
        deadline = time.monotonic() + 60
        while any(r.get("state") not in ("READY", "UNAVAILABLE")
                  for r in client.get_model_repository_index()):
            assert time.monotonic() < deadline, srv.output()
            time.sleep(0.2)
        rows = {r["name"]: r for r in client.get_model_repository_index()}
        assert rows["opt_batched"]["state"] == "UNAVAILABLE", rows
        assert rows["opt_batched"]["reason"].endswith(
            "unable to load model 'opt_batched', optional input 'B' is not supported for "
            "models that support batching"), rows
        assert rows["opt_plain"]["state"] == "READY", rows
        x = httpclient.InferInput("X", [2], "FP32")
        x.set_data_from_numpy(np.array([1, 2], np.float32))
        res = client.infer("opt_plain", [x])            # the initializer's default
        assert res.as_numpy("Y").tolist() == [11, 12]
        b = httpclient.InferInput("B", [1], "FP32")
        b.set_data_from_numpy(np.array([100], np.float32))
        assert client.infer("opt_plain", [x, b]).as_numpy("Y").tolist() == [101, 102]
    finally:
        srv.stop()
