"""Iterative-sequence models (``sequence_batching { iterative_sequence: true }``) for
tests/integration/test_iterative_sequences.py, on the interface of Triton's QA models
(qa/python_models/iterative_sequence, request_rescheduling_addsub).

- ``iterative_sequence`` (decoupled, max_batch_size 4): IN = n sends n responses,
  one per execution, OUT counting down to 0, rescheduling the request between them;
  each response also says the sequence's CORRID and whether START was set. The
  thousands of IN choose a behaviour: 1xxx sleeps DELAY s per step, 2xxx kills the
  worker at the second step, 3xxx raises at the second step.
- ``iterative_one``: the same with max_batch_size 1 (one slot: a leaked slot blocks).
- ``iterative_idle``: the same, max_sequence_idle_microseconds 200000 < DELAY.
- ``reschedule_addsub`` (not decoupled): add/sub of INPUT0/INPUT1, each request
  rescheduled once (None in the returned list), the answer's parameter ``executions``
  is 2; with parameter BAD it returns a response for the rescheduled request instead.
- ``iterative_queue`` (decoupled) / ``iterative_queue_unary`` (not decoupled), one
  slot, START and END control inputs: counts per request id (several requests of one
  client-chosen correlation id share the sequence), IN = n steps with a 0.3 s sleep
  each, rescheduled between; each step's response (decoupled) or the last one says
  OUT (steps left), CORRID, STARTED and ENDED (the flags that step saw).
- ``reschedule_plain`` / ``reschedule_direct``: the decoupled model without
  iterative_sequence (no sequence batching / a direct sequence batcher): rescheduling
  is refused with Triton's message.
"""
from __future__ import annotations

import pathlib

COUNTDOWN_PY = '''
import json
import os
import signal
import time

import numpy as np
import triton_python_backend_utils as pb_utils


def value(request, name):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return None if t is None else int(t.as_numpy().flat[0])


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.delay = float(params.get("DELAY", {}).get("string_value", "0.05"))
        self.left = {}       # correlation id -> responses still to send
        self.steps = {}      # correlation id -> executions so far

    def execute(self, requests):
        for request in requests:
            n = value(request, "IN")
            shape = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy().shape
            start = value(request, "START")
            corrid = request.correlation_id()
            kind, count = divmod(n, 1000)
            if start or corrid not in self.left:
                self.left[corrid], self.steps[corrid] = count, 0
            self.steps[corrid] += 1
            if kind == 1:
                time.sleep(self.delay)
            if kind == 2 and self.steps[corrid] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            if kind == 3 and self.steps[corrid] == 2:
                raise pb_utils.TritonModelException(f"step 2 of sequence {corrid} failed")
            self.left[corrid] -= 1
            left = self.left[corrid]
            response = pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUT", np.array([left], np.int32).reshape(shape)),
                pb_utils.Tensor("CORRID", np.array([corrid], np.uint64).reshape(shape)),
                pb_utils.Tensor("STARTED", np.array([-1 if start is None else start],
                                                    np.int32).reshape(shape))])
            sender = request.get_response_sender()
            if left <= 0:
                sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                del self.left[corrid], self.steps[corrid]
            else:
                request.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)
                sender.send(response)
        return None
'''

ADDSUB_PY = '''
import json

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.bad = "BAD" in params

    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            start = int(pb_utils.get_input_tensor_by_name(request, "START").as_numpy().flat[0])
            response = pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT0", a + b),
                                pb_utils.Tensor("OUTPUT1", a - b)],
                parameters={"executions": 1 if start else 2})
            if start:            # the first execution: run it again
                request.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)
                responses.append(response if self.bad else None)
            else:
                responses.append(response)
        return responses
'''

QUEUE_PY = '''
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


def value(request, name):
    return int(pb_utils.get_input_tensor_by_name(request, name).as_numpy().flat[0])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)
        self.left = {}       # request id -> steps still to run

    def execute(self, requests):
        responses = []
        for request in requests:
            key = request.request_id()
            left = self.left.get(key, value(request, "IN")) - 1
            time.sleep(0.3)
            seen = [left, request.correlation_id(), value(request, "START"),
                    value(request, "END")]
            response = pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(n, np.array([v], dt)) for n, v, dt in zip(
                    ("OUT", "CORRID", "STARTED", "ENDED"), seen,
                    (np.int32, np.uint64, np.int32, np.int32))])
            if left > 0:
                self.left[key] = left
                request.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)
            else:
                self.left.pop(key, None)
            if not self.decoupled:
                responses.append(response if left <= 0 else None)
            elif left > 0:
                request.get_response_sender().send(response)
            else:
                request.get_response_sender().send(
                    response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return responses if not self.decoupled else None
'''

_QUEUE_IO = (
    'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
    'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] },'
    ' { name: "CORRID" data_type: TYPE_UINT64 dims: [ 1 ] },'
    ' { name: "STARTED" data_type: TYPE_INT32 dims: [ 1 ] },'
    ' { name: "ENDED" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
    'sequence_batching { iterative_sequence: true control_input [ { name: "START" control [ '
    '{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] }, { name: "END" control [ '
    '{ kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] } ] }\n')

_COUNTDOWN_IO = (
    'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
    'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] },'
    ' { name: "CORRID" data_type: TYPE_UINT64 dims: [ 1 ] },'
    ' { name: "STARTED" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
    "model_transaction_policy { decoupled: true }\n")
_START = ('control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START '
          'int32_false_true: [ 0, 1 ] } ] } ]')
_ADDSUB_IO = (
    'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] },'
    ' { name: "INPUT1" data_type: TYPE_FP32 dims: [ 16 ] } ]\n'
    'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] },'
    ' { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 16 ] } ]\n')


def _param(key: str, value: str) -> str:
    return f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'


MODELS = {   # name -> (code, config body)
    "iterative_sequence": (COUNTDOWN_PY, "max_batch_size: 4\n" + _COUNTDOWN_IO +
                           "sequence_batching { iterative_sequence: true "
                           f"max_sequence_idle_microseconds: 60000000 {_START} }}\n"),
    "iterative_one": (COUNTDOWN_PY, "max_batch_size: 1\n" + _COUNTDOWN_IO +
                      "sequence_batching { iterative_sequence: true "
                      f"max_sequence_idle_microseconds: 60000000 {_START} }}\n"),
    "iterative_idle": (COUNTDOWN_PY, "max_batch_size: 1\n" + _COUNTDOWN_IO + _param("DELAY", "0.6")
                       + "sequence_batching { iterative_sequence: true "
                       f"max_sequence_idle_microseconds: 200000 {_START} }}\n"),
    "reschedule_addsub": (ADDSUB_PY, "max_batch_size: 0\n" + _ADDSUB_IO +
                          f"sequence_batching {{ iterative_sequence: true {_START} }}\n"),
    "reschedule_addsub_bad": (ADDSUB_PY, "max_batch_size: 0\n" + _ADDSUB_IO + _param("BAD", "1")
                              + f"sequence_batching {{ iterative_sequence: true {_START} }}\n"),
    "iterative_queue": (QUEUE_PY, "max_batch_size: 0\n" + _QUEUE_IO +
                        "model_transaction_policy { decoupled: true }\n"),
    "iterative_queue_unary": (QUEUE_PY, "max_batch_size: 0\n" + _QUEUE_IO),
    "reschedule_plain": (COUNTDOWN_PY, "max_batch_size: 0\n" + _COUNTDOWN_IO),
    "reschedule_direct": (COUNTDOWN_PY, "max_batch_size: 1\n" + _COUNTDOWN_IO +
                          f"sequence_batching {{ direct {{ }} {_START} }}\n"),
}


def write(repo: pathlib.Path, names=None) -> pathlib.Path:
    for name, (code, body) in MODELS.items():
        if names is not None and name not in names:
            continue
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(code)
        (repo / name / "config.pbtxt").write_text(
            f'name: "{name}"\nbackend: "python"\n{body}'
            'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    return repo
