"""use_same_buffer_for_input_output (workers/sequence_state.py): one buffer per slot,
the state output written over the state input after the step, never bound as an
output while the step runs, not-ready rows on a scratch buffer."""
import uuid

import numpy as np
import pytest

from tritond import messages
from tritond.workers.sequence import SequenceIO

from tests.specs import spec

START, END = messages.SEQUENCE_START, messages.SEQUENCE_END
Slot = messages.SequenceSlot


def state_model(same: bool):
    option = "use_same_buffer_for_input_output: true" if same else ""
    return spec(f'''name: "m" backend: "onnxruntime" max_batch_size: 2
input [ {{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
sequence_batching {{ state [
  {{ input_name: "IS" output_name: "OS" data_type: TYPE_FP32 dims: [ 256 ] {option} }},
  {{ input_name: "JS" output_name: "PS" data_type: TYPE_FP32 dims: [ 256 ] }} ] }}''')


def request(flags=0):
    return messages.Request(1, "fe", "m", 1, [], correlation_id=7, flags=flags)


@pytest.fixture
def ios():
    made = {same: SequenceIO(state_model(same), "", uuid.uuid4().hex, "wtest")
            for same in (False, True)}
    yield made
    for io in made.values():
        io.close()


def test_the_spec_carries_the_option():
    (a, b) = state_model(True).sequence_batching.states
    assert (a.same_buffer, b.same_buffer) == (True, False)


def test_a_same_buffer_state_takes_one_buffer_per_slot(ios):
    # 2 slots: double states 2 x 2 x 1 KiB; a same-buffer one 2 x 1 KiB + 1 KiB scratch
    assert ios[False].buffers.segment.size == 2 * 2 * 2 * 1024
    assert ios[True].buffers.segment.size == 2 * 2 * 1024 + 2 * 1024 + 1024


def test_the_output_is_written_over_the_input_after_the_step(ios):
    io = ios[True]
    first = io.inputs(request(START), Slot(0))
    assert "OS" not in io.dests(Slot(0)) and "PS" in io.dests(Slot(0))   # no aliasing binding
    produced = np.full((1, 256), 3.0, np.float32)
    io.keep(Slot(0), START, {"OS": produced, "PS": np.full((1, 256), 4.0, np.float32)})
    nxt = io.inputs(request(), Slot(0))
    assert nxt["IS"].ctypes.data == first["IS"].ctypes.data       # the same buffer
    assert nxt["JS"].ctypes.data != first["JS"].ctypes.data       # the other state swaps
    assert nxt["IS"][0, 0] == 3.0 and nxt["JS"][0, 0] == 4.0
    io.keep(Slot(0), 0, {"OS": nxt["IS"] + 1})                    # no PS: JS carries over
    again = io.inputs(request(), Slot(0))
    assert again["IS"].ctypes.data == first["IS"].ctypes.data and again["IS"][0, 0] == 4.0
    assert again["JS"][0, 0] == 4.0


def test_a_model_writing_its_input_in_place_needs_no_copy(ios):
    io = ios[True]
    state = io.inputs(request(START), Slot(1))["IS"]
    copies = io.buffers.copies
    state += 5                                                    # in place, returned as is
    io.keep(Slot(1), START, {"OS": state})
    assert io.buffers.copies == copies
    assert io.inputs(request(), Slot(1))["IS"][0, 0] == 5.0


def test_not_ready_rows_use_a_scratch_buffer_not_the_live_state(ios):
    io = ios[True]
    io.inputs(request(START), Slot(0))
    io.keep(Slot(0), START, {"OS": np.full((1, 256), 8.0, np.float32)})
    live = io.inputs(request(), Slot(0))["IS"]
    idle = io.inputs(request(), Slot(0, ready=False))["IS"]
    assert not np.shares_memory(idle, live) and idle[0, 0] == 0.0
    idle[:] = 99                                                  # a model scribbling on it
    assert io.inputs(request(), Slot(0))["IS"][0, 0] == 8.0
    assert io.inputs(request(START), Slot(0))["IS"][0, 0] == 0.0  # START resets in place


def test_a_same_buffer_state_is_one_object_and_never_copied_onto_itself(ios):
    io = ios[True]
    cur = io.buffers.current(0)["IS"]
    assert io.buffers.next(0)["IS"] is cur
    io.inputs(request(START), Slot(0))
    copies = io.buffers.copies
    io.keep(Slot(0), START, {"PS": np.ones((1, 256), np.float32)})   # IS not produced
    assert io.buffers.copies == copies + 1 and io.buffers.current(0)["IS"] is cur
