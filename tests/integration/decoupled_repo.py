"""Decoupled Python models for integration tests, written into a tmp repository.

``repeat_int32`` and ``square_int32`` have the interface of the examples
Triton ships for its Python backend (our own code): repeat sends IN[i] (and
its index) once per element of IN, after DELAY[i] ms each, from a thread,
then the final flag; square sends IN copies of IN, then the final flag (zero
responses for IN = 0). ``misuse`` exercises Triton's sender errors, ``ticker``
cancellation, ``flood`` backpressure, ``late`` a non-decoupled model
answering from a thread after ``execute`` returned, ``crashy`` a worker
dying mid-stream.
"""
from __future__ import annotations

import pathlib

REPEAT = '''
import threading, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.threads = []

    def execute(self, requests):
        for request in requests:
            t = threading.Thread(target=self.respond, args=(request,))
            t.start()
            self.threads.append(t)
        return None

    def respond(self, request):
        sender = request.get_response_sender()
        values = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
        delays = pb_utils.get_input_tensor_by_name(request, "DELAY").as_numpy()
        for i, v in enumerate(values):
            time.sleep(float(delays[i]) / 1000 if i < len(delays) else 0)
            sender.send(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUT", np.array([v], np.int32)),
                pb_utils.Tensor("IDX", np.array([i], np.uint32))]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def finalize(self):
        for t in self.threads:
            t.join()
'''

SQUARE = '''
import threading
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            threading.Thread(target=self.respond, args=(request,), daemon=True).start()
        return None

    def respond(self, request):
        sender = request.get_response_sender()
        n = int(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()[0])
        for _ in range(n):
            sender.send(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUT", np.array([n], np.int32))]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
'''

MISUSE = '''
import asyncio
import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def text(s):
    return pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([s.encode()], np.object_))])


class TritonPythonModel:
    def execute(self, requests):
        mode = int(pb_utils.get_input_tensor_by_name(requests[0], "MODE").as_numpy()[0])
        if mode == 5:
            return self.later(requests)          # async def: Triton runs it in the background
        for request in requests:
            sender = request.get_response_sender()
            if mode == 0:                         # send after the final flag
                sender.send(text("first"), flags=FINAL)
                try:
                    sender.send(text("again"))
                except pb_utils.TritonModelException as exc:
                    print("MISUSE:", exc, flush=True)
            elif mode == 1:                       # a decoupled execute returning responses
                return [text("returned")]
            elif mode == 2:                       # an error response between good ones
                sender.send(text("one"))
                sender.send(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("bad second response")))
                sender.send(text("three"), flags=FINAL)
            elif mode == 3:                       # an exception after one response
                sender.send(text("before"))
                raise ValueError("model broke mid-stream")
            elif mode == 4:                       # flags 0 without a response
                try:
                    sender.send()
                except pb_utils.TritonModelException as exc:
                    sender.send(text(str(exc)), flags=FINAL)
        return None

    async def later(self, requests):
        await asyncio.sleep(0.05)
        for request in requests:
            sender = request.get_response_sender()
            sender.send(text("async"))
            sender.send(flags=FINAL)
'''

TICKER = '''
import threading, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import json
        cfg = json.loads(args["model_config"])
        self.flag = cfg["parameters"]["FLAG"]["string_value"]

    def execute(self, requests):
        for request in requests:
            threading.Thread(target=self.tick, args=(request,), daemon=True).start()
        return None

    def tick(self, request):
        sender = request.get_response_sender()
        for i in range(3000):
            if request.is_cancelled() or sender.is_cancelled():
                with open(self.flag, "w") as f:
                    f.write(f"cancelled after {i}")
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([i], np.int32))]))
            time.sleep(0.01)
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
'''

FLOOD = '''
import threading
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import json
        cfg = json.loads(args["model_config"])
        self.progress = cfg["parameters"]["PROGRESS"]["string_value"]

    def execute(self, requests):
        for request in requests:
            threading.Thread(target=self.flood, args=(request,), daemon=True).start()
        return None

    def flood(self, request):
        sender = request.get_response_sender()
        n = int(pb_utils.get_input_tensor_by_name(request, "N").as_numpy()[0])
        size = int(pb_utils.get_input_tensor_by_name(request, "SIZE").as_numpy()[0])
        for i in range(n):
            data = np.full([size], i % 251, np.uint8)
            sender.send(pb_utils.InferenceResponse([
                pb_utils.Tensor("IDX", np.array([i], np.int32)), pb_utils.Tensor("DATA", data)]))
            if i % 100 == 0:
                with open(self.progress, "w") as f:
                    f.write(str(i))
        with open(self.progress, "w") as f:
            f.write(str(n))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
'''

LATE = '''
import threading, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            threading.Thread(target=self.answer, args=(request,), daemon=True).start()
        return None

    def answer(self, request):
        time.sleep(0.05)
        x = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
        request.get_response_sender().send(
            pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x * 2)]),
            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
'''

CRASHY = '''
import os, signal, threading, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            threading.Thread(target=self.die, args=(request,), daemon=True).start()
        return None

    def die(self, request):
        sender = request.get_response_sender()
        sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([1], np.int32))]))
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)
'''

_IO = {
    "repeat_int32": ('{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }, '
                     '{ name: "DELAY" data_type: TYPE_UINT32 dims: [ -1 ] }, '
                     '{ name: "WAIT" data_type: TYPE_UINT32 dims: [ 1 ] }',
                     '{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }, '
                     '{ name: "IDX" data_type: TYPE_UINT32 dims: [ 1 ] }', REPEAT, True),
    "square_int32": ('{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }',
                     '{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }', SQUARE, True),
    "misuse": ('{ name: "MODE" data_type: TYPE_INT32 dims: [ 1 ] }',
               '{ name: "OUT" data_type: TYPE_STRING dims: [ 1 ] }', MISUSE, True),
    "ticker": ('{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }',
               '{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }', TICKER, True),
    "flood": ('{ name: "N" data_type: TYPE_INT32 dims: [ 1 ] }, '
              '{ name: "SIZE" data_type: TYPE_INT32 dims: [ 1 ] }',
              '{ name: "IDX" data_type: TYPE_INT32 dims: [ 1 ] }, '
              '{ name: "DATA" data_type: TYPE_UINT8 dims: [ -1 ] }', FLOOD, True),
    "late": ('{ name: "IN" data_type: TYPE_FP32 dims: [ 2 ] }',
             '{ name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] }', LATE, False),
    "crashy": ('{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }',
               '{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }', CRASHY, True),
}


def decoupled_repo(repo: pathlib.Path, names=None, parameters: dict | None = None) -> pathlib.Path:
    """Write the models ``names`` (all by default) into ``repo``; ``parameters``:
    model name -> {key: string value} config parameters."""
    for name, (ins, outs, code, decoupled) in _IO.items():
        if names is not None and name not in names:
            continue
        d = repo / name
        (d / "1").mkdir(parents=True)
        (d / "1" / "model.py").write_text(code)
        params = "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n'
                         for k, v in ((parameters or {}).get(name) or {}).items())
        policy = "model_transaction_policy { decoupled: true }\n" if decoupled else ""
        (d / "config.pbtxt").write_text(
            f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n{policy}'
            f"input [ {ins} ]\noutput [ {outs} ]\n{params}"
            'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    return repo
