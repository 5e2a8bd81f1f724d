"""The warmup's samples (workers/warmup.py): their data, and each malformed sample's error
in Triton's words (checked against Triton 2.51's load failures)."""
from __future__ import annotations

import logging
import struct

import numpy as np
import pytest

from tritond.errors import Code, TritonError, status_text
from tritond.repository import modelconfig, spec_from_config
from tritond.workers import warmup

LOG = logging.getLogger("test.warmup")
IO = ('input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
      '        { name: "IN1" data_type: TYPE_STRING dims: [ 2 ] } ]\n'
      'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
TAG = "[request id: <id_unknown>] "


def inp(key, dtype="TYPE_FP32", dims="[ 4 ]", data="zero_data: true"):
    return f'inputs {{ key: "{key}" value {{ data_type: {dtype} dims: {dims} {data} }} }}'


def file(name, key="IN0"):
    dtype, dims = ("TYPE_FP32", "[ 4 ]") if key == "IN0" else ("TYPE_STRING", "[ 2 ]")
    return inp(key, dtype, dims, f'input_data_file: "{name}"')


ZS = inp("IN1", "TYPE_STRING", "[ 2 ]")


def _spec(samples: str, batch: int = 4, io: str = IO):
    text = f'name: "m"\nbackend: "python"\nmax_batch_size: {batch}\n{io}model_warmup [ {samples} ]'
    return spec_from_config(modelconfig.parse_pbtxt(text, "m"), 1)


def _samples(tmp_path, samples: str, files: dict | None = None, **kw):
    for name, data in (files or {}).items():
        (tmp_path / "warmup").mkdir(exist_ok=True)
        (tmp_path / "warmup" / name).write_bytes(data)
    return warmup.samples(_spec(samples, **kw), str(tmp_path), LOG)


def _error(tmp_path, samples: str, files: dict | None = None, **kw) -> TritonError:
    with pytest.raises(TritonError) as err:
        _samples(tmp_path, samples, files, **kw)
    return err.value


def test_zero_random_and_file_data(tmp_path):
    strings = struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)
    floats = struct.pack("<5f", 1, 2, 3, 4, 5)
    made = _samples(tmp_path, f'{{ name: "z" batch_size: 2 count: 3 {inp("IN0")} {ZS} }},'
                    f'{{ name: "skip" {inp("IN0")} {ZS} }},'
                    f'{{ name: "r" batch_size: 1 {inp("IN0", data="random_data: true")} '
                    f'{inp("IN1", "TYPE_STRING", "[ 2 ]", "random_data: true")} }},'
                    f'{{ name: "f" {file("f")} '
                    f'{file("s", "IN1")} '
                    'batch_size: 1 }', {"f": floats, "s": strings})
    assert [(s.name, s.count, s.batch) for s in made] == [("z", 3, 2), ("r", 1, 1), ("f", 1, 1)]
    zero, rand, data = (s.inputs for s in made)
    assert zero["IN0"].shape == (1, 4) and not zero["IN0"].any()
    assert zero["IN1"].tolist() == [[b"", b""]]
    assert rand["IN0"].dtype == np.float32 and rand["IN0"].shape == (1, 4)
    assert rand["IN1"].tolist() == [[b"", b""]]     # Triton's random BYTES: zero lengths
    assert data["IN0"].tolist() == [[1, 2, 3, 4]]    # the file's first 16 bytes
    assert data["IN1"].tolist() == [[b"ab", b""]]


def test_a_model_without_batching_gets_no_batch_dim_and_unknown_inputs_pass(tmp_path):
    start = inp("START", "TYPE_INT32", "[ 1 ]")
    (s,) = _samples(tmp_path, f'{{ name: "n" batch_size: 1 {inp("IN0")} {ZS} {start} }}',
                    batch=0)
    assert s.inputs["IN0"].shape == (4,)
    assert s.inputs["START"].shape == (1,) and s.inputs["START"].dtype == np.int32
    (s,) = _samples(tmp_path, f'{{ name: "b" batch_size: 1 {inp("IN0")} {ZS} {start} }}')
    assert s.inputs["START"].shape == (1, 1)      # an override input's batch dim (Triton)


@pytest.mark.parametrize("sample, files, code, message", [
    (f'{inp("IN0", dims="[ -1 ]")} {ZS}', None, Code.INVALID_ARG,
     "warmup setting expects all variable-size dimensions are specified for input 'IN0'"),
    (f'{inp("IN0", data="")} {ZS}', None, Code.INVALID_ARG,
     f"{TAG}warmup setting expects input 'IN0' to have input_data_type set"),
    (f'{file("short")} {ZS}', {"short": bytes(8)},
     Code.INVALID_ARG, f"{TAG}warmup setting expects 16 bytes, but the data provided from "
     "shortonly has 8 bytes"),
    (f'{inp("IN0", "TYPE_INT32")} {ZS}', None, Code.INVALID_ARG,
     f"{TAG}inference input 'IN0' data-type is 'INT32', but model 'm' expects 'FP32'"),
    (f'{inp("IN0", dims="[ 5 ]")} {ZS}', None, Code.INVALID_ARG,
     f"{TAG}unexpected shape for input 'IN0' for model 'm'. Expected [-1,4], got [1,5]. NOTE:"),
    (inp("IN0"), None, Code.INVALID_ARG,
     f"{TAG}expected 2 inputs but got 1 inputs for model 'm'. Got input(s) ['IN0'], but "
     "missing required input(s) ['IN1']. Please provide all required input(s)."),
    (f'{inp("IN0")} {file("s", "IN1")}',
     {"s": struct.pack("<I", 50) + b"ab"}, Code.INVALID_ARG,
     f"{TAG}expected 2 string elements for inference input 'IN1' for model 'm', got 1"),
    (f'{inp("IN0")} {file("s", "IN1")}',
     {"s": struct.pack("<III", 0, 0, 0)}, Code.INVALID_ARG,
     f"{TAG}unexpected number of string elements 3 for inference input 'IN1' for model 'm', "
     "expecting 2"),
    (f'{inp("IN0")} {file("s", "IN1")}',
     {"s": struct.pack("<I", 0) + b"\0\0"}, Code.INVALID_ARG,
     f"{TAG}incomplete string length indicator for inference input 'IN1' for model 'm', "
     "expecting 4 bytes but only 2 bytes available."),
])
def test_malformed_samples_fail_with_tritons_text(tmp_path, sample, files, code, message):
    err = _error(tmp_path, f'{{ name: "w" batch_size: 1 {sample} }}', files)
    assert err.code == code
    assert err.message.startswith(message), err.message


def test_a_missing_data_file_is_internal_with_its_path(tmp_path):
    err = _error(tmp_path, f'{{ name: "w" batch_size: 1 '
                           f'{file("absent")} {ZS} }}')
    assert err.code == Code.INTERNAL
    assert err.message == (f"failed to open text file for read {tmp_path}/warmup/absent: "
                           "No such file or directory")


def test_warm_up_failures_read_as_tritons_load_reasons(tmp_path):
    spec = _spec(f'{{ name: "w" batch_size: 1 {inp("IN0", dims="[ -1 ]")} {ZS} }}')
    with pytest.raises(TritonError) as err:
        warmup.warm_up(None, spec, str(tmp_path), "m", 1, "m_0_0", LOG)
    assert status_text(err.value.code, err.value.message) == (   # the version's reason
        "Invalid argument: warmup setting expects all variable-size "
                                 "dimensions are specified for input 'IN0'")
    spec = _spec(f'{{ name: "w" batch_size: 1 {file("x")} '
                 f'{ZS} }}')
    with pytest.raises(TritonError) as err:
        warmup.warm_up(None, spec, str(tmp_path), "m", 1, "m_0_0", LOG)
    assert status_text(err.value.code, err.value.message).startswith(
        "Internal: failed to open text file for read")


def test_no_samples_runs_nothing(tmp_path):
    spec = spec_from_config(modelconfig.parse_pbtxt(f'name: "m"\nbackend: "python"\n{IO}',
                                                     "m"), 1)
    warmup.warm_up(None, spec, str(tmp_path), "m", 1, "m_0_0", LOG)    # no executor needed
