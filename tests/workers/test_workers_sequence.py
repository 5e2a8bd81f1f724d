"""SequenceIO (workers/sequence.py): control tensors as Triton makes them, and a slot's
implicit state (initial, kept without copying, reset on START, dropped at END)."""
import numpy as np
import pytest

from tritond import messages
from tritond.errors import TritonError
from tritond.workers.sequence import SequenceIO

from tests.specs import spec

START, END = messages.SEQUENCE_START, messages.SEQUENCE_END
Slot = messages.SequenceSlot


def model(max_batch_size=4, extra=""):
    return spec(f'''name: "m" backend: "python" max_batch_size: {max_batch_size}
input [ {{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
sequence_batching {{
  control_input [
    {{ name: "S" control [ {{ kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "E" control [ {{ kind: CONTROL_SEQUENCE_END bool_false_true: [ false, true ] }} ] }},
    {{ name: "R" control [ {{ kind: CONTROL_SEQUENCE_READY int32_false_true: [ 5, 9 ] }} ] }},
    {{ name: "C" control [ {{ kind: CONTROL_SEQUENCE_CORRID
                             data_type: {extra or "TYPE_UINT64"} }} ] }}
  ]
}}''')


def request(corrid=7, flags=0):
    return messages.Request(1, "fe", "m", 1, [], correlation_id=corrid, flags=flags)


def test_control_values_types_and_shapes():
    io = SequenceIO(model())
    got = io.inputs(request(flags=START), Slot(0))
    assert got["S"].dtype == np.float32 and got["S"].shape == (1, 1) and got["S"][0, 0] == 1
    assert got["E"].dtype == np.bool_ and not got["E"][0, 0]
    assert got["R"].dtype == np.int32 and got["R"][0, 0] == 9
    assert got["C"].dtype == np.uint64 and got["C"][0, 0] == 7
    end = io.inputs(request(flags=END), Slot(0))
    assert end["S"][0, 0] == 0 and end["E"][0, 0]


def test_not_ready_row_has_ready_false_and_no_correlation_id():
    io = SequenceIO(model())
    got = io.inputs(request(flags=START | END), Slot(2, ready=False))
    assert (got["S"][0, 0], got["E"][0, 0], got["R"][0, 0], got["C"][0, 0]) == (0, False, 5, 0)


def test_unbatched_model_controls_have_shape_one():
    io = SequenceIO(model(max_batch_size=0))
    assert io.inputs(request(), Slot(0))["R"].shape == (1,)


def test_string_correlation_id():
    io = SequenceIO(model(extra="TYPE_STRING"))
    got = io.inputs(request(corrid="abc"), Slot(0))["C"]
    assert got.dtype == object and got[0, 0] == b"abc"


def state_model(initial=""):
    return spec(f'''name: "m" backend: "onnxruntime" max_batch_size: 2
input [ {{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
sequence_batching {{ state [ {{ input_name: "IS" output_name: "OS" data_type: TYPE_FP32
                               dims: [ -1 ] {initial} }} ] }}''')


def test_state_starts_at_zero_is_kept_and_reset():
    io = SequenceIO(state_model())
    first = io.inputs(request(flags=START), Slot(1))["IS"]
    assert first.shape == (1, 1) and first.dtype == np.float32 and first[0, 0] == 0
    produced = np.array([[3.0, 4.0]], np.float32)
    outputs = {"OUTPUT": 1, "OS": produced}
    io.keep(Slot(1), START, outputs)
    assert outputs == {"OUTPUT": 1}                      # not the client's
    assert io.inputs(request(), Slot(1))["IS"] is produced   # no copy
    assert io.inputs(request(flags=START), Slot(1))["IS"][0, 0] == 0
    assert io.inputs(request(), Slot(0, ready=False))["IS"][0, 0] == 0


def test_end_and_force_end_drop_the_state():
    io = SequenceIO(state_model())
    io.inputs(request(flags=START), Slot(0))
    io.keep(Slot(0), END, {"OS": np.ones((1, 1), np.float32)})
    assert 0 not in io.slots
    io.inputs(request(flags=START), Slot(1))
    io.ended([1])
    assert io.slots == {}


def test_initial_state_from_a_data_file(tmp_path):
    (tmp_path / "initial_state").mkdir()
    (tmp_path / "initial_state" / "s.bin").write_bytes(np.array([1.5, 2.5], np.float32).tobytes())
    io = SequenceIO(state_model('initial_state: { data_type: TYPE_FP32 dims: [ 2 ] name: "s" '
                                'data_file: "s.bin" }'), str(tmp_path))
    got = io.inputs(request(flags=START), Slot(0))["IS"]
    assert got.tolist() == [[1.5, 2.5]]


def test_missing_initial_state_file_fails_the_load(tmp_path):
    with pytest.raises(TritonError) as err:
        SequenceIO(state_model('initial_state: { data_type: TYPE_FP32 dims: [ 2 ] name: "s" '
                               'data_file: "nope.bin" }'), str(tmp_path))
    assert "nope.bin" in err.value.message


def test_executor_runs_sequence_rows_with_state_through_a_fused_onnx_batch(repo, frontend):
    """Rows carry their slot's state in and out of one fused ONNX run; a not-ready row
    runs but is never answered, and state outputs never reach the client."""
    import msgspec

    from onnx import TensorProto, helper

    from tritond.shm.arena import ArenaPool
    from tritond.shm.views import SegmentCache
    from tritond.workers.executor import Executor
    from tritond.workers.onnxruntime import OnnxRuntimeBackend
    from tritond.workers.outputs import OutputWriter
    from tritond.workers.shapes import ModelIO

    from .helpers import context
    from .models import _save, _vi

    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT", "IS"], ["OUTPUT"]),
         helper.make_node("Identity", ["OUTPUT"], ["OS"])], "acc",
        [_vi("INPUT", TensorProto.INT32, ["b", 1]), _vi("IS", TensorProto.INT32, ["b", 1])],
        [_vi("OUTPUT", TensorProto.INT32, ["b", 1]), _vi("OS", TensorProto.INT32, ["b", 1])])
    _save(graph, repo / "acc" / "1" / "model.onnx")
    s = spec('''name: "acc" backend: "onnxruntime" max_batch_size: 4
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching { state [ { input_name: "IS" output_name: "OS" data_type: TYPE_INT32
                              dims: [ 1 ] } ] }''')
    backend = OnnxRuntimeBackend(context(repo / "acc"))
    backend.load(s)
    pool, cache = ArenaPool(frontend.server_id, "w1", 1 << 20), SegmentCache()
    writer = OutputWriter(pool, cache)
    executor = Executor(backend, ModelIO(s), cache, writer, "@w1", SequenceIO(s))

    def row(rid, value, corrid, flags=0):
        req = frontend.request(rid, {"INPUT": np.array([[value]], np.int32)}, batch=1)
        return msgspec.structs.replace(req, correlation_id=corrid, flags=flags)

    def run(rows, slots):
        ex = messages.Execute(1, rows, slots=slots)
        responses, executed = executor.run(ex)
        out = {}
        for _, r in responses:
            assert r.error is None, r.error
            assert [o.name for o in r.outputs] == ["OUTPUT"]
            out[r.rid] = int(frontend.read(r.outputs[0])[0, 0])
            for ref in r.outputs:
                writer.release(ref.region, ref.offset)
        return out, executed

    try:
        out, _ = run([row(1, 5, 100, START), row(2, 7, 200, START)], [Slot(0), Slot(1)])
        assert out == {1: 5, 2: 7}
        null = msgspec.structs.replace(row(3, 1000, 0), rid=-1, frontend="")
        out, executed = run([null, row(4, 3, 200)], [Slot(0, ready=False), Slot(1)])
        assert out == {4: 10} and executed.failed == []
        out, _ = run([row(5, 1, 100, END), row(6, 1, 200, END)], [Slot(0), Slot(1)])
        assert out == {5: 6, 6: 11}
        assert executor.seq.slots == {}                    # END dropped both states
        assert writer.live_slots == 0
    finally:
        cache.close()
        pool.close()
