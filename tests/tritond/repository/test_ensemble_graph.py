"""Ensemble checks at load: graph shape and steps against their composing models."""
from __future__ import annotations

import pytest

from tritond.errors import Code, TritonError
from tritond.repository.ensemble_graph import check_graph, check_steps
from tritond.repository.modelconfig import parse_pbtxt

from tests.specs import spec

IO2 = '''
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
        { name: "INPUT1" data_type: %s dims: [ 4 ] } ]
output [ { name: "%s" data_type: TYPE_FP32 dims: [ %s ] },
         { name: "%s" data_type: TYPE_FP32 dims: [ 4 ] } ]
'''
ADD_SUB = spec('name: "add_sub" backend: "python"' + IO2 % ("TYPE_FP32", "OUTPUT0", "4", "OUTPUT1"))
DECOUPLED = spec('name: "dec" backend: "python" model_transaction_policy { decoupled: true }'
                 + IO2 % ("TYPE_FP32", "OUTPUT0", "4", "OUTPUT1"))
IN = 'input_map { key: "INPUT0" value: "INPUT0" } input_map { key: "INPUT1" value: "INPUT1" }'
OUT = 'output_map { key: "OUTPUT0" value: "OUT0" } output_map { key: "OUTPUT1" value: "OUT1" }'


def _ens(steps: str, in1: str = "TYPE_FP32", out0_dims: str = "4"):
    return parse_pbtxt(f'name: "e" platform: "ensemble"' + IO2 % (in1, "OUT0", out0_dims, "OUT1")
                       + f"ensemble_scheduling {{ step [ {steps} ] }}", "e")


def _step(model: str = "add_sub", ins: str = IN, outs: str = OUT) -> str:
    return f'{{ model_name: "{model}" model_version: -1 {ins} {outs} }}'


def _fails(cfg, specs, words: str) -> None:
    with pytest.raises(TritonError) as err:
        check_steps(cfg, specs)
    assert err.value.code == Code.INVALID_ARG
    assert words in err.value.message, err.value.message


def test_a_valid_ensemble_passes():
    check_steps(_ens(_step()), {"add_sub": ADD_SUB})


def test_datatype_mismatch_names_the_step_and_tensor():
    _fails(_ens(_step(), in1="TYPE_INT32"), {"add_sub": ADD_SUB},
           "in ensemble 'e', step 0 ('add_sub'): tensor 'INPUT1' is INT32 (ensemble input "
           "'INPUT1') but input 'INPUT1' expects FP32")


def test_shape_mismatch_of_an_ensemble_output():
    _fails(_ens(_step(), out0_dims="5"), {"add_sub": ADD_SUB},
           "tensor 'OUT0' has shape [4] (output 'OUTPUT0' of step 0 ('add_sub')) but ensemble "
           "output 'OUT0' expects [5]")


def test_unknown_model_input_or_output_and_unmapped_input():
    _fails(_ens(_step(ins=IN.replace('key: "INPUT1"', 'key: "NOPE"'))), {"add_sub": ADD_SUB},
           "step 0 ('add_sub'): the model has no input 'NOPE'")
    _fails(_ens(_step(outs=OUT.replace('key: "OUTPUT1"', 'key: "NOPE"'))), {"add_sub": ADD_SUB},
           "step 0 ('add_sub'): the model has no output 'NOPE'")
    _fails(_ens(_step(ins='input_map { key: "INPUT0" value: "INPUT0" }')), {"add_sub": ADD_SUB},
           "step 0 ('add_sub'): model input 'INPUT1' is not mapped")


def test_a_decoupled_step_makes_the_ensemble_decoupled():
    assert check_steps(_ens(_step("dec")), {"dec": DECOUPLED}) is True
    assert check_steps(_ens(_step()), {"add_sub": ADD_SUB}) is False
    # downstream of a decoupled step, a plain step keeps the ensemble decoupled
    chain = _ens(_step("dec", outs='output_map { key: "OUTPUT0" value: "S" } '
                                   'output_map { key: "OUTPUT1" value: "D" }') + ", " +
                 _step(ins='input_map { key: "INPUT0" value: "S" } '
                           'input_map { key: "INPUT1" value: "D" }'))
    assert check_steps(chain, {"dec": DECOUPLED, "add_sub": ADD_SUB}) is True


def test_a_step_mixing_a_decoupled_output_with_other_tensors_is_refused():
    # Triton's rule (ensemble_utils.cc): a step's inputs come from one decoupled origin
    mixed = _ens(_step("dec", outs='output_map { key: "OUTPUT0" value: "S" } '
                                   'output_map { key: "OUTPUT1" value: "OUT1" }') + ", " +
                 _step(ins='input_map { key: "INPUT0" value: "S" } '
                           'input_map { key: "INPUT1" value: "INPUT1" }',
                       outs='output_map { key: "OUTPUT0" value: "OUT0" } '
                            'output_map { key: "OUTPUT1" value: "X" }'))
    _fails(mixed, {"dec": DECOUPLED, "add_sub": ADD_SUB},
           "in ensemble 'e', step 1 ('add_sub') receives inputs originated from different "
           "decoupled models")


def test_ensemble_outputs_from_two_origins_are_refused():
    two = _ens(_step("dec", outs='output_map { key: "OUTPUT0" value: "OUT0" }') + ", " +
               _step(outs='output_map { key: "OUTPUT1" value: "OUT1" }'))
    _fails(two, {"dec": DECOUPLED, "add_sub": ADD_SUB},
           "in ensemble 'e', the ensemble outputs come from different decoupled models")


def test_graph_errors_name_the_step():
    cycle = _ens(_step(outs='output_map { key: "OUTPUT0" value: "X" } '
                            'output_map { key: "OUTPUT1" value: "OUT1" }') + ", " +
                 _step(ins='input_map { key: "INPUT0" value: "X" } '
                           'input_map { key: "INPUT1" value: "Y" }',
                       outs='output_map { key: "OUTPUT0" value: "OUT0" } '
                            'output_map { key: "OUTPUT1" value: "Y" }'))
    with pytest.raises(TritonError) as err:
        check_graph(cycle)
    assert "contains a cycle" in err.value.message or "reads tensor" in err.value.message
    unmapped = _ens(_step(ins='input_map { key: "INPUT0" value: "GHOST" } '
                              'input_map { key: "INPUT1" value: "INPUT1" }'))
    with pytest.raises(TritonError) as err:
        check_graph(unmapped)
    assert "step 0 ('add_sub') reads tensor 'GHOST'" in err.value.message
