"""Tiny Python-backend models written into a tmp repository by integration tests.

Every model runs the same ``model.py``: output i is a copy of input i (in
config order), so a test can see exactly what the server handed the model.
"""
from __future__ import annotations

import pathlib

MODEL_PY = '''
import json
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.pairs = [(i["name"], o["name"]) for i, o in zip(cfg["input"], cfg["output"])]

    def execute(self, requests):
        responses = []
        for r in requests:
            outs = [pb_utils.Tensor(o, pb_utils.get_input_tensor_by_name(r, i).as_numpy())
                    for i, o in self.pairs]
            responses.append(pb_utils.InferenceResponse(output_tensors=outs))
        return responses
'''


def echo_model(repo: pathlib.Path, name: str, dtype: str, dims: str, max_batch: int = 0,
               inputs: int = 1, out_extra: str = "", files: dict | None = None) -> pathlib.Path:
    """``repo/name`` echoing ``inputs`` tensors IN<i> -> OUT<i> of ``dtype``/``dims``."""
    d = repo / name
    (d / "1").mkdir(parents=True)
    (d / "1" / "model.py").write_text(MODEL_PY)
    ins = ", ".join(f'{{ name: "IN{i}" data_type: {dtype} dims: {dims} }}' for i in range(inputs))
    outs = ", ".join(f'{{ name: "OUT{i}" data_type: {dtype} dims: {dims} {out_extra} }}'
                     for i in range(inputs))
    (d / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {max_batch}\n'
        f"input [ {ins} ]\noutput [ {outs} ]\n"
        'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    for rel, text in (files or {}).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d
