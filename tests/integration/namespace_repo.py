"""Two model repositories for --model-namespacing tests, after Triton's
qa/L0_model_namespacing layouts (our own models): ``addsub`` and ``subadd``.

- ``composing_model`` is in both: OUTPUT0/OUTPUT1 = a+b/a-b in addsub, a-b/a+b in
  subadd; its ORIGIN output is ``args["model_name"]|args["model_repository"]``.
- ``simple_addsub`` (addsub) and ``simple_subadd`` (subadd) are ensembles of one step
  naming ``composing_model``: each must run its own repository's copy.
- ``simple_ensemble`` is in both (an ensemble of ``composing_addsub`` in addsub, of
  ``composing_subadd`` in subadd, each unique).
- ``bls`` (addsub) calls the model named by its NAME input through BLS and answers its
  OUTPUT0, or the BLS error's text in ERROR (``ready:<name>``: what
  ``pb_utils.is_model_ready`` says, or its exception's text).
"""
from __future__ import annotations

import pathlib

IO = '''input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] },
        { name: "INPUT1" data_type: TYPE_INT32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 4 ] },
         { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 4 ] },
         { name: "ORIGIN" data_type: TYPE_STRING dims: [ 1 ] } ]
'''

MODEL_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.origin = args["model_name"] + "|" + args["model_repository"]

    def execute(self, requests):
        out = []
        for r in requests:
            a = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(r, "INPUT1").as_numpy()
            first, second = {first}, {second}
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", first.astype(np.int32)),
                pb_utils.Tensor("OUTPUT1", second.astype(np.int32)),
                pb_utils.Tensor("ORIGIN", np.array([self.origin.encode()], dtype=object))]))
        return out
'''

BLS_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            name = pb_utils.get_input_tensor_by_name(r, "NAME").as_numpy()[0].decode()
            if name.startswith("ready:"):        # pb_utils.is_model_ready(<name>)
                try:
                    text = str(pb_utils.is_model_ready(name[len("ready:"):]))
                except Exception as exc:  # noqa: BLE001 - the test reads the message
                    text = str(exc)
                out.append(pb_utils.InferenceResponse([
                    pb_utils.Tensor("OUTPUT0", np.zeros(4, np.int32)),
                    pb_utils.Tensor("ERROR", np.array([text.encode()], dtype=object))]))
                continue
            a = np.arange(4, dtype=np.int32)
            answer = pb_utils.InferenceRequest(
                model_name=name, requested_output_names=["OUTPUT0"],
                inputs=[pb_utils.Tensor("INPUT0", a), pb_utils.Tensor("INPUT1", a)]).exec()
            error = answer.error().message() if answer.has_error() else ""
            result = (np.zeros(4, np.int32) if answer.has_error() else
                      pb_utils.get_output_tensor_by_name(answer, "OUTPUT0").as_numpy())
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", result.astype(np.int32)),
                pb_utils.Tensor("ERROR", np.array([error.encode()], dtype=object))]))
        return out
'''

BLS_CONFIG = '''name: "bls"
backend: "python"
input [ { name: "NAME" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 4 ] },
         { name: "ERROR" data_type: TYPE_STRING dims: [ 1 ] } ]
'''

ADD, SUB = "a + b", "a - b"


def _python(repo: pathlib.Path, name: str, first: str, second: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n{IO}')
    (repo / name / "1" / "model.py").write_text(MODEL_PY.format(first=first, second=second))


def _ensemble(repo: pathlib.Path, name: str, step: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    maps = ", ".join(f'{{ key: "{t}" value: "{t}" }}' for t in ("INPUT0", "INPUT1"))
    outs = ", ".join(f'{{ key: "{t}" value: "{t}" }}' for t in ("OUTPUT0", "OUTPUT1", "ORIGIN"))
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nplatform: "ensemble"\n{IO}'
        f'ensemble_scheduling {{ step [ {{ model_name: "{step}" model_version: -1 '
        f'input_map [ {maps} ] output_map [ {outs} ] }} ] }}\n')


def write(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """The two repositories under ``root``: (addsub, subadd)."""
    addsub, subadd = root / "addsub_repo", root / "subadd_repo"
    for repo, (first, second), kind in ((addsub, (ADD, SUB), "addsub"),
                                        (subadd, (SUB, ADD), "subadd")):
        _python(repo, "composing_model", first, second)
        _python(repo, f"composing_{kind}", first, second)
        _ensemble(repo, f"simple_{kind}", "composing_model")
        _ensemble(repo, "simple_ensemble", f"composing_{kind}")
    (addsub / "bls" / "1").mkdir(parents=True)
    (addsub / "bls" / "config.pbtxt").write_text(BLS_CONFIG)
    (addsub / "bls" / "1" / "model.py").write_text(BLS_PY)
    return addsub, subadd
