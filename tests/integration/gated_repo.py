"""Sequence models whose first step can wait on a gate, for
tests/integration/test_sequence_cancel.py: the test queues requests behind a step that
cannot finish until it opens the gate (a file named by the correlation id in the
directory given by the config parameter GATE), so what is queued is known exactly.

- ``gated_direct`` / ``gated_oldest``: a plain sequence batcher (one slot, max_batch_size
  1); IN >= 100 waits on the gate (writing ``<corrid>.waiting`` first).
- ``gated_iterative`` (not decoupled) / ``gated_iterative_stream`` (decoupled):
  ``iterative_sequence``, one slot; IN % 100 steps per request (keyed by request id),
  rescheduled between them, the first step waits on the gate when IN >= 100.

Every response says OUT (steps left; IN % 100 for the plain models), CORRID, STARTED
and ENDED (the control inputs the step saw).
"""
from __future__ import annotations

import pathlib

MODEL_PY = '''
import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


def value(request, name):
    return int(pb_utils.get_input_tensor_by_name(request, name).as_numpy().flat[0])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.gate = config["parameters"]["GATE"]["string_value"]
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)
        self.iterative = config["sequence_batching"].get("iterative_sequence", False)
        self.shape = (1, 1) if config["max_batch_size"] > 0 else (1,)
        self.left = {}       # request id -> steps still to run (iterative)

    def wait(self, corrid):
        path = os.path.join(self.gate, str(corrid))
        open(path + ".waiting", "w").close()
        for _ in range(6000):            # a minute at most: a test that never opens fails
            if os.path.exists(path):
                return
            time.sleep(0.01)

    def execute(self, requests):
        responses = []
        for request in requests:
            n = value(request, "IN")
            key = request.request_id()
            if n >= 100 and key not in self.left:
                self.wait(request.correlation_id())
            left = self.left.get(key, n % 100) - 1 if self.iterative else n % 100
            seen = [left, request.correlation_id(), value(request, "START"),
                    value(request, "END")]
            response = pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(name, np.array([v], dt).reshape(self.shape)) for name, v, dt in
                zip(("OUT", "CORRID", "STARTED", "ENDED"), seen,
                    (np.int32, np.uint64, np.int32, np.int32))])
            again = self.iterative and left > 0
            if again:
                self.left[key] = left
                request.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)
            else:
                self.left.pop(key, None)
            if not self.decoupled:
                responses.append(None if again else response)
            else:
                request.get_response_sender().send(
                    response, flags=0 if again else pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None if self.decoupled else responses
'''

_IO = (
    'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
    'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] },'
    ' { name: "CORRID" data_type: TYPE_UINT64 dims: [ 1 ] },'
    ' { name: "STARTED" data_type: TYPE_INT32 dims: [ 1 ] },'
    ' { name: "ENDED" data_type: TYPE_INT32 dims: [ 1 ] } ]\n')
_CONTROLS = (
    'control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START '
    'int32_false_true: [ 0, 1 ] } ] }, { name: "END" control [ { kind: CONTROL_SEQUENCE_END '
    'int32_false_true: [ 0, 1 ] } ] } ]')


def _seq(strategy: str) -> str:
    return (f"sequence_batching {{ max_sequence_idle_microseconds: 60000000 {strategy} "
            f"{_CONTROLS} }}\n")


MODELS = {   # name -> config body
    "gated_direct": "max_batch_size: 1\n" + _IO + _seq("direct { }"),
    "gated_oldest": "max_batch_size: 1\n" + _IO + _seq("oldest { max_candidate_sequences: 1 }"),
    "gated_iterative": "max_batch_size: 0\n" + _IO + _seq("iterative_sequence: true"),
    "gated_iterative_stream": ("max_batch_size: 0\n" + _IO + _seq(
        "iterative_sequence: true") + "model_transaction_policy { decoupled: true }\n"),
}


def write(repo: pathlib.Path, gate: pathlib.Path) -> pathlib.Path:
    for name, body in MODELS.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(MODEL_PY)
        (repo / name / "config.pbtxt").write_text(
            f'name: "{name}"\nbackend: "python"\n{body}'
            f'parameters {{ key: "GATE" value: {{ string_value: "{gate}" }} }}\n'
            'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    return repo
