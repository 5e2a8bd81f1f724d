"""tritond/sequenceparams.py: an ensemble response's sequence parameters and a step's
override of them, as Triton's ensemble reads and writes them."""
from __future__ import annotations

from tritond.messages import SEQUENCE_END, SEQUENCE_START
from tritond.sequenceparams import override, response_parameters


def test_parameters_word_the_flags_and_keep_a_string_id():
    assert response_parameters(0, 0) == {
        "sequence_id": 0, "sequence_start": False, "sequence_end": False}
    assert response_parameters("abc", SEQUENCE_START | SEQUENCE_END) == {
        "sequence_id": "abc", "sequence_start": True, "sequence_end": True}


def test_an_id_past_int64_goes_out_as_tritons_int64():
    assert response_parameters(2**64 - 1, 0)["sequence_id"] == -1


def test_no_sequence_key_is_no_override():
    assert override({}, 5) is None and override({"other": 1}, 5) is None


def test_an_override_keeps_the_id_it_does_not_name_and_starts_from_no_flags():
    assert override({"sequence_end": True}, 5) == (5, SEQUENCE_END)
    assert override({"sequence_id": "s", "sequence_start": False}, 5) == ("s", 0)
    assert override({"sequence_id": 9, "sequence_start": True}, "x") == (9, SEQUENCE_START)


def test_a_wrong_type_is_tritons_error_text():
    assert override({"sequence_id": 1.5}, 0) == (
        "expected parameter 'sequence_id' to be TRITONSERVER_PARAMETER_INT or "
        "TRITONSERVER_PARAMETER_STRING")
    assert override({"sequence_end": 1}, 0) == (
        "expect parameter 'sequence_end' to be TRITONSERVER_PARAMETER_BOOL")
