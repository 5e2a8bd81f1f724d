"""SequenceIO (workers/sequence.py): control tensors as Triton makes them, and a slot's
implicit state (initial, kept without copying, reset on START, dropped at END)."""
import contextlib

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


def test_a_correlation_id_wider_than_its_corrid_type_keeps_its_low_bytes_as_triton():
    """Triton copies the first bytes of the uint64 id into a narrower CORRID tensor; an id
    that does not fit (a client's choice) must not fail the batch or the worker."""
    for dtype, corrid, want in (("TYPE_INT32", 2**40 + 5, 5),
                                ("TYPE_INT32", 2**31 + 5, -2**31 + 5),
                                ("TYPE_UINT32", 2**32 + 7, 7),
                                ("TYPE_INT64", 2**63 + 5, -2**63 + 5),
                                ("TYPE_UINT64", 2**64 - 1, 2**64 - 1),
                                ("TYPE_INT32", 12, 12)):
        got = SequenceIO(model(extra=dtype)).inputs(request(corrid=corrid), Slot(0))["C"]
        assert got.shape == (1, 1) and int(got[0, 0]) == want, (dtype, corrid)


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


def test_a_device_state_output_is_kept_in_host_memory(shm_io):
    """A GPU instance's state output is a cupy array: it comes to the slot's host buffer once
    (numpy cannot read device memory); here a stand-in with cupy's module and ``get``."""
    class DeviceArray:
        __module__ = "cupy._core.core"

        def __init__(self, host):
            self.host = host

        def get(self):
            return self.host

    shm_io.inputs(request(flags=START), Slot(0))
    shm_io.keep(Slot(0), START, {"OS": DeviceArray(np.full((1, 2), 4, np.float32))})
    assert shm_io.inputs(request(), Slot(0))["IS"].tolist() == [[4.0, 4.0]]


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


@contextlib.contextmanager
def acc_executor(repo, frontend, extra_output=""):
    """An Executor of ``acc`` (ONNX, state IS/OS, OUTPUT = INPUT + IS, OS = OUTPUT) and a
    ``run(rows, slots)`` giving {rid: {output: value}} of the answered rows."""
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
                              dims: [ 1 ] } ] }''' + extra_output)
    backend = OnnxRuntimeBackend(context(repo / "acc"))
    backend.load(s)
    pool, cache = ArenaPool(frontend.server_id, "w1", 1 << 20), SegmentCache()
    writer = OutputWriter(pool, cache)
    executor = Executor(backend, ModelIO(s), cache, writer, "@w1", SequenceIO(s))

    def row(rid, value, corrid, flags=0, outputs=()):
        req = frontend.request(rid, {"INPUT": np.array([[value]], np.int32)}, batch=1)
        wanted = [messages.OutputSpec(n) for n in outputs]
        return msgspec.structs.replace(req, correlation_id=corrid, flags=flags, outputs=wanted)

    def run(rows, slots):
        ex = messages.Execute(1, rows, slots=slots)
        responses, executed = executor.run(ex)
        out = {}
        for _, r in responses:
            assert r.error is None, r.error
            out[r.rid] = {o.name: int(frontend.read(o)[0, 0]) for o in r.outputs}
            for ref in r.outputs:
                writer.release(ref.region, ref.offset)
        return out, executed

    try:
        yield executor, writer, row, run
    finally:
        cache.close()
        pool.close()


def test_executor_runs_sequence_rows_with_state_through_a_fused_onnx_batch(repo, frontend):
    """Rows carry their slot's state in and out of one fused ONNX run; a not-ready row
    runs but is never answered, and state outputs never reach the client."""
    import msgspec

    with acc_executor(repo, frontend) as (executor, writer, row, run):
        out, _ = run([row(1, 5, 100, START), row(2, 7, 200, START)], [Slot(0), Slot(1)])
        assert out == {1: {"OUTPUT": 5}, 2: {"OUTPUT": 7}}
        null = msgspec.structs.replace(row(3, 1000, 0), rid=-1, frontend="")
        out, executed = run([null, row(4, 3, 200)], [Slot(0, ready=False), Slot(1)])
        assert out == {4: {"OUTPUT": 10}} and executed.failed == []
        out, _ = run([row(5, 1, 100, END), row(6, 1, 200, END)], [Slot(0), Slot(1)])
        assert out == {5: {"OUTPUT": 6}, 6: {"OUTPUT": 11}}
        assert executor.seq.slots == {}                    # END dropped both states
        assert writer.live_slots == 0


def test_a_state_output_that_is_a_config_output_reaches_the_rows_asking_for_it(repo, frontend):
    """Triton QA's test_request_output, through a fused batch: OS is also a config output,
    so a row gets it by default or when it names it, not when it names OUTPUT only; it
    stays each slot's state either way."""
    extra = '\noutput [ { name: "OS" data_type: TYPE_INT32 dims: [ 1 ] } ]'
    with acc_executor(repo, frontend, extra) as (executor, writer, row, run):
        out, _ = run([row(1, 5, 100, START), row(2, 7, 200, START, ["OUTPUT"])],
                     [Slot(0), Slot(1)])
        assert out == {1: {"OUTPUT": 5, "OS": 5}, 2: {"OUTPUT": 7}}
        out, _ = run([row(3, 1, 100, END, ["OS"]), row(4, 1, 200, END, ["OS", "OUTPUT"])],
                     [Slot(0), Slot(1)])
        assert out == {3: {"OS": 6}, 4: {"OS": 8, "OUTPUT": 8}}
        assert executor.seq.slots == {} and writer.live_slots == 0


def fixed_state_model(strategy=""):
    return spec(f'''name: "m" backend: "onnxruntime" max_batch_size: 2
input [ {{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
sequence_batching {{ {strategy} state [ {{ input_name: "IS" output_name: "OS"
                                           data_type: TYPE_FP32 dims: [ 2 ] }} ] }}''')


@pytest.fixture
def shm_io():
    import uuid
    io = SequenceIO(fixed_state_model(), "", uuid.uuid4().hex, "wtest")
    yield io
    io.close()


def _segment_exists(name):
    import os
    return os.path.exists("/dev/shm/" + name.lstrip("/"))


def test_fixed_size_state_lives_in_the_workers_segment(shm_io):
    seg = shm_io.buffers.segment
    assert seg.name.endswith("-wtest-state") and _segment_exists(seg.name)
    assert seg.size >= 2 * 2 * 8                      # 2 slots x 2 buffers x 8 bytes
    first = shm_io.inputs(request(flags=START), Slot(1))["IS"]
    assert first.tolist() == [[0.0, 0.0]]
    assert np.shares_memory(first, np.frombuffer(seg.buf, np.uint8))
    assert first.flags.writeable and first.__dlpack__() is not None   # like any input


def test_a_not_ready_row_sees_the_initial_state_and_cannot_touch_the_live_one(shm_io):
    shm_io.inputs(request(flags=START), Slot(0))
    shm_io.keep(Slot(0), START, {"OS": np.full((1, 2), 5, np.float32)})
    live = shm_io.inputs(request(), Slot(0))["IS"]
    idle = shm_io.inputs(request(), Slot(0, ready=False))["IS"]
    assert idle.tolist() == [[0, 0]] and not np.shares_memory(idle, live)
    idle[:] = 99                                      # a model scribbling on its input
    assert shm_io.inputs(request(), Slot(0))["IS"].tolist() == [[5, 5]]
    assert shm_io.inputs(request(), Slot(1, ready=False))["IS"].tolist() == [[0, 0]]


def test_state_written_into_the_next_buffer_is_the_next_input_without_a_copy(shm_io):
    shm_io.inputs(request(flags=START), Slot(0))
    dest = shm_io.dests(Slot(0))["OS"]                # what ONNX Runtime binds the output to
    out = np.frombuffer(dest, np.float32).reshape(1, 2)
    out[:] = [[3.0, 4.0]]
    shm_io.keep(Slot(0), START, {"OS": out})
    nxt = shm_io.inputs(request(), Slot(0))["IS"]
    assert nxt.ctypes.data == out.ctypes.data and nxt.tolist() == [[3.0, 4.0]]
    # the step after writes into the other buffer: input and output never alias
    dest2 = np.frombuffer(shm_io.dests(Slot(0))["OS"], np.float32)
    assert not np.shares_memory(dest2, nxt)
    assert shm_io.dests(Slot(1, ready=False)) == {}


def test_a_python_models_state_array_is_copied_once_into_the_slot(shm_io):
    shm_io.inputs(request(flags=START), Slot(1))
    produced = np.array([[1.5, 2.5]], np.float32)
    shm_io.keep(Slot(1), START, {"OS": produced})
    got = shm_io.inputs(request(), Slot(1))["IS"]
    assert got.tolist() == [[1.5, 2.5]] and not np.shares_memory(got, produced)
    assert np.shares_memory(got, np.frombuffer(shm_io.buffers.segment.buf, np.uint8))
    produced[:] = 0                                   # the model's array is its own again
    assert got.tolist() == [[1.5, 2.5]]
    # START again: the initial state, in the same slot's buffers
    assert shm_io.inputs(request(flags=START), Slot(1))["IS"].tolist() == [[0.0, 0.0]]


def test_slots_do_not_share_buffers_and_end_forgets_the_slot(shm_io):
    shm_io.inputs(request(flags=START), Slot(0))
    shm_io.inputs(request(flags=START), Slot(1))
    shm_io.keep(Slot(0), START, {"OS": np.full((1, 2), 7, np.float32)})
    shm_io.keep(Slot(1), START, {"OS": np.full((1, 2), 9, np.float32)})
    assert shm_io.inputs(request(), Slot(0))["IS"].tolist() == [[7, 7]]
    assert shm_io.inputs(request(), Slot(1))["IS"].tolist() == [[9, 9]]
    shm_io.keep(Slot(0), END, {"OS": np.ones((1, 2), np.float32)})
    assert 0 not in shm_io.slots
    assert shm_io.inputs(request(flags=START), Slot(0))["IS"].tolist() == [[0, 0]]


def test_close_unlinks_the_state_segment():
    import uuid
    io = SequenceIO(fixed_state_model(), "", uuid.uuid4().hex, "wtest")
    name = io.buffers.segment.name
    io.close()
    io.close()                                        # idempotent
    assert not _segment_exists(name)


def test_oldest_has_max_candidate_sequences_slots():
    import uuid
    io = SequenceIO(fixed_state_model("oldest { max_candidate_sequences: 5 }"), "",
                    uuid.uuid4().hex, "wtest")
    try:
        assert io.buffers.slot_count == 5 and io.buffers.has(4)
    finally:
        io.close()


def test_variable_dims_state_has_no_buffers(tmp_path):
    import uuid
    io = SequenceIO(state_model(), "", uuid.uuid4().hex, "wtest")
    assert io.buffers is None


def test_onnx_writes_the_next_state_into_the_slot_buffer_itself(repo, frontend):
    """One row per step (unfused): after the first step (shapes learnt) ONNX Runtime's
    state output is bound to the slot's next buffer: no copy, and the sums are right."""
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
    s = spec('''name: "acc" backend: "onnxruntime" max_batch_size: 2
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching { state [ { input_name: "IS" output_name: "OS" data_type: TYPE_INT32
                              dims: [ 1 ] } ] }''')
    backend = OnnxRuntimeBackend(context(repo / "acc"))
    backend.load(s)
    pool, cache = ArenaPool(frontend.server_id, "w2", 1 << 20), SegmentCache()
    writer = OutputWriter(pool, cache)
    seq = SequenceIO(s, "", frontend.server_id, "w2")
    executor = Executor(backend, ModelIO(s), cache, writer, "@w2", seq)

    def step(rid, value, flags=0):
        req = frontend.request(rid, {"INPUT": np.array([[value]], np.int32)}, batch=1)
        req = msgspec.structs.replace(req, correlation_id=9, flags=flags)
        (_, r), = executor.run(messages.Execute(rid, [req], slots=[Slot(1)]))[0]
        assert r.error is None, r.error
        got = int(frontend.read(r.outputs[0])[0, 0])
        writer.release(r.outputs[0].region, r.outputs[0].offset)
        return got

    try:
        assert step(1, 5, START) == 5
        first = seq.buffers.copies                 # the first run learns the output shapes
        assert [step(i, 1) for i in range(2, 7)] == [6, 7, 8, 9, 10]
        assert seq.buffers.copies == first          # ONNX Runtime wrote every state in place
        state = seq.slots[1]["IS"]
        assert np.shares_memory(state, np.frombuffer(seq.buffers.segment.buf, np.uint8))
        assert step(7, 2, END) == 12 and 1 not in seq.slots
    finally:
        seq.close()
        cache.close()
        pool.close()


def test_control_and_corrid_tensors_are_kept_across_steps():
    io = SequenceIO(model())
    a, b = io.inputs(request(corrid=7), Slot(0)), io.inputs(request(corrid=7), Slot(0))
    assert all(a[n] is b[n] for n in ("S", "E", "R", "C"))     # nothing made per step
    assert not a["C"].flags.writeable
    other = io.inputs(request(corrid=8), Slot(0))["C"]          # a new sequence in the slot
    assert other[0, 0] == 8 and a["C"][0, 0] == 7
    assert io.inputs(request(flags=START, corrid=7), Slot(0))["S"][0, 0] == 1


def test_not_ready_rows_reuse_the_mapped_row_and_never_get_its_client_buffer(repo, frontend):
    """A not-ready row copies a ready row's inputs: the views are reused, and the client
    shm buffer of the ready row's output is not the not-ready row's to write."""
    import msgspec

    from tritond.shm.arena import ArenaPool
    from tritond.shm.views import SegmentCache
    from tritond.workers import sequence_rows

    s = model()
    pool, cache = ArenaPool(frontend.server_id, "w3", 1 << 20), SegmentCache()

    class Ex:            # the executor's parts map_inputs uses
        seq = SequenceIO(s)

        def _map_inputs(self, requests, errors):
            from tritond.workers.executor import Executor
            from tritond.workers.outputs import OutputWriter
            from tritond.workers.shapes import ModelIO
            return Executor(None, ModelIO(s), cache, OutputWriter(pool, cache), "@w3",
                            self.seq)._map_inputs(requests, errors)

    try:
        real = frontend.request(1, {"INPUT": np.array([[4]], np.int32)}, ["OUTPUT"], batch=1)
        real = msgspec.structs.replace(real, correlation_id=5, flags=START)
        null = msgspec.structs.replace(real, rid=-1, frontend="", correlation_id=0, flags=0)
        ex = messages.Execute(1, [null, real], slots=[Slot(0, ready=False), Slot(1)])
        work = sequence_rows.map_inputs(Ex(), ex, {})
        assert list(work) == [-1, 1]                       # row order kept
        assert work[-1].inputs["INPUT"] is work[1].inputs["INPUT"]
        assert work[-1].dests == {}
        assert work[-1].inputs["R"][0, 0] == 5 and work[1].inputs["R"][0, 0] == 9
        assert work[1].inputs["S"][0, 0] == 1 and work[-1].inputs["S"][0, 0] == 0
    finally:
        cache.close()
        pool.close()
