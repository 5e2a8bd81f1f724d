"""A model repository for decoupled ensembles, backpressure, statistics and client shm.

``repeat`` is a decoupled Python model: for IN (FP32 [4]) it sends int(IN[0])
responses OUT = IN + k (k = 0, 1, ...), then the final flag alone, or, with a
negative IN[0], one response carrying the final flag with its data, or, with
IN[0] == 99, an error after one response, or, with IN[0] == 77, one response and then its
worker's death (SIGKILL), or, with IN[0] == 55, one response, a response without outputs
and the final flag alone. ``double`` (OUT = 2 * IN) is a plain
Python model; ``gate`` copies IN to OUT once the file named by its ``gate``
parameter exists (it writes ``<gate>.started`` first), so a test holds a step
without any timing.
"""
from __future__ import annotations

import pathlib

REPEAT_PY = '''
import threading
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            threading.Thread(target=self.respond, args=(r,), daemon=True).start()
        return None

    def respond(self, r):
        sender = r.get_response_sender()
        x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
        n = int(x[0])
        if n < 0:
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x.copy())]),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        if n == 77:                  # dies after one response, execute long returned
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x.copy())]))
            import os, signal, time
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)
        if n == 55:
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x.copy())]))
            sender.send(pb_utils.InferenceResponse([]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        if n == 99:
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x.copy())]))
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError("repeat gave up")),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        for k in range(n):
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x + k)]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
'''

DOUBLE_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", 2 * pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())])
            for r in requests]
'''

GATE_PY = '''
import json, os, time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.gate = json.loads(args["model_config"])["parameters"]["gate"]["string_value"]

    def execute(self, requests):
        open(self.gate + ".started", "w").close()
        while not os.path.exists(self.gate):
            time.sleep(0.01)
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy().copy())])
            for r in requests]
'''

IO = ('input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
      'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')


def _python(name: str, extra: str = "") -> str:
    return (f'name: "{name}"\nbackend: "python"\n{IO}'
            f'instance_group [ {{ kind: KIND_CPU count: 1 }} ]\n{extra}')


def _chain(name: str, first: str, second: str, extra: str = "") -> str:
    return (f'name: "{name}"\nplatform: "ensemble"\n{IO}ensemble_scheduling {{ {extra}\n'
            f'  step [ {{ model_name: "{first}" model_version: -1\n'
            f'           input_map {{ key: "IN" value: "IN" }} '
            f'output_map {{ key: "OUT" value: "MID" }} }},\n'
            f'         {{ model_name: "{second}" model_version: -1\n'
            f'           input_map {{ key: "IN" value: "MID" }} '
            f'output_map {{ key: "OUT" value: "OUT" }} }} ] }}\n')


def write_repo(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """The repository and the gate file (absent: ``gate`` models hold their requests)."""
    repo = root / "repo"
    gate = root / "gate"
    gated = f'parameters {{ key: "gate" value {{ string_value: "{gate}" }} }}'
    models = {
        "repeat": (REPEAT_PY, _python("repeat", "model_transaction_policy { decoupled: true }")),
        "double": (DOUBLE_PY, _python("double")),
        "double2": (DOUBLE_PY, _python("double2")),
        "s1": (DOUBLE_PY, _python("s1")),
        "s2": (DOUBLE_PY, _python("s2")),
        "pre_l": (DOUBLE_PY, _python("pre_l")),
        "pre_u": (DOUBLE_PY, _python("pre_u")),
        "gate_l": (GATE_PY, _python("gate_l", gated)),
        "gate_u": (GATE_PY, _python("gate_u", gated)),
    }
    for name, (code, config) in models.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(code)
        (repo / name / "config.pbtxt").write_text(config)
    ensembles = {
        "fan": _chain("fan", "repeat", "double"),          # decoupled: one answer per repeat
        "echo": ('name: "echo"\nplatform: "ensemble"\n' + IO + 'ensemble_scheduling { step [ '
                 '{ model_name: "repeat" model_version: -1 input_map { key: "IN" value: "IN" }'
                 ' output_map { key: "OUT" value: "OUT" } } ] }\n'),
        "pair": _chain("pair", "double", "double2"),       # two workers (client shm test)
        "stats_chain": _chain("stats_chain", "s1", "s2"),
        "limited": _chain("limited", "pre_l", "gate_l", "max_inflight_requests: 2"),
        "unlimited": _chain("unlimited", "pre_u", "gate_u"),
    }
    for name, text in ensembles.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(text)
    return repo, gate
