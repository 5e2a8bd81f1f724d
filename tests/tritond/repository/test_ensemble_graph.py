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
           "in ensemble e, ensemble tensor INPUT1: inconsistent data type: TYPE_INT32 is "
           "inferred from model e while TYPE_FP32 is inferred from model add_sub")


def test_shape_mismatch_of_an_ensemble_output():
    _fails(_ens(_step(), out0_dims="5"), {"add_sub": ADD_SUB},
           "in ensemble e, ensemble tensor OUT0: inconsistent shape: [5] is inferred from "
           "model e while [4] is inferred from model add_sub")


def test_unknown_model_input_or_output_and_unmapped_input():
    _fails(_ens(_step(ins=IN.replace('key: "INPUT1"', 'key: "NOPE"'))), {"add_sub": ADD_SUB},
           "in ensemble e, ensemble tensor INPUT1 is mapping to non-existing input NOPE in "
           "model add_sub")
    _fails(_ens(_step(outs=OUT.replace('key: "OUTPUT1"', 'key: "NOPE"'))), {"add_sub": ADD_SUB},
           "in ensemble e, ensemble tensor OUT1 is mapped from non-existing output NOPE in "
           "model add_sub")
    _fails(_ens(_step(ins='input_map { key: "INPUT0" value: "INPUT0" }')), {"add_sub": ADD_SUB},
           "in ensemble e, input INPUT1 in model add_sub is not mapped to any ensemble tensors")


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
           "in ensemble e, step of model 'add_sub' receives inputs originated from different "
           "decoupled models")


def test_ensemble_outputs_from_two_origins_are_refused():
    two = _ens(_step("dec", outs='output_map { key: "OUTPUT0" value: "OUT0" }') + ", " +
               _step(outs='output_map { key: "OUTPUT1" value: "OUT1" }'))
    _fails(two, {"dec": DECOUPLED, "add_sub": ADD_SUB},
           "in ensemble e, step of model 'e' receives inputs originated from different "
           "decoupled models")    # Triton's text: the ensemble's outputs are its last "step"


def test_graph_errors_name_the_step():
    cycle = _ens(_step(outs='output_map { key: "OUTPUT0" value: "X" } '
                            'output_map { key: "OUTPUT1" value: "OUT1" }') + ", " +
                 _step(ins='input_map { key: "INPUT0" value: "X" } '
                           'input_map { key: "INPUT1" value: "Y" }',
                       outs='output_map { key: "OUTPUT0" value: "OUT0" } '
                            'output_map { key: "OUTPUT1" value: "Y" }'))
    with pytest.raises(TritonError) as err:
        check_graph(cycle)
    assert err.value.message == ("output 'OUT0' for ensemble 'e' is not written: at least one "
                                 "of its depending tensors, 'Y', is not connected")
    unmapped = _ens(_step(ins='input_map { key: "INPUT0" value: "GHOST" } '
                              'input_map { key: "INPUT1" value: "INPUT1" }'))
    with pytest.raises(TritonError) as err:
        check_graph(unmapped)
    assert err.value.message == "ensemble input 'INPUT0' for ensemble e' is not used"


def _graph_error(steps: str, io: str = "") -> str:
    cfg = parse_pbtxt('name: "e" platform: "ensemble" ' + (io or IO2 % (
        "TYPE_FP32", "OUT0", "4", "OUT1")) + f"ensemble_scheduling {{ step [ {steps} ] }}", "e")
    with pytest.raises(TritonError) as err:
        check_graph(cfg)
    return err.value.message


@pytest.mark.parametrize("steps,message", [
    ('{ input_map { key: "INPUT0" value: "INPUT0" } }',
     "must specify 'model_name' in step 0 of ensemble 'e'"),
    (_step() + ', { model_name: "add_sub" output_map { key: "OUTPUT0" value: "X" } }',
     "must specify 'input_map' in step 1 of ensemble 'e'"),
    ('{ model_name: "add_sub" input_map { key: "INPUT0" value: "INPUT0" } }',
     "must specify 'output_map' in step 0 of ensemble 'e'"),
    (_step() + ", " + _step(outs='output_map { key: "OUTPUT0" value: "OUT0" }'),
     "ensemble tensor 'OUT0' can appear in an output map only once for ensemble 'e' step 1"),
    (_step(outs='output_map { key: "OUTPUT0" value: "OUT0" } '
                'output_map { key: "OUTPUT1" value: "SPARE" }'),
     "ensemble output 'OUT1' for ensemble e' is not used"),
    (_step(outs=OUT + ' output_map { key: "OUTPUT2" value: "SPARE" }'),
     "ensemble tensor 'SPARE' is unused in ensemble 'e'"),
])
def test_graph_errors_are_tritons(steps, message):
    assert _graph_error(steps) == message


def test_an_output_behind_an_unconnected_tensor_is_not_written():
    two = (_step(outs='output_map { key: "OUTPUT0" value: "OUT0" } '
                      'output_map { key: "OUTPUT1" value: "MID" }') + ", " +
           _step(ins='input_map { key: "INPUT0" value: "MID" } '
                     'input_map { key: "INPUT1" value: "GHOST" }',
                 outs='output_map { key: "OUTPUT0" value: "OUT1" }'))
    assert _graph_error(two) == ("output 'OUT1' for ensemble 'e' is not written: at least one "
                                 "of its depending tensors, 'GHOST', is not connected")


def test_batch_size_beyond_a_step_is_tritons_text():
    cfg = _ens(_step())
    cfg.max_batch_size = 8
    small = spec('name: "add_sub" backend: "python" max_batch_size: 4'
                 + IO2 % ("TYPE_FP32", "OUTPUT0", "4", "OUTPUT1"))
    _fails(cfg, {"add_sub": small}, "ensemble e allows maximum batch size 8, but it contains "
           "model add_sub which only allows maximum batch size to be 4")
