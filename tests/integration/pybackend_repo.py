"""A Python-based backend (``<backend-directory>/<name>/model.py``) and the models that
name it, for tests/integration/test_python_based_backends.py."""
from __future__ import annotations

import json
import pathlib

# The backend: its IO from auto_complete_config (as Triton's QA add_sub backend), its
# factor from model.json in the model's version directory (pb_utils.get_model_dir(), as
# Triton's vLLM backend reads its engine args); ARGS tells the test what it was given.
BACKEND_PY = '''
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from helper import SIGN     # a module shipped beside model.py


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        names = {i["name"] for i in config.as_dict()["input"]}
        if "IN0" not in names:
            config.add_input({"name": "IN0", "data_type": "TYPE_FP32", "dims": [4]})
            config.add_output({"name": "OUT0", "data_type": "TYPE_FP32", "dims": [4]})
            config.add_output({"name": "ARGS", "data_type": "TYPE_STRING", "dims": [1]})
        return config

    def initialize(self, args):
        with open(os.path.join(pb_utils.get_model_dir(), "model.json")) as f:
            self.factor = SIGN * json.load(f)["factor"]
        seen = {k: v for k, v in args.items() if k != "model_config"}
        config = json.loads(args["model_config"])
        seen.update(config_name=config["name"], runtime=config["runtime"],
                    parameters=config["parameters"],
                    default_model_filename=config["default_model_filename"],
                    model_dir=pb_utils.get_model_dir(), module=__name__, file=__file__)
        self.seen = json.dumps(seen)

    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN0").as_numpy()
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUT0", (x * self.factor).astype(np.float32)),
                pb_utils.Tensor("ARGS", np.array([self.seen.encode()], dtype=object))]))
        return out
'''

# The bundled Python backend's own model, reporting the same things
PLAIN_PY = BACKEND_PY.replace("from helper import SIGN     # a module shipped beside model.py",
                              "SIGN = 1")

# A "python" Python-based backend: never used, the built-in Python backend wins (Triton
# finds its libtriton_python.so in <backend-directory>/python first)
DECOY_PY = "raise RuntimeError('the decoy python/model.py was imported')\n"


# Backends whose load fails, and their models (checked against Triton 2.51)
NO_CLASS_PY = "class NotIt:\n    pass\n"
SYNTAX_PY = "class TritonPythonModel:\n    def initialize(self, args)\n        pass\n"
BOOM_PY = 'def f():\n    raise RuntimeError("boom at import")\n\nf()\n'   # as run under Triton

# A decoupled backend: three responses a request, then the final flag alone
STREAM_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN0").as_numpy()
            sender = request.get_response_sender()
            for i in range(3):
                sender.send(pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUT0", (x * (i + 1)).astype(np.float32))]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''

IO = ('input { name: "IN0" data_type: TYPE_FP32 dims: [4] }\n'
      'output { name: "OUT0" data_type: TYPE_FP32 dims: [4] }\n')


def source(directory: pathlib.Path, name: str, text: str) -> None:
    """A one-file backend ``<directory>/<name>/model.py``."""
    (directory / name).mkdir(parents=True)
    (directory / name / "model.py").write_text(text)


def backend(directory: pathlib.Path, name: str, sign: int = 1) -> pathlib.Path:
    d = directory / name
    d.mkdir(parents=True)
    (d / "model.py").write_text(BACKEND_PY)
    (d / "helper.py").write_text(f"SIGN = {sign}\n")
    return d


def model(repo: pathlib.Path, name: str, config: str, factors: dict[int, float],
          model_py: str | None = None) -> pathlib.Path:
    d = repo / name
    for version, factor in factors.items():
        (d / str(version)).mkdir(parents=True)
        (d / str(version) / "model.json").write_text(json.dumps({"factor": factor}))
        if model_py is not None:
            (d / str(version) / "model.py").write_text(model_py)
    (d / "config.pbtxt").write_text(config)
    return d
