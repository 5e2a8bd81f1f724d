"""Tiny model repositories for worker tests: ONNX graphs built with onnx.helper, Python models."""
from __future__ import annotations

import json
import pathlib
import textwrap

import onnx
from onnx import TensorProto, helper

from tritond.repository.modelconfig import from_dict, to_pbtxt

# ORT 1.31 reads IR version <= 13 (onnx 1.23 writes 14 by default).
IR_VERSION = 8


def _save(graph, path: pathlib.Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              ir_version=IR_VERSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def add_sub(repo: pathlib.Path, name: str = "add_sub") -> pathlib.Path:
    """INPUT0, INPUT1 INT32 [-1,16] -> OUTPUT0 = sum, OUTPUT1 = difference."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        name,
        [_vi("INPUT0", TensorProto.INT32, ["batch", 16]),
         _vi("INPUT1", TensorProto.INT32, ["batch", 16])],
        [_vi("OUTPUT0", TensorProto.INT32, ["batch", 16]),
         _vi("OUTPUT1", TensorProto.INT32, ["batch", 16])])
    _save(graph, repo / name / "1" / "model.onnx")
    return repo / name


def identity_fp32(repo: pathlib.Path, name: str = "identity_fp32") -> pathlib.Path:
    """INPUT0 FP32 [-1,-1] -> OUTPUT0 (Identity)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], name,
        [_vi("INPUT0", TensorProto.FLOAT, ["batch", "n"])],
        [_vi("OUTPUT0", TensorProto.FLOAT, ["batch", "n"])])
    _save(graph, repo / name / "1" / "model.onnx")
    return repo / name


def string_identity(repo: pathlib.Path, name: str = "string_identity") -> pathlib.Path:
    """INPUT0 STRING [-1] -> OUTPUT0: batchable with empty per-item dims (reshape {shape: []})."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], name,
        [_vi("INPUT0", TensorProto.STRING, ["batch"])],
        [_vi("OUTPUT0", TensorProto.STRING, ["batch"])])
    _save(graph, repo / name / "1" / "model.onnx")
    return repo / name


def fixed_shape(repo: pathlib.Path, name: str = "fixed") -> pathlib.Path:
    """INPUT0 FP32 [2,3] -> OUTPUT0: not batchable (static first dim)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], name,
        [_vi("INPUT0", TensorProto.FLOAT, [2, 3])], [_vi("OUTPUT0", TensorProto.FLOAT, [2, 3])])
    _save(graph, repo / name / "1" / "model.onnx")
    return repo / name


def python_model(repo: pathlib.Path, name: str, source: str, config: dict | None = None,
                 version: int = 1) -> pathlib.Path:
    """Write ``<repo>/<name>/<version>/model.py`` (and config.json for the test's use)."""
    model_dir = repo / name
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    (model_dir / str(version) / "model.py").write_text(textwrap.dedent(source))
    if config is not None:
        (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir


# Triton's add_sub example (python_backend/examples/add_sub/model.py), trimmed of comments.
TRITON_ADD_SUB = '''
import json

import numpy as np

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.model_config = model_config = json.loads(args["model_config"])
        output0_config = pb_utils.get_output_config_by_name(model_config, "OUTPUT0")
        output1_config = pb_utils.get_output_config_by_name(model_config, "OUTPUT1")
        self.output0_dtype = pb_utils.triton_string_to_numpy(output0_config["data_type"])
        self.output1_dtype = pb_utils.triton_string_to_numpy(output1_config["data_type"])
        self.args = args

    def execute(self, requests):
        output0_dtype = self.output0_dtype
        output1_dtype = self.output1_dtype
        responses = []
        for request in requests:
            in_0 = pb_utils.get_input_tensor_by_name(request, "INPUT0")
            in_1 = pb_utils.get_input_tensor_by_name(request, "INPUT1")
            out_0, out_1 = (
                in_0.as_numpy() + in_1.as_numpy(),
                in_0.as_numpy() - in_1.as_numpy(),
            )
            out_tensor_0 = pb_utils.Tensor("OUTPUT0", out_0.astype(output0_dtype))
            out_tensor_1 = pb_utils.Tensor("OUTPUT1", out_1.astype(output1_dtype))
            inference_response = pb_utils.InferenceResponse(
                output_tensors=[out_tensor_0, out_tensor_1]
            )
            responses.append(inference_response)
        return responses

    def finalize(self):
        print("Cleaning up...")
'''

ADD_SUB_CONFIG = {
    "name": "add_sub_py", "backend": "python", "max_batch_size": 0,
    "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]},
              {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": [4]}],
    "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [4]},
               {"name": "OUTPUT1", "data_type": "TYPE_FP32", "dims": [4]}],
}


# Ragged batching (Triton's batch_input / batch_output): one model takes a ragged
# input flat plus one batch input of each kind; each batch input comes back as an
# output row per batch item, so a client sees the whole batch's value exactly.
RAGGED_BATCH_INPUTS = (   # target, kind, datatype, model dims
    ("COUNT", "BATCH_ELEMENT_COUNT", "TYPE_INT32", ["r"]),
    ("ACC", "BATCH_ACCUMULATED_ELEMENT_COUNT", "TYPE_FP32", ["r"]),
    ("ACC0", "BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO", "TYPE_INT32", ["r1"]),
    ("MAX", "BATCH_MAX_ELEMENT_COUNT_AS_SHAPE", "TYPE_FP32", ["m"]),
    ("ITEM", "BATCH_ITEM_SHAPE", "TYPE_INT32", ["i", "k"]),
    ("FLAT", "BATCH_ITEM_SHAPE_FLATTEN", "TYPE_FP32", ["f"]),
)
_ONNX_TYPES = {"TYPE_INT32": TensorProto.INT32, "TYPE_FP32": TensorProto.FLOAT}


def ragged_batch_io(repo: pathlib.Path, name: str = "ragged", delay_us: int = 0,
                    preferred: int = 0, sequence: bool = False) -> dict:
    """Writes the model and its config.pbtxt; returns the config (Triton's JSON form).

    INPUT FP32 ragged (model [-1]) + the RAGGED_BATCH_INPUTS -> OUT = 2 * INPUT
    scattered back by INPUT's shape (batch_output), and <TARGET>_OUT: each batch
    input repeated once per batch item ([items, len]; MAX_OUT: its length).

    ``sequence``: a ``direct`` sequence model of two slots instead (a START control
    input the graph ignores), whose batch waits for both slots up to ``delay_us``."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Add", ["INPUT", "INPUT"], ["OUT"]),
             # items = the length of FLAT (one dim per item: INPUT is [batch, n])
             helper.make_node("Shape", ["FLAT"], ["items"]),
             helper.make_node("Constant", [], ["one"], value=helper.make_tensor(
                 "one_v", TensorProto.INT64, [1], [1])),
             helper.make_node("Concat", ["items", "one"], ["rows"], axis=0),
             helper.make_node("Constant", [], ["minus1"], value=helper.make_tensor(
                 "m1_v", TensorProto.INT64, [2], [1, -1])),
             helper.make_node("Shape", ["MAX"], ["max_len"]),
             helper.make_node("Cast", ["max_len"], ["max_f"], to=f),
             helper.make_node("Reshape", ["max_f", "minus1"], ["max_row"]),
             helper.make_node("Expand", ["max_row", "rows"], ["MAX_OUT"])]
    outputs = [_vi("OUT", f, ["total"]), _vi("MAX_OUT", f, ["n", 1])]
    inputs = [_vi("INPUT", f, ["total"])]
    config_out = [{"name": "OUT", "data_type": "TYPE_FP32", "dims": [-1]},
                  {"name": "MAX_OUT", "data_type": "TYPE_FP32", "dims": [1]}]
    batch_input = []
    for target, kind, dtype, dims in RAGGED_BATCH_INPUTS:
        inputs.append(_vi(target, _ONNX_TYPES[dtype], dims))
        batch_input.append({"kind": kind, "target_name": [target], "data_type": dtype,
                            "source_input": ["INPUT"]})
        if target == "MAX":
            continue
        nodes += [helper.make_node("Reshape", [target, "minus1"], [f"{target}_row"]),
                  helper.make_node("Expand", [f"{target}_row", "rows"], [f"{target}_OUT"])]
        outputs.append(_vi(f"{target}_OUT", _ONNX_TYPES[dtype], ["n", "len"]))
        config_out.append({"name": f"{target}_OUT", "data_type": dtype, "dims": [-1]})
    if sequence:
        inputs.append(_vi("START", TensorProto.INT32, ["b", 1]))
    _save(helper.make_graph(nodes, name, inputs, outputs), repo / name / "1" / "model.onnx")
    dynamic = {"max_queue_delay_microseconds": delay_us}
    if preferred:
        dynamic["preferred_batch_size"] = [preferred]
    config = {
        "name": name, "backend": "onnxruntime", "max_batch_size": 2 if sequence else 8,
        "input": [{"name": "INPUT", "data_type": "TYPE_FP32", "dims": [-1],
                   "allow_ragged_batch": True}],
        "output": config_out, "batch_input": batch_input,
        "batch_output": [{"kind": "BATCH_SCATTER_WITH_INPUT_SHAPE", "target_name": ["OUT"],
                          "source_input": ["INPUT"]}],
        "instance_group": [{"kind": "KIND_CPU", "count": 1}]}
    if sequence:
        config["sequence_batching"] = {
            "direct": {"max_queue_delay_microseconds": delay_us,
                       "minimum_slot_utilization": 1.0},
            "control_input": [{"name": "START", "control": [
                {"kind": "CONTROL_SEQUENCE_START", "int32_false_true": [0, 1]}]}]}
    else:
        config["dynamic_batching"] = dynamic
    (repo / name / "config.pbtxt").write_text(to_pbtxt(from_dict(config)))
    return config
