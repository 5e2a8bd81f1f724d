"""Writes the example models of model_repository/ (run: python model_repository/generate.py).

Everything is built locally (ONNX graphs with onnx.helper, Python models as
source); nothing is downloaded. The output is small and committed, so the
server never runs this at start.
"""
from __future__ import annotations

import pathlib
import sys
import textwrap

import onnx
from onnx import TensorProto, helper

HERE = pathlib.Path(__file__).resolve().parent
OPSET = [helper.make_opsetid("", 13)]


def save(model: onnx.ModelProto, path: pathlib.Path) -> None:
    model.ir_version = 8  # readable by every onnxruntime we support
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def simple() -> None:
    """Triton's classic example: INT32 INPUT0/INPUT1 [16] -> sum and difference."""
    shape = ["batch", 16]
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        "simple",
        [helper.make_tensor_value_info("INPUT0", TensorProto.INT32, shape),
         helper.make_tensor_value_info("INPUT1", TensorProto.INT32, shape)],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.INT32, shape),
         helper.make_tensor_value_info("OUTPUT1", TensorProto.INT32, shape)])
    save(helper.make_model(graph, opset_imports=OPSET), HERE / "simple/1/model.onnx")
    write(HERE / "simple/config.pbtxt", """
        name: "simple"
        backend: "onnxruntime"
        max_batch_size: 8
        input [
          { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
          { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
        ]
        output [
          { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
          { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
        ]
        instance_group [ { kind: KIND_CPU count: 1 } ]
        dynamic_batching { max_queue_delay_microseconds: 100 }
        """)


def identity_fp32() -> None:
    """ONNX Identity over FP32 [-1]: moves large tensors through the server."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], "identity_fp32",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["n"])])
    save(helper.make_model(graph, opset_imports=OPSET), HERE / "identity_fp32/1/model.onnx")
    write(HERE / "identity_fp32/config.pbtxt", """
        name: "identity_fp32"
        backend: "onnxruntime"
        max_batch_size: 0
        input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
        instance_group [ { kind: KIND_CPU count: 1 } ]
        """)


def simple_string() -> None:
    """BYTES in, BYTES out (ONNX string Identity), batched like `simple`."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], "simple_string",
        [helper.make_tensor_value_info("INPUT0", TensorProto.STRING, ["batch", 16])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.STRING, ["batch", 16])])
    save(helper.make_model(graph, opset_imports=OPSET), HERE / "simple_string/1/model.onnx")
    write(HERE / "simple_string/config.pbtxt", """
        name: "simple_string"
        backend: "onnxruntime"
        max_batch_size: 8
        input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ 16 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ 16 ] } ]
        instance_group [ { kind: KIND_CPU count: 1 } ]
        """)


def add_sub_python() -> None:
    """A Python-backend model written exactly as Triton's docs show."""
    write(HERE / "add_sub/config.pbtxt", """
        name: "add_sub"
        backend: "python"
        max_batch_size: 0
        input [
          { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] },
          { name: "INPUT1" data_type: TYPE_FP32 dims: [ 16 ] }
        ]
        output [
          { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] },
          { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 16 ] }
        ]
        instance_group [ { kind: KIND_CPU count: 1 } ]
        """)
    write(HERE / "add_sub/1/model.py", '''
        """OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (Triton Python backend API)."""
        import json

        import triton_python_backend_utils as pb_utils


        class TritonPythonModel:
            def initialize(self, args):
                self.model_config = json.loads(args["model_config"])
                out0 = pb_utils.get_output_config_by_name(self.model_config, "OUTPUT0")
                out1 = pb_utils.get_output_config_by_name(self.model_config, "OUTPUT1")
                self.out0_dtype = pb_utils.triton_string_to_numpy(out0["data_type"])
                self.out1_dtype = pb_utils.triton_string_to_numpy(out1["data_type"])

            def execute(self, requests):
                responses = []
                for request in requests:
                    in0 = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                    in1 = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
                    out0 = pb_utils.Tensor("OUTPUT0", (in0 + in1).astype(self.out0_dtype))
                    out1 = pb_utils.Tensor("OUTPUT1", (in0 - in1).astype(self.out1_dtype))
                    responses.append(pb_utils.InferenceResponse(output_tensors=[out0, out1]))
                return responses

            def finalize(self):
                pb_utils.Logger.log_info("add_sub: cleaning up")
        ''')


def write(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def main() -> int:
    simple()
    identity_fp32()
    simple_string()
    add_sub_python()
    print(f"wrote example models under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
