"""A decoupled Python model with implicit state answers with its requested outputs only
(workers/python/decoupled_state.py), as Triton's response sender prunes them; through a
server: tests/integration/test_decoupled_state.py."""
from __future__ import annotations

from tritond import messages
from tritond.workers.python import decoupled_state

from tests.specs import spec_from_dict


def _spec(decoupled=True, states=True):
    seq = {"state": [{"input_name": "S_IN", "output_name": "S_OUT", "data_type": "TYPE_INT32",
                      "dims": [1]}]} if states else {}
    return spec_from_dict({
        "name": "m", "backend": "python", "max_batch_size": 0,
        "input": [{"name": "IN", "data_type": "TYPE_INT32", "dims": [1]}],
        "output": [{"name": "A", "data_type": "TYPE_INT32", "dims": [1]},
                   {"name": "B", "data_type": "TYPE_INT32", "dims": [1]}],
        "model_transaction_policy": {"decoupled": decoupled}, "sequence_batching": seq})


def test_only_decoupled_models_with_state_are_pruned():
    assert decoupled_state.pruned(_spec())
    assert not decoupled_state.pruned(_spec(decoupled=False))
    assert not decoupled_state.pruned(_spec(states=False))


def test_the_requested_outputs_are_those_named_else_every_config_output():
    req = messages.Request(1, "fe", "m", 1, [], outputs=[messages.OutputSpec("B")])
    assert decoupled_state.requested(req, _spec()) == ["B"]
    req.outputs = []
    assert decoupled_state.requested(req, _spec()) == ["A", "B"]     # never S_OUT
