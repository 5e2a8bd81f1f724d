"""workers/adjacent.py: views lying back to back are joined without a copy; anything
else is left to the caller's copy. And the slot states laid out for it
(sequence_state.SlotStates): a direct batch's rows read and write their states in place."""
import uuid

import numpy as np

from tritond import messages
from tritond.workers.adjacent import joined, joined_dests
from tritond.workers.backend import WorkRequest
from tritond.workers.sequence import SequenceIO

from tests.specs import spec

Slot = messages.SequenceSlot


def _block(rows=3, size=8):
    buf = bytearray(4096)
    return np.frombuffer(buf, np.uint8, rows * size * 4, 64).view(np.float32).reshape(
        (rows, 1, size))


def test_adjacent_rows_join_as_a_view():
    block = _block()
    whole = joined([block[0], block[1], block[2]])
    assert whole.shape == (3, 8) and np.shares_memory(whole, block)
    whole[1, 0] = 5.0
    assert block[1, 0, 0] == 5.0


def test_anything_else_is_not_joined():
    block = _block()
    assert joined([block[0], block[2]]) is None                 # a gap
    assert joined([block[1], block[0]]) is None                 # out of order
    assert joined([block[0]]) is None                           # nothing to join
    assert joined([block[0], _block()[1]]) is None              # another buffer
    assert joined([block[0], block[1].astype(np.float64)]) is None
    assert joined([np.zeros((1, 8), np.float32), np.zeros((1, 8), np.float32)]) is None
    strided = np.zeros((2, 16), np.float32)[:, ::2]
    assert joined([strided[:1], strided[1:]]) is None           # not C-contiguous


def test_adjacent_destinations_join():
    block = _block()
    items = [WorkRequest(None, {}, [], {"OS": memoryview(block[i].reshape(-1).view(np.uint8)),
                                        "X": memoryview(bytearray(4))})
             for i in range(3)]
    dests = joined_dests(items, ["OS", "X", "Y"])
    assert list(dests) == ["OS"] and dests["OS"].nbytes == 3 * 32
    assert np.shares_memory(np.frombuffer(dests["OS"], np.uint8), block)


def test_a_direct_batchs_states_are_one_view_in_and_out():
    s = spec('''name: "m" backend: "onnxruntime" max_batch_size: 4
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching { state [ { input_name: "IS" output_name: "OS" data_type: TYPE_FP32
                              dims: [ 5 ] } ] }''')
    io = SequenceIO(s, "", uuid.uuid4().hex, "wtest")
    try:
        reqs = [messages.Request(i, "fe", "m", 1, [], correlation_id=i + 1,
                                 flags=messages.SEQUENCE_START) for i in range(4)]
        states = [io.inputs(r, Slot(i))["IS"] for i, r in enumerate(reqs)]
        assert joined(states) is not None                          # rows 0..3: slots 0..3
        items = [WorkRequest(r, {}, [], io.dests(Slot(i))) for i, r in enumerate(reqs)]
        out = joined_dests(items, ["OS"])["OS"]
        assert not np.shares_memory(np.frombuffer(out, np.uint8), joined(states))
        assert joined([states[0], states[2]]) is None              # slot 1 not in the batch
    finally:
        io.close()
