"""tritond/inputrules.py: Triton's input rules, one checker for a client's request (the
frontend, which also checks byte sizes) and for an ensemble step or a BLS call (the
scheduler): each faulty signature gets one text, whoever asks, in one order."""
from __future__ import annotations

import numpy as np
import pytest

from tests.specs import spec_from_dict
from tritond import messages
from tritond.errors import BATCH_NOTE, Code, TritonError
from tritond.frontend.models import ModelVersion
from tritond.frontend.types import InferRequest, InputTensor
from tritond.frontend.validate import check_inputs
from tritond.inputrules import SIGNATURES, InputRules
from tritond.scheduler.config import SchedConfig
from tritond.scheduler.inputcheck import input_error


def _io(name, dt, dims, **kw):
    return {"name": name, "data_type": dt, "dims": dims, **kw}


BATCHED = {"name": "b", "backend": "python", "max_batch_size": 8,
           "input": [_io("A", "TYPE_INT32", [16]), _io("B", "TYPE_FP32", [-1, 2]),
                     _io("S", "TYPE_INT32", [1], is_shape_tensor=True)],
           "output": [_io("Y", "TYPE_INT32", [16])]}
OPTIONAL = {"name": "o", "backend": "python", "max_batch_size": 0,
            "input": [_io("A", "TYPE_INT32", [2]), _io("C", "TYPE_FP32", [3], optional=True)],
            "output": [_io("Y", "TYPE_INT32", [2])]}
TAG = "[request id: r7] "

# (config, signature, text): a request's inputs as (name, datatype, *shape).
CASES = [
    (BATCHED, [("A", "INT32", 1, 16), ("A", "INT32", 1, 16)],
     f"{TAG}input 'A' already exists in request"),
    (BATCHED, [("A", "INT32", 1, 16)],
     f"{TAG}expected 3 inputs but got 1 inputs for model 'b'. Got input(s) ['A'], but missing "
     "required input(s) ['B','S']. Please provide all required input(s)."),
    # the count before the unknown name
    (BATCHED, [("X", "INT32", 1, 16)],
     f"{TAG}expected 3 inputs but got 1 inputs for model 'b'. Got input(s) ['X'], but missing "
     "required input(s) ['A','B','S']. Please provide all required input(s)."),
    # every name before any input's contents; model.cc's text has no request id
    (BATCHED, [("A", "FP32", 1, 16), ("B", "FP32", 1, 4, 2), ("X", "INT32", 1)],
     "unexpected inference input 'X' for model 'b'"),
    (OPTIONAL, [],
     f"{TAG}expected number of inputs between 1 and 2 but got 0 inputs for model 'o'. Got "
     "input(s) [], but missing required input(s) ['A']. Please provide all required "
     "input(s)."),
    # Triton's order (checked against 2.51): each input's name and batch dimension, then
    # the batch size, before any input's datatype and shape; the missing one last
    (BATCHED, [("A", "FP32", 1, 16), ("B", "FP32", 2, 4, 2), ("S", "INT32", 1)],
     f"{TAG}input 'B' batch size does not match other inputs for 'b'"),
    (BATCHED, [("A", "INT32", 9, 15), ("B", "FP32", 9, 4, 2), ("S", "INT32", 1)],
     f"{TAG}inference request batch-size must be <= 8 for 'b'"),
    (OPTIONAL, [("C", "INT32", 3)],
     f"{TAG}inference input 'C' data-type is 'INT32', but model 'o' expects 'FP32'"),
    (BATCHED, [("A", "FP32", 1, 16), ("B", "FP32", 1, 4, 2), ("S", "INT32", 1)],
     f"{TAG}inference input 'A' data-type is 'FP32', but model 'b' expects 'INT32'"),
    (BATCHED, [("A", "INT32", 1, 16), ("B", "FP32", 1, -1, 2), ("S", "INT32", 1)],
     f"{TAG}All input dimensions should be specified for input 'B' for model 'b', got "
     "[1,-1,2]"),
    (BATCHED, [("A", "INT32", -1, 16), ("B", "FP32", -1, 4, 2), ("S", "INT32", 1)],
     f"{TAG}All input dimensions should be specified for input 'A' for model 'b', got "
     "[-1,16]"),
    (BATCHED, [("A", "INT32"), ("B", "FP32", 1, 4, 2), ("S", "INT32", 1)],
     f"{TAG}input 'A' has no shape but model requires batch dimension for 'b'"),
    (BATCHED, [("A", "INT32", 1, 16), ("B", "FP32", 2, 4, 2), ("S", "INT32", 1)],
     f"{TAG}input 'B' batch size does not match other inputs for 'b'"),
    (BATCHED, [("A", "INT32", 1, 15), ("B", "FP32", 1, 4, 2), ("S", "INT32", 1)],
     f"{TAG}unexpected shape for input 'A' for model 'b'. Expected [-1,16], got [1,15]. "
     + BATCH_NOTE),
    (BATCHED, [("A", "INT32", 1, 16), ("B", "FP32", 1, 4, 2), ("S", "INT32", 2)],
     f"{TAG}unexpected shape for input 'S' for model 'b'. Expected [1], got [2]. "
     + BATCH_NOTE),
    (OPTIONAL, [("A", "INT32", 1, 2)],
     f"{TAG}unexpected shape for input 'A' for model 'o'. Expected [2], got [1,2]. "),
    (BATCHED, [("A", "INT32", 9, 16), ("B", "FP32", 9, 4, 2), ("S", "INT32", 1)],
     f"{TAG}inference request batch-size must be <= 8 for 'b'"),
]


def _rules_text(config, signature):
    with pytest.raises(TritonError) as e:
        InputRules(spec_from_dict(config)).check(tuple(signature), "r7")
    assert e.value.code == Code.INVALID_ARG
    return e.value.message


def _frontend_text(config, signature):
    mv = ModelVersion(messages.ModelEntry(config["name"], 1, "READY",
                                          spec=spec_from_dict(config)))
    inputs = []
    for name, datatype, *shape in signature:
        size = 4 * int(np.prod([max(d, 0) for d in shape]))
        inputs.append(InputTensor(name, datatype, list(shape), bytes(size)))
    with pytest.raises(TritonError) as e:
        check_inputs(mv, InferRequest(config["name"], inputs=inputs, id="r7"))
    assert e.value.code == Code.INVALID_ARG
    return e.value.message


def _scheduler_text(config, signature):
    refs = [messages.TensorRef(name=name, dtype=datatype, shape=list(shape), region="r",
                               offset=0, nbytes=0) for name, datatype, *shape in signature]
    error = input_error(SchedConfig(spec_from_dict(config)).rules, refs, "r7")
    assert error is not None and error.code == int(Code.INVALID_ARG)
    return error.message


@pytest.mark.parametrize("config,signature,text", CASES)
def test_each_fault_has_one_text_whoever_checks(config, signature, text):
    assert _rules_text(config, signature) == text
    assert _frontend_text(config, signature) == text
    assert _scheduler_text(config, signature) == text


def test_a_passing_signature_is_remembered_once_and_failures_never():
    rules = InputRules(spec_from_dict(BATCHED))
    good = (("A", "INT32", 2, 16), ("B", "FP32", 2, 5, 2), ("S", "INT32", 1))
    assert rules.check(good, "") == (2, ((4, 32), (4, 20), (4, 1)))
    assert rules.check(good, "") is rules.passed[good]
    for bad in CASES:
        if bad[0] is BATCHED:
            with pytest.raises(TritonError):
                rules.check(tuple(bad[1]), "")
    assert list(rules.passed) == [good]


def test_an_optional_input_in_a_required_ones_place_passes_the_count_as_in_triton():
    """Triton's ValidateRequestInputs (2.51 and core's HEAD) counts the inputs: one optional
    input where the required one is missing is within the bounds and passes; the backend
    meets the missing input."""
    rules = InputRules(spec_from_dict(OPTIONAL))
    assert rules.check((("C", "FP32", 3),), "") == (0, ((4, 3),))


def test_sizes_are_asked_per_input_right_after_its_own_checks():
    """The frontend's byte-size check of input 0 comes before input 1's shape check, as
    in Triton (each input: datatype, shape, then byte size)."""
    rules = InputRules(spec_from_dict(BATCHED))
    asked = []
    bad_b = (("A", "INT32", 1, 16), ("B", "FP32", 1, 4, 3), ("S", "INT32", 1))
    with pytest.raises(TritonError):
        rules.check(bad_b, "", lambda i, size, count: asked.append((i, size, count)))
    assert asked == [(0, 4, 16)]


def test_the_remembered_signatures_are_bounded():
    rules = InputRules(spec_from_dict(BATCHED))
    for n in range(SIGNATURES + 5):
        rules.check((("A", "INT32", 1, 16), ("B", "FP32", 1, n, 2), ("S", "INT32", 1)), "")
    assert 0 < len(rules.passed) <= SIGNATURES


def test_the_frontend_names_an_earlier_inputs_byte_size_first():
    """Triton checks each input's byte size right after its datatype and shape: input A's
    short payload comes before input B's wrong datatype, for a new signature as for a
    remembered one."""
    mv = ModelVersion(messages.ModelEntry("b", 1, "READY", spec=spec_from_dict(BATCHED)))
    short = InputTensor("A", "INT32", [1, 16], bytes(60))
    wrong = InputTensor("B", "INT32", [1, 4, 2], bytes(32))
    s = InputTensor("S", "INT32", [1], bytes(4))
    with pytest.raises(TritonError) as e:
        check_inputs(mv, InferRequest("b", inputs=[short, wrong, s], id="r7"))
    assert e.value.message == (f"{TAG}input byte size mismatch for input 'A' for model 'b'. "
                               "Expected 64, got 60")
    assert mv.signatures == {}
