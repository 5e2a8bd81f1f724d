"""A direct batch's rows read their slot states in place (issue 11): each state's slot
buffers lie back to back per parity (workers/sequence_state.py), so the state inputs of
consecutive slots at one parity join as one view instead of being concatenated."""
import uuid

import numpy as np
import pytest

from tritond import messages
from tritond.workers.executor import _concatenate
from tritond.workers.sequence import SequenceIO

from tests.specs import spec

Slot = messages.SequenceSlot
START = messages.SEQUENCE_START


@pytest.fixture
def io():
    s = spec('''name: "m" backend: "onnxruntime" max_batch_size: 4
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching { state [ { input_name: "IS" output_name: "OS" data_type: TYPE_FP32
                              dims: [ 5 ] } ] }''')
    made = SequenceIO(s, "", uuid.uuid4().hex, "wtest")
    yield made
    made.close()


def _states(io, slots, flags=0):
    return [io.inputs(messages.Request(i, "fe", "m", 1, [], correlation_id=i + 1, flags=flags),
                      Slot(i))["IS"] for i in slots]


def test_consecutive_slots_at_one_parity_join_as_a_view(io):
    states = _states(io, range(4), START)
    whole = _concatenate(states, io)
    assert whole.shape == (4, 5) and all(np.shares_memory(whole, s) for s in states)
    assert _concatenate(states[1:3], io).shape == (2, 5)


def test_anything_else_is_copied(io):
    states = _states(io, range(4), START)
    for arrays in ([states[0], states[2]], [states[1], states[0]], states[:1]):
        assert io.joined(arrays) is None
    copied = _concatenate([states[0], states[2]], io)
    assert copied.shape == (2, 5) and not np.shares_memory(copied, states[0])
    # slot 1 stepped alone: its parity differs from its neighbours'
    io.keep(Slot(1), 0, {"OS": np.full((1, 5), 2.0, np.float32)})
    after = _states(io, range(3))
    assert io.joined(after) is None and io.joined([after[0], after[2]]) is None
    assert _concatenate(after, io)[1].tolist() == [2.0] * 5
    assert io.joined([np.zeros((1, 5), np.float32), np.zeros((1, 5), np.float32)]) is None


def test_the_next_step_of_all_slots_joins_again(io):
    _states(io, range(4), START)
    for i in range(4):
        io.keep(Slot(i), 0, {"OS": np.full((1, 5), float(i), np.float32)})
    whole = io.joined(_states(io, range(4)))
    assert whole is not None and whole[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
