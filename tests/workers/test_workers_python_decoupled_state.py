"""A decoupled Python model's state outputs (workers/python/decoupled_state.py): which
names are refused, and the response that names one becomes Triton's error; through a
server: tests/integration/test_decoupled_state.py."""
from __future__ import annotations

import numpy as np

from tritond.workers.python import decoupled_state, pb_utils

from tests.specs import spec_from_dict


def _spec(decoupled=True, listed=False, states=True):
    outputs = [{"name": "OUT", "data_type": "TYPE_INT32", "dims": [1]}]
    if listed:
        outputs.append({"name": "S_OUT", "data_type": "TYPE_INT32", "dims": [1]})
    seq = {"state": [{"input_name": "S_IN", "output_name": "S_OUT", "data_type": "TYPE_INT32",
                      "dims": [1]}]} if states else {}
    return spec_from_dict({
        "name": "m", "backend": "python", "max_batch_size": 0,
        "input": [{"name": "IN", "data_type": "TYPE_INT32", "dims": [1]}], "output": outputs,
        "model_transaction_policy": {"decoupled": decoupled}, "sequence_batching": seq})


def test_only_unlisted_state_outputs_of_a_decoupled_model_are_refused():
    assert decoupled_state.stray(_spec(), "m") == {
        "S_OUT": "unexpected inference output 'S_OUT' for model 'm'"}
    assert decoupled_state.stray(_spec(decoupled=False), "m") == {}
    assert decoupled_state.stray(_spec(listed=True), "m") == {}
    assert decoupled_state.stray(_spec(states=False), "m") == {}


def test_a_response_naming_a_state_output_is_replaced_by_its_error():
    sent = []
    send = decoupled_state.guard(lambda r, final: sent.append((r, final)),
                                 decoupled_state.stray(_spec(), "m"))
    one = np.array([1], np.int32)
    plain = pb_utils.InferenceResponse([pb_utils.Tensor("OUT", one)])
    send(plain, False)
    send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", one),
                                     pb_utils.Tensor("S_OUT", one)]), True)
    send(None, True)
    assert sent[0] == (plain, False) and sent[2] == (None, True)
    bad, final = sent[1]
    assert final and bad.has_error() and bad.output_tensors() == []
    assert bad.error().code() == pb_utils.TritonError.INVALID_ARG
    assert bad.error().message() == "unexpected inference output 'S_OUT' for model 'm'"
