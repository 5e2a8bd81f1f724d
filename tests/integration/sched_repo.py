"""A model repository for scheduler tests, written into a tmp dir by each test module.

Every model runs the same ``model.py`` (a Python model): it records each
execution (a per-instance sequence number, the request ids it saw and the
total batch it was handed) in a JSON-lines log file and returns them as
outputs, so a test can tell from the outside how the scheduler batched and
ordered requests. ``sleep_ms`` makes an execution slow; while it sleeps the
model polls ``request.is_cancelled()`` and answers CANCELLED for the requests
that were cancelled, logging when it noticed.
"""
from __future__ import annotations

import json
import pathlib
import time

MODEL_PY = '''
import json, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        self.sleep = float(params.get("sleep_ms", "0")) / 1000
        self.input_sleep = params.get("input_sleep") == "1"   # sleep INPUT0[0] ms instead
        self.log_path = params["log_path"]
        self.seq = 0

    def log(self, **event):
        with open(self.log_path, "a") as f:
            f.write(json.dumps(event) + "\\n")

    def execute(self, requests):
        self.seq += 1
        xs = [pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() for r in requests]
        rows = sum(x.shape[0] for x in xs)
        ids = [r.request_id() for r in requests]
        self.log(event="exec", seq=self.seq, ids=ids, rows=rows, t=time.monotonic())
        cancelled = set()
        sleep = max(float(x.flat[0]) for x in xs) / 1000 if self.input_sleep else self.sleep
        deadline = time.monotonic() + sleep
        while time.monotonic() < deadline and len(cancelled) < len(requests):
            for i, r in enumerate(requests):
                if i not in cancelled and r.is_cancelled():
                    cancelled.add(i)
                    self.log(event="cancelled", id=ids[i], t=time.monotonic())
            time.sleep(0.005)
        out = []
        for i, x in enumerate(xs):
            if i in cancelled:
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "cancelled by the client", pb_utils.TritonError.CANCELLED)))
                continue
            n = x.shape[0]
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", x),
                pb_utils.Tensor("BATCH", np.full((n, 1), rows, np.int32)),
                pb_utils.Tensor("SEQ", np.full((n, 1), self.seq, np.int64))]))
        return out
'''

CONFIG = '''
name: "{name}"
backend: "python"
max_batch_size: {max_batch}
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }},
         {{ name: "BATCH" data_type: TYPE_INT32 dims: [ 1 ] }},
         {{ name: "SEQ" data_type: TYPE_INT64 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: {count} }} ]
parameters {{ key: "input_sleep" value {{ string_value: "{input_sleep}" }} }}
parameters {{ key: "sleep_ms" value {{ string_value: "{sleep_ms}" }} }}
parameters {{ key: "log_path" value {{ string_value: "{log}" }} }}
{scheduling}
'''


def write_repo(root: pathlib.Path, models: dict[str, dict]) -> pathlib.Path:
    """``models``: name -> {max_batch, sleep_ms, scheduling (pbtxt text), count (instances),
    input_sleep (sleep INPUT0's first value in ms)}."""
    repo = root / "repo"
    for name, spec in models.items():
        d = repo / name / "1"
        d.mkdir(parents=True)
        (d / "model.py").write_text(MODEL_PY)
        (repo / name / "config.pbtxt").write_text(CONFIG.format(
            name=name, max_batch=spec.get("max_batch", 8), sleep_ms=spec.get("sleep_ms", 0),
            log=root / f"{name}.log", scheduling=spec.get("scheduling", ""),
            count=spec.get("count", 1), input_sleep="1" if spec.get("input_sleep") else "0"))
    return repo


def events(root: pathlib.Path, name: str) -> list[dict]:
    """Every event the model ``name`` logged so far."""
    path = root / f"{name}.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def seen_ids(root: pathlib.Path, name: str) -> set[str]:
    return {i for e in events(root, name) if e["event"] == "exec" for i in e["ids"]}


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
