"""Triton's PyTorch IO naming rules (no torch needed)."""
from __future__ import annotations

import pytest

from tritond.errors import TritonError
from tritond.workers import pytorchio


def test_inputs_bind_by_forward_argument_names_first():
    assert pytorchio.input_positions("m", ["y", "x"], ["x", "y"]) == {"y": 1, "x": 0}


def test_inputs_bind_by_index_suffix():
    assert pytorchio.input_positions("m", ["INPUT__1", "INPUT__0"], ["a", "b"]) == \
        {"INPUT__1": 1, "INPUT__0": 0}


def test_inputs_fall_back_to_config_order():
    assert pytorchio.input_positions("m", ["B", "A"], ["a", "b"]) == {"B": 0, "A": 1}


@pytest.mark.parametrize("names, words", [
    (["INPUT__0"], "configuration expects 1 inputs, model provides 2"),
    (["INPUT__0", "INPUT__2"], "input 'INPUT__2' has index 2 but the model has 2 inputs"),
    (["A__0", "B__0"], "inputs 'A__0' and 'B__0' both have index 0"),
])
def test_input_errors(names, words):
    with pytest.raises(TritonError) as err:
        pytorchio.input_positions("m", names, ["a", "b"])
    assert words in err.value.message
    assert "model 'm'" in err.value.message


def test_outputs_by_index_suffix_or_config_order():
    assert pytorchio.output_positions("m", ["OUTPUT__1", "OUTPUT__0"]) == \
        {"OUTPUT__1": 1, "OUTPUT__0": 0}
    assert pytorchio.output_positions("m", ["sum", "diff"]) == {"sum": 0, "diff": 1}
    with pytest.raises(TritonError, match="output 'OUT__5' has index 5"):
        pytorchio.output_positions("m", ["OUT__5"])


def test_flags():
    assert pytorchio.flag({}, "INFERENCE_MODE", True) is True
    assert pytorchio.flag({"INFERENCE_MODE": "False"}, "INFERENCE_MODE", True) is False
    assert pytorchio.flag({"X": "true"}, "X", False) is True
    with pytest.raises(TritonError, match="parameter 'X' must be 'true' or 'false', got 'maybe'"):
        pytorchio.flag({"X": "maybe"}, "X", False)


def test_sequence_controls_and_states_bind_by_their_index_suffix():
    """Triton's PyTorch backend: controls and states count as forward() arguments and bind
    by ``__<index>``; a state's output is that element of the results."""
    args = ["x", "start", "corrid", "state"]
    positions = pytorchio.input_positions("m", ["INPUT__0"], args, extra=3)
    assert positions == {"INPUT__0": 0}
    positions.update(pytorchio.control_positions("m", ["START__1", "CORRID__2"]))
    ins, outs = pytorchio.state_positions("m", ["INPUT__0"], args, ["OUTPUT__0"],
                                          [("STATE_IN__3", "STATE_OUT__1")])
    assert (ins, outs) == ({"STATE_IN__3": 3}, {"STATE_OUT__1": 1})
    positions.update(ins)
    assert pytorchio.checked_inputs("m", positions, 4) == {
        "INPUT__0": 0, "START__1": 1, "CORRID__2": 2, "STATE_IN__3": 3}
    with pytest.raises(TritonError, match="configuration expects 2 inputs, model provides 4"):
        pytorchio.input_positions("m", ["INPUT__0"], args, extra=1)
    with pytest.raises(TritonError, match="both have index 1"):
        pytorchio.checked_inputs("m", {"INPUT__1": 1, "START__1": 1}, 2)


@pytest.mark.parametrize("inputs, outputs, states, words", [
    (["INPUT__0"], ["OUTPUT__0"], [("STATE", "S__1")], "state 'STATE' does not follow"),
    (["INPUT__0"], ["OUTPUT__0"], [("S__1", "OUT_STATE")], "state 'OUT_STATE' does not follow"),
    (["INPUT"], ["OUTPUT__0"], [("S__1", "T__1")], "not all inputs and outputs follow"),
    (["INPUT__0"], ["OUTPUT"], [("S__1", "T__1")], "not all inputs and outputs follow"),
    (["x"], ["OUTPUT__0"], [("S__1", "T__1")], "not all inputs and outputs follow"),
])
def test_state_naming_errors_are_tritons(inputs, outputs, states, words):
    with pytest.raises(TritonError) as err:
        pytorchio.state_positions("m", inputs, ["x", "s"], outputs, states)
    assert words in err.value.message and "PyTorch model 'm' is using sequence batching with "\
        "state" in err.value.message


def test_a_control_input_without_an_index_suffix_is_refused_as_triton():
    with pytest.raises(TritonError) as err:
        pytorchio.control_positions("m", ["START"])
    assert err.value.message == "input 'START' does not follow <name>__<index> naming convention."


def test_a_config_without_outputs_fails_the_load():
    # L0_model_config autofill_noplatform/pytorch/too_few_outputs: Triton's text (the model
    # loaded READY here and answered nothing)
    with pytest.raises(TritonError) as err:
        pytorchio.output_positions("m", [])
    assert err.value.message == ("model configuration must contain at least one output, none "
                                 "were specified")


def test_results_are_checked_against_the_config_as_triton():
    # L0_output_validation: Triton's texts; a wrong datatype was answered as it came
    torch = pytest.importorskip("torch")
    values = [torch.zeros(1, dtype=torch.float32)]
    pytorchio.check_output("m", "OUTPUT__0", 0, values, torch.float32)
    with pytest.raises(TritonError) as err:
        pytorchio.check_output("m", "OUTPUT__0", 0, values, torch.int32)
    assert err.value.message == ("configuration expects datatype TYPE_INT32 for output "
                                 "'OUTPUT__0', model provides TYPE_FP32")
    with pytest.raises(TritonError) as err:
        pytorchio.check_output("m", "OUTPUT__1", 1, values, torch.float32)
    assert err.value.message == ("The output OUTPUT__1 in the model configuration refers to an "
                                 "output index which doesn't exist. This model has 1 outputs")
