"""Sequence models for the sequence batcher tests, written into a tmp repository.

- ``seq_direct`` (Python, direct, max_batch_size 4): Triton's dyna_sequence test
  backend's accumulator, kept per *batch row*, so it only adds up right when every
  sequence stays in its slot's row: READY=0 leaves the row alone, START sets it to
  INPUT, otherwise INPUT is added; END also adds CORRID (uint64).
- ``seq_oldest`` (Python, oldest): the same accumulator kept per CORRID (string).
- ``simple_sequence`` (ONNX, direct, max_batch_size 8): the model of Triton's sequence client
  examples, OUTPUT = READY * (INPUT + START), with START and READY as graph inputs.
- ``seq_state_py`` (Python) / ``seq_state_onnx`` (ONNX): implicit state,
  OUTPUT = INPUT + INPUT_STATE, OUTPUT_STATE = OUTPUT; the ONNX one starts from an
  initial state read from a data file (100).
"""
from __future__ import annotations

import pathlib

import numpy as np
from onnx import TensorProto, helper

from tests.workers.models import _save, _vi

ACCUMULATOR_PY = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


def value(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.by_corrid = cfg["sequence_batching"].get("oldest") is not None
        self.acc = {}

    def execute(self, requests):
        responses = []
        for row, request in enumerate(requests):
            x = int(value(request, "INPUT").sum())
            ready, start, end = (int(value(request, n).flat[0]) for n in ("READY", "START", "END"))
            corrid = value(request, "CORRID").flat[0]
            key = corrid if self.by_corrid else row
            if ready:
                self.acc[key] = x if start else self.acc.get(key, 0) + x
                if end:
                    self.acc[key] += int(corrid)   # uint64, or a numeric string's bytes
            out = np.full((1, 1), self.acc.get(key, 0) if ready else 0, np.int32)
            if ready and end and self.by_corrid:
                del self.acc[key]
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", out)]))
        return responses
'''

STATE_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            state = pb_utils.get_input_tensor_by_name(request, "INPUT_STATE").as_numpy()
            out = x + state
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT", out), pb_utils.Tensor("OUTPUT_STATE", out)]))
        return responses
'''

IO = '''
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
'''


def _control(name: str, kind: str) -> str:
    return (f'{{ name: "{name}" control [ {{ kind: CONTROL_SEQUENCE_{kind} '
            f'int32_false_true: [ 0, 1 ] }} ] }}')


def _controls(corrid_type: str) -> str:
    flags = ", ".join(_control(n, n) for n in ("START", "END", "READY"))
    corrid = (f'{{ name: "CORRID" control [ {{ kind: CONTROL_SEQUENCE_CORRID '
              f'data_type: {corrid_type} }} ] }}')
    return f"control_input [ {flags}, {corrid} ]"


def _model(repo: pathlib.Path, name: str, config: str, model_py: str | None = None) -> None:
    d = repo / name
    (d / "1").mkdir(parents=True, exist_ok=True)
    (d / "config.pbtxt").write_text(f'name: "{name}"\n{config}')
    if model_py is not None:
        (d / "1" / "model.py").write_text(model_py)


def write(repo: pathlib.Path, idle_us: int = 5_000_000, count: int = 1,
          state_option: str = "") -> pathlib.Path:
    """The sequence models; ``idle_us`` for seq_direct and seq_one, instances of seq_direct;
    ``state_option`` is added to the states of seq_state_py and seq_state_onnx."""
    _model(repo, "seq_direct", f'''backend: "python"
max_batch_size: 4
sequence_batching {{
  max_sequence_idle_microseconds: {idle_us}
  direct {{ }}
  {_controls("TYPE_UINT64")}
}}
instance_group [ {{ kind: KIND_CPU count: {count} }} ]
{IO}''', ACCUMULATOR_PY)
    # One slot in all: a second sequence waits in the backlog. seq_one_quick idles out after
    # 400 ms for the idle-timeout tests; the others keep ``idle_us``, long enough that a loaded
    # host's pause between two steps of a test does not end its sequence.
    for name, idle in (("seq_one", idle_us), ("seq_one_quick", 400_000)):
        _model(repo, name, f'''backend: "python"
max_batch_size: 1
sequence_batching {{
  max_sequence_idle_microseconds: {idle}
  {_controls("TYPE_UINT64")}
}}
{IO}''', ACCUMULATOR_PY)
    _model(repo, "seq_oldest", f'''backend: "python"
max_batch_size: 4
sequence_batching {{
  oldest {{ max_candidate_sequences: 8 preferred_batch_size: [ 4 ]
           max_queue_delay_microseconds: 2000 }}
  {_controls("TYPE_STRING")}
}}
{IO}''', ACCUMULATOR_PY)
    state = ('state [ { input_name: "INPUT_STATE" output_name: "OUTPUT_STATE" '
             'data_type: TYPE_INT32 dims: [ 1 ] %s } ]')
    _model(repo, "seq_state_py", f'''backend: "python"
max_batch_size: 4
sequence_batching {{ {state % state_option} }}
{IO}''', STATE_PY)
    initial = ('initial_state: { data_type: TYPE_INT32 dims: [ 1 ] name: "hundred" '
               'data_file: "hundred.bin" } ' + state_option)
    _model(repo, "seq_state_onnx", f'''backend: "onnxruntime"
max_batch_size: 4
sequence_batching {{ {state % initial} }}
{IO}''')
    _simple_sequence(repo)
    d = repo / "seq_state_onnx"
    (d / "initial_state").mkdir()
    (d / "initial_state" / "hundred.bin").write_bytes(np.array([100], np.int32).tobytes())
    _state_graph(d)
    return repo


def _state_graph(d: pathlib.Path) -> None:
    """OUTPUT = INPUT + INPUT_STATE, OUTPUT_STATE = OUTPUT (batched), in ``d``/1."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT", "INPUT_STATE"], ["OUTPUT"]),
         helper.make_node("Identity", ["OUTPUT"], ["OUTPUT_STATE"])], d.name,
        [_vi("INPUT", TensorProto.INT32, ["batch", 1]),
         _vi("INPUT_STATE", TensorProto.INT32, ["batch", 1])],
        [_vi("OUTPUT", TensorProto.INT32, ["batch", 1]),
         _vi("OUTPUT_STATE", TensorProto.INT32, ["batch", 1])])
    _save(graph, d / "1" / "model.onnx")


def write_state_outputs(repo: pathlib.Path) -> pathlib.Path:
    """``seq_state_out_py`` / ``seq_state_out_onnx``: seq_state_py / seq_state_onnx (from
    zero) whose state output is also a config output (Triton QA's
    ``*_nobatch_sequence_int32_output``): a client may ask for it like any output."""
    state = ('state [ { input_name: "INPUT_STATE" output_name: "OUTPUT_STATE" '
             'data_type: TYPE_INT32 dims: [ 1 ] } ]')
    also = 'output [ { name: "OUTPUT_STATE" data_type: TYPE_INT32 dims: [ 1 ] } ]'
    for name, backend, model_py in (("seq_state_out_py", "python", STATE_PY),
                                    ("seq_state_out_onnx", "onnxruntime", None)):
        _model(repo, name, f'backend: "{backend}"\nmax_batch_size: 4\n'
               f'sequence_batching {{ {state} }}\n{IO}{also}', model_py)
    _state_graph(repo / "seq_state_out_onnx")
    return repo


def _simple_sequence(repo: pathlib.Path) -> None:
    controls = ", ".join(_control(n, n) for n in ("START", "READY"))
    _model(repo, "simple_sequence", f'''platform: "onnxruntime_onnx"
max_batch_size: 8
sequence_batching {{ control_input [ {controls} ] }}
{IO}''')
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT", "START"], ["SUM"]),
         helper.make_node("Mul", ["SUM", "READY"], ["OUTPUT"])], "simple_sequence",
        [_vi("INPUT", TensorProto.INT32, ["batch", 1]),
         _vi("START", TensorProto.INT32, ["batch", 1]),
         _vi("READY", TensorProto.INT32, ["batch", 1])],
        [_vi("OUTPUT", TensorProto.INT32, ["batch", 1])])
    _save(graph, repo / "simple_sequence" / "1" / "model.onnx")


PID_PY = '''
import os
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        pid = np.full((1, 1), os.getpid(), np.int32)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", pid)]) for _ in requests]
'''


def write_pid_model(repo: pathlib.Path) -> pathlib.Path:
    """``seq_pid``: two instances of one slot each; OUTPUT is the worker's pid."""
    _model(repo, "seq_pid", f'''backend: "python"
max_batch_size: 1
sequence_batching {{ }}
instance_group [ {{ kind: KIND_CPU count: 2 }} ]
{IO}''', PID_PY)
    return repo


DOUBLE_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUTPUT", pb_utils.get_input_tensor_by_name(r, "INPUT").as_numpy() * 2)])
            for r in requests]
'''


def write_ensemble(repo: pathlib.Path) -> pathlib.Path:
    """``ens_seq``: ``double`` (no sequence batching) then ``seq_state_py`` (implicit state),
    and ``ens_direct``: ``double`` then ``seq_direct`` (control inputs, CORRID); the
    client's sequence id and flags reach the sequence models through the ensemble."""
    _model(repo, "double", f'backend: "python"\nmax_batch_size: 4\n{IO}', DOUBLE_PY)
    for name, target in (("ens_seq", "seq_state_py"), ("ens_direct", "seq_direct")):
        _model(repo, name, f'''platform: "ensemble"
max_batch_size: 4
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
ensemble_scheduling {{ step [
  {{ model_name: "double" model_version: -1
    input_map {{ key: "INPUT" value: "IN" }} output_map {{ key: "OUTPUT" value: "twice" }} }},
  {{ model_name: "{target}" model_version: -1
    input_map {{ key: "INPUT" value: "twice" }} output_map {{ key: "OUTPUT" value: "OUT" }} }}
] }}''')
    return repo


def write_slot_utilization(repo: pathlib.Path) -> pathlib.Path:
    """``seq_util`` / ``seq_util_quick``: the accumulator, ``direct`` with two slots, waiting
    for both (``minimum_slot_utilization: 1``) up to ``max_queue_delay_microseconds`` (30 s,
    far longer than any test waits; 200 ms for the quick one), as Triton QA's
    queue_delay_models."""
    for name, delay in (("seq_util", 30_000_000), ("seq_util_quick", 200_000)):
        _model(repo, name, f'''backend: "python"
max_batch_size: 2
sequence_batching {{
  direct {{ max_queue_delay_microseconds: {delay} minimum_slot_utilization: 1.0 }}
  {_controls("TYPE_UINT64")}
}}
{IO}''', ACCUMULATOR_PY)
    return repo
