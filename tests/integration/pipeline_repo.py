"""A model repository for pipeline tests (ensembles, BLS), written into a tmp dir.

Shapes follow Triton's documented examples (our own models, their interfaces):
``add_sub`` (INPUT0, INPUT1 FP32 [4] -> OUTPUT0 = a + b, OUTPUT1 = a - b; as
Triton's python_backend add_sub example), ``identity`` (IN -> OUT), an
add/sub chain ``chain`` (add_sub twice: OUT0 = 2a, OUT1 = 2b), a fan-out/fan-in
DAG ``fanout`` (add_sub -> identity x2 in parallel -> add_sub), BLS models
calling add_sub or an ensemble, synchronously or with ``async_exec``.

``add_sub`` misbehaves on magic values of INPUT0[0]: -1 answers an error
("add_sub refuses -1"), -2 kills its worker, -3 sleeps 0.3 s first.
"""
from __future__ import annotations

import pathlib
import shutil

from tests.server import REPO

ADD_SUB_PY = '''
import os, signal, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            a = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(r, "INPUT1").as_numpy()
            first = float(a.reshape(-1)[0]) if a.size else 0.0
            if first == -2:
                os.kill(os.getpid(), signal.SIGKILL)
            if first == -3:
                time.sleep(0.3)
            if first == -1:
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "add_sub refuses -1", pb_utils.TritonError.INVALID_ARG)))
                continue
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", (a + b).astype(np.float32)),
                pb_utils.Tensor("OUTPUT1", (a - b).astype(np.float32))]))
        return out
'''

IDENTITY_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]
'''

# Which mapping of this worker holds INPUT0 (/proc/self/maps): how a test sees from
# outside that a tensor was passed by reference rather than copied.
WHERE_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


def mapping_of(addr):
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            if lo <= addr < hi:
                return parts[5] if len(parts) > 5 else ""
    return ""


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            where = mapping_of(x.__array_interface__["data"][0])
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("WHERE", np.array([where.encode()], dtype=object))]))
        return out
'''

BLS_PY = '''
import asyncio, json
import numpy as np
import triton_python_backend_utils as pb_utils


def _call(r, target, outs):
    return pb_utils.InferenceRequest(
        model_name=target, requested_output_names=outs,
        inputs=[pb_utils.get_input_tensor_by_name(r, "INPUT0"),
                pb_utils.get_input_tensor_by_name(r, "INPUT1")])


def _answer(resp, names):
    if resp.has_error():
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(
            "BLS call failed: " + resp.error().message()))
    return pb_utils.InferenceResponse([
        pb_utils.Tensor(mine, pb_utils.get_output_tensor_by_name(resp, theirs).as_numpy().copy())
        for mine, theirs in names])


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.mode = cfg["parameters"]["mode"]["string_value"]

    async def execute(self, requests):
        if self.mode == "async":
            return await self._async(requests)
        out = []
        for r in requests:
            params = json.loads(r.parameters())
            if "n" in params:              # async calls after sync ones: the reader hand-over
                out.extend(await self._async([r]))
                continue
            target = params.get("target", "add_sub")
            if target == "where":          # report where the called model read INPUT0
                resp = pb_utils.InferenceRequest(
                    model_name="where", requested_output_names=["WHERE"],
                    inputs=[pb_utils.get_input_tensor_by_name(r, "INPUT0")]).exec()
                where = pb_utils.get_output_tensor_by_name(resp, "WHERE").as_numpy()[0]
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "WHERE " + where.decode())))
                continue
            outs = ["OUT0", "OUT1"] if target in ("chain", "fanout") else ["OUTPUT0", "OUTPUT1"]
            resp = _call(r, target, outs).exec()
            out.append(_answer(resp, zip(["OUTPUT0", "OUTPUT1"], outs)))
        return out

    async def _async(self, requests):
        out = []
        for r in requests:
            n = int(json.loads(r.parameters()).get("n", 4))
            calls = [_call(r, "add_sub", ["OUTPUT0", "OUTPUT1"]).async_exec() for _ in range(n)]
            resps = await asyncio.gather(*calls)
            bad = [x for x in resps if x.has_error()]
            if bad:
                out.append(_answer(bad[0], []))
                continue
            total = sum(pb_utils.get_output_tensor_by_name(x, "OUTPUT0").as_numpy() for x in resps)
            diff = pb_utils.get_output_tensor_by_name(resps[0], "OUTPUT1").as_numpy().copy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", total),
                                                   pb_utils.Tensor("OUTPUT1", diff)]))
        return out
'''

_IO2 = '''
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }},
        {{ name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "{o0}" data_type: TYPE_FP32 dims: [ 4 ] }},
         {{ name: "{o1}" data_type: TYPE_FP32 dims: [ 4 ] }} ]
'''

PYTHON = '''name: "{name}"
backend: "python"
{io}
instance_group [ {{ kind: KIND_CPU count: {count} }} ]
{extra}
'''


def _step(model: str, inputs: dict, outputs: dict) -> str:
    ins = " ".join(f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
    outs = " ".join(f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
    return f'{{ model_name: "{model}" model_version: -1 {ins} {outs} }}'


def ensemble(name: str, steps: list[str], o0: str = "OUT0", o1: str = "OUT1",
             io: str | None = None) -> str:
    return (f'name: "{name}"\nplatform: "ensemble"\n'
            + (io if io is not None else _IO2.format(o0=o0, o1=o1))
            + "ensemble_scheduling { step [ " + ", ".join(steps) + " ] }\n")


ADD_SUB_IN = {"INPUT0": "INPUT0", "INPUT1": "INPUT1"}

CHAIN = ensemble("chain", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "SUM", "OUTPUT1": "DIFF"}),
    _step("add_sub", {"INPUT0": "SUM", "INPUT1": "DIFF"}, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])

FANOUT = ensemble("fanout", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "A", "OUTPUT1": "B"}),
    _step("identity", {"IN": "A"}, {"OUT": "X"}),
    _step("identity", {"IN": "B"}, {"OUT": "Y"}),
    _step("add_sub", {"INPUT0": "X", "INPUT1": "Y"}, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])

# A Python preprocessing step feeding an ONNX model (model_repository/identity_fp32);
# add_sub's OUTPUT1 is left unmapped (a mapped tensor that no step reads is refused at
# load, as Triton: "ensemble tensor ... is unused").
PRE_ONNX = ensemble("pre_onnx", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "SUM"}),
    _step("identity_fp32", {"INPUT0": "SUM"}, {"OUTPUT0": "OUT"})],
    io=_IO2.format(o0="OUT", o1="X").split("output")[0]
    + 'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')

# add_sub's SUM read by ``where``: in the add_sub worker's output arena (by reference).
WHERE_CHAIN = ensemble("where_chain", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "SUM"}),
    _step("where", {"INPUT0": "SUM"}, {"WHERE": "WHERE"})],
    io=_IO2.format(o0="X", o1="Y").split("output")[0]
    + 'output [ { name: "WHERE" data_type: TYPE_STRING dims: [ 1 ] } ]\n')

# Invalid at load: the second step reads an INT32 tensor where add_sub wants FP32.
BAD_TYPES = ensemble("bad_types", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "SUM", "OUTPUT1": "DIFF"}),
    _step("add_sub", {"INPUT0": "SUM", "INPUT1": "DIFF"}, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})],
    io=_IO2.format(o0="OUT0", o1="OUT1").replace(
        'name: "INPUT1" data_type: TYPE_FP32', 'name: "INPUT1" data_type: TYPE_INT32'))

UNKNOWN_MODEL = ensemble("needs_ghost", [
    _step("ghost", ADD_SUB_IN, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])

# add_sub serves version 1 only.
NEEDS_V2 = ensemble("needs_v2", [
    _step("add_sub", ADD_SUB_IN, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"}).replace(
        "model_version: -1", "model_version: 2")])


# ``chain`` as the one step of another ensemble: the scheduler itself requests it, so its
# last step answers the scheduler (the forwarded path) where a client's gets the direct one.
WRAPPED = ensemble("wrapped_chain", [_step("chain", ADD_SUB_IN, {"OUT0": "OUT0", "OUT1": "OUT1"})])

# Two ensembles that use each other: a cycle across ensembles fails both, never hangs.
LOOP = {name: ensemble(name, [_step(other, ADD_SUB_IN, {"OUT0": "OUT0", "OUT1": "OUT1"})])
        for name, other in (("loop_a", "loop_b"), ("loop_b", "loop_a"))}


def write_repo(root: pathlib.Path, with_invalid: bool = True) -> pathlib.Path:
    repo = root / "repo"
    pythons = {
        "add_sub": (ADD_SUB_PY, _IO2.format(o0="OUTPUT0", o1="OUTPUT1"), 2, ""),
        "identity": (IDENTITY_PY, 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                                  'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]',
                     1, ""),
        "where": (WHERE_PY, 'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                            'output [ { name: "WHERE" data_type: TYPE_STRING dims: [ 1 ] } ]',
                  1, ""),
        "bls": (BLS_PY, _IO2.format(o0="OUTPUT0", o1="OUTPUT1"), 1,
                'parameters { key: "mode" value { string_value: "sync" } }'),
        "bls_async": (BLS_PY, _IO2.format(o0="OUTPUT0", o1="OUTPUT1"), 1,
                      'parameters { key: "mode" value { string_value: "async" } }'),
    }
    for name, (code, io, count, extra) in pythons.items():
        d = repo / name / "1"
        d.mkdir(parents=True)
        (d / "model.py").write_text(code)
        (repo / name / "config.pbtxt").write_text(
            PYTHON.format(name=name, io=io, count=count, extra=extra))
    shutil.copytree(REPO / "identity_fp32", repo / "identity_fp32")
    ensembles = {"chain": CHAIN, "wrapped_chain": WRAPPED, "fanout": FANOUT, "pre_onnx": PRE_ONNX,
                 "where_chain": WHERE_CHAIN}
    if with_invalid:
        ensembles.update(bad_types=BAD_TYPES, needs_ghost=UNKNOWN_MODEL, needs_v2=NEEDS_V2,
                         **LOOP)
    for name, text in ensembles.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(text)
    return repo
