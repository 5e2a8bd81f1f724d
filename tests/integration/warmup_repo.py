"""A model repository of ``model_warmup`` cases (tests/integration/test_warmup.py).

The Python model keeps what each ``execute`` saw (request count; per input its shape,
dtype and zero/non-zero bytes or its strings) and answers a real request with that
history as JSON: the warmup's calls, in order, are what the first request returns.
"""
from __future__ import annotations

import pathlib
import struct

from tests.workers.models import add_sub

RECORDER = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.calls = []
        params = json.loads(args["model_config"]).get("parameters", {})
        self.mode = params.get("MODE", {}).get("string_value", "")
        self.batching = json.loads(args["model_config"])["max_batch_size"] > 0

    def execute(self, requests):
        if self.mode == "raise":
            raise pb_utils.TritonModelException("boom in execute")
        if self.mode == "error":
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError("An Error Occurred"))
                    for _ in requests]
        seen = []
        for r in requests:
            one = {}
            for t in r.inputs():
                a = t.as_numpy()
                if a.dtype == object:
                    one[t.name()] = [list(a.shape), [x.decode() for x in a.reshape(-1)]]
                else:
                    one[t.name()] = [list(a.shape), str(a.dtype),
                                     "zero" if not a.view(np.uint8).any() else "nonzero"]
            seen.append(one)
        history = json.dumps(self.calls).encode()
        self.calls.append(seen)
        shape = [1, 1] if self.batching else [1]
        out = [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", np.array([history], dtype=object).reshape(shape))]) for _ in requests]
        if self.mode != "decoupled":
            return out
        for r, resp in zip(requests, out):
            r.get_response_sender().send(resp, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''

IO = ('input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
      '        { name: "IN1" data_type: TYPE_STRING dims: [ 2 ] } ]\n'
      'output [ { name: "OUT" data_type: TYPE_STRING dims: [ 1 ] } ]\n')


def inp(key: str, dtype: str, dims: str, data: str) -> str:
    return f'inputs {{ key: "{key}" value {{ data_type: {dtype} dims: {dims} {data} }} }}'


Z0 = inp("IN0", "TYPE_FP32", "[ 4 ]", "zero_data: true")
R0 = inp("IN0", "TYPE_FP32", "[ 4 ]", "random_data: true")
F0 = inp("IN0", "TYPE_FP32", "[ 4 ]", 'input_data_file: "floats"')
ZS = inp("IN1", "TYPE_STRING", "[ 2 ]", "zero_data: true")
RS = inp("IN1", "TYPE_STRING", "[ 2 ]", "random_data: true")
FS = inp("IN1", "TYPE_STRING", "[ 2 ]", 'input_data_file: "strings"')
STRINGS = b"".join(struct.pack("<I", len(s)) + s for s in (b"ab", b"xyz"))
FLOATS = struct.pack("<5f", 1, 2, 3, 4, 5)     # one float more than needed: the rest is unused

# The recorder's samples: zeros twice a batch of 2, three times; random once; a
# batch-0 sample (skipped); file data once.
SAMPLES = (f'{{ name: "zeros" batch_size: 2 count: 3 {Z0} {ZS} }},'
           f'{{ name: "rand" batch_size: 1 {R0} {RS} }},'
           f'{{ name: "skipped" batch_size: 0 {Z0} {ZS} }},'
           f'{{ name: "file" batch_size: 1 {F0} {FS} }}')


def python(repo: pathlib.Path, name: str, samples: str, *, mode: str = "", batch: int = 4,
           extra: str = "", files: dict | None = None, count: int = 1,
           groups: str = "") -> None:
    d = repo / name / "1"
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.py").write_text(RECORDER)
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {batch}\n{IO}'
        f'instance_group [ {groups or f"{{ kind: KIND_CPU count: {count} }}"} ]\n'
        f'parameters {{ key: "MODE" value {{ string_value: "{mode}" }} }}\n{extra}'
        f'model_warmup [ {samples} ]\n')
    for file, data in (files or {}).items():
        (repo / name / "warmup").mkdir(exist_ok=True)
        (repo / name / "warmup" / file).write_bytes(data)


ONNX_WARMUP = ('model_warmup [ { name: "onnx sample" batch_size: 4 '
               + inp("INPUT0", "TYPE_INT32", "[ 16 ]", "zero_data: true") + " "
               + inp("INPUT1", "TYPE_INT32", "[ 16 ]", "random_data: true") + " } ]\n")


def build(repo: pathlib.Path) -> pathlib.Path:
    files = {"floats": FLOATS, "strings": STRINGS}
    python(repo, "recorder", SAMPLES, files=files, count=2)
    python(repo, "again", f'{{ name: "first" batch_size: 1 {Z0} {ZS} }}')
    python(repo, "halfpassive", f'{{ name: "active only" batch_size: 1 {Z0} {ZS} }}',
           groups="{ kind: KIND_CPU }, { kind: KIND_CPU passive: true }")
    # START: not a config input (a sequence model's control input): passed on as it is
    start = inp("START", "TYPE_INT32", "[ 1 ]", "zero_data: true")
    python(repo, "streamer", f'{{ name: "decoupled sample" batch_size: 2 {Z0} {ZS} {start} }}',
           mode="decoupled", extra="model_transaction_policy { decoupled: true }\n")
    python(repo, "failing", f'{{ name: "zero sample" batch_size: 1 {Z0} {ZS} }}', mode="error")
    python(repo, "raising", f'{{ name: "zero sample" batch_size: 1 {Z0} {ZS} }}', mode="raise")
    python(repo, "missing", f'{{ name: "m" batch_size: 1 {Z0} }}')
    python(repo, "short", f'{{ name: "s" batch_size: 1 {F0} {ZS} }}',
           files={"floats": FLOATS[:8]})
    python(repo, "toobig", f'{{ name: "big" batch_size: 3 {Z0} {ZS} }}', batch=0,
           extra="")
    add_sub(repo, "onnx")
    (repo / "onnx" / "config.pbtxt").write_text(
        'name: "onnx"\nbackend: "onnxruntime"\nmax_batch_size: 8\n'
        'input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },\n'
        '        { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'
        'output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },\n'
        '         { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n' + ONNX_WARMUP)
    try:
        import torch  # noqa: F401 - the PyTorch backend's model only where torch is installed
    except ImportError:
        return repo
    from tests import torch_models
    torch_models.add_sub(repo, "torch", extra=TORCH_WARMUP)
    return repo


TORCH_WARMUP = ('model_warmup [ { name: "torch sample" batch_size: 2 count: 2 '
                + inp("INPUT__0", "TYPE_FP32", "[ 4 ]", "zero_data: true") + " "
                + inp("INPUT__1", "TYPE_FP32", "[ 4 ]", "random_data: true") + " } ]\n")
