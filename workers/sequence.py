"""A sequence model's extra inputs, made in the worker: control tensors and implicit state.

The scheduler says, per row of an Execute, which sequence slot it is and whether
it is ready (``messages.SequenceSlot``); START and END come from the request's
flags and CORRID from its correlation id. Here they become the model's control
inputs (Triton's shapes: ``[1]``, ``[1, 1]`` when the model batches; the values of
the config's ``*_false_true``), made once per value and shared read-only, so no
tensor crosses a socket.

Implicit state (``sequence_batching.state``) lives in this worker's shared memory,
two buffers per slot (``sequence_state.SlotStates``): the state output of one step
is written into the slot's other buffer (by ONNX Runtime itself, or one copy of a
Python model's array) and handed to the model as the state input of the next step
of the same slot, without a copy. START resets it to the initial state, END and a
force-ended (idle) slot forget it, and a not-ready row sees the initial state
without touching the slot's. A state of variable dims or BYTES has no fixed-size
buffer: the array the model produced is kept as it is (also no copy).
"""
from __future__ import annotations

import os

import numpy as np

from tritond import messages
from tritond.errors import Code, TritonError
from tritond.shm import dtypes
from tritond.shm.cuda import is_device_array
from tritond.spec import CONTROL_CORRID, CONTROL_END, CONTROL_READY, CONTROL_START, ModelSpec

from .sequence_state import SlotStates, fixed_size

START = messages.SEQUENCE_START
END = messages.SEQUENCE_END
INITIAL_STATE_DIR = "initial_state"      # Triton's folder for initial_state data_file


def _const(value, dtype, shape) -> np.ndarray:
    arr = np.full(shape, value, dtype=dtype)
    arr.flags.writeable = False
    return arr


class SequenceIO:
    """Control tensors and implicit state of one sequence model instance."""

    def __init__(self, spec: ModelSpec, model_dir: str = "", server_id: str = "",
                 tag: str = "") -> None:
        seq = spec.sequence_batching
        self.batched = spec.max_batch_size > 0
        self.shape = (1, 1) if self.batched else (1,)
        self.flags: list[tuple[str, str, np.ndarray, np.ndarray]] = []
        self.corrid: tuple[str, str] | None = None
        for c in seq.controls:
            if c.kind == CONTROL_CORRID:
                self.corrid = (c.input, c.datatype)
                continue
            if c.int32_false_true:
                values, dtype = c.int32_false_true, np.int32
            elif c.fp32_false_true:
                values, dtype = c.fp32_false_true, np.float32
            else:
                values, dtype = c.bool_false_true, np.bool_
            self.flags.append((c.input, c.kind, _const(values[0], dtype, self.shape),
                               _const(values[1], dtype, self.shape)))
        self.states = seq.states
        self.state_outputs = [st.output_name for st in seq.states]
        self.initial = {st.input_name: self._initial(st, model_dir) for st in seq.states}
        self.slots: dict[int, dict[str, np.ndarray]] = {}   # slot -> state input -> array
        self.buffers: SlotStates | None = None
        shm_states = [st.input_name for st in seq.states if fixed_size(st)]
        if shm_states and server_id:     # unit tests without a server keep plain arrays
            self.buffers = SlotStates(self.initial, shm_states, slot_count(spec), server_id, tag,
                                      {st.input_name for st in seq.states if st.same_buffer})
        self._outputs_of = {st.input_name: st.output_name for st in seq.states}
        self._controls: dict[tuple, dict] = {}     # (START|END flags, ready) -> control inputs
        self._ids: dict[int, tuple] = {}           # slot -> (correlation id, CORRID tensor)

    # ------------------------------------------------------------ inputs

    def inputs(self, req: messages.Request, slot: messages.SequenceSlot) -> dict:
        """The control (and state) inputs of one row."""
        out: dict = {}
        self.add_inputs(out, req, slot)
        return out

    def add_inputs(self, out: dict, req: messages.Request, slot: messages.SequenceSlot) -> None:
        """Put the control (and state) inputs of one row into ``out`` (a row's inputs).

        Per step nothing is made anew: the control tensors of each START/END/READY
        combination and each slot's CORRID tensor are kept while they stay the same."""
        ready = slot.ready
        flags = req.flags & (START | END) if ready else 0
        key = (flags, ready)
        controls = self._controls.get(key)
        if controls is None:
            controls = self._controls[key] = self._make_controls(flags, ready)
        out.update(controls)
        if self.corrid is not None:
            out[self.corrid[0]] = self._slot_id(slot.slot, req.correlation_id if ready else 0)
        if self.states:
            out.update(self._state(slot.slot, ready, flags & START))

    def _make_controls(self, flags: int, ready: bool) -> dict:
        values = {CONTROL_START: flags & START, CONTROL_END: flags & END, CONTROL_READY: ready}
        return {name: (true if values[kind] else false) for name, kind, false, true in self.flags}

    def _slot_id(self, slot: int, corrid) -> np.ndarray:
        """The CORRID tensor of ``slot``'s sequence (kept while the slot's id stays)."""
        if not corrid:
            slot = -1                    # not-ready rows share one empty id
        kept = self._ids.get(slot)
        if kept is not None and kept[0] == corrid:
            return kept[1]
        arr = self._corrid(corrid, self.corrid[1])
        arr.flags.writeable = False
        self._ids[slot] = (corrid, arr)
        return arr

    def _corrid(self, corrid, dtype: str) -> np.ndarray:
        if dtype == "BYTES":
            arr = np.empty(self.shape, dtype=object)
            arr.fill(str(corrid).encode() if corrid else b"")
            return arr
        if isinstance(corrid, str):      # (the scheduler refuses a string id here)
            corrid = int(corrid) if corrid.isdigit() else 0
        np_dtype = np.dtype(dtypes.DTYPES[dtype].numpy)
        # Triton copies the id's first bytes (little-endian uint64) into the tensor: an id
        # too wide for the type keeps its low bytes instead of failing the batch.
        low = (corrid % (1 << 64)).to_bytes(8, "little")[:np_dtype.itemsize]
        return np.full(self.shape, np.frombuffer(low, np_dtype)[0], dtype=np_dtype)

    def _state(self, slot: int, ready: bool, start: int) -> dict:
        if not ready:
            buffers = self.buffers
            if buffers is None or not buffers.has(slot):
                return self.initial
            scratch = buffers.scratch(slot, self.initial)
            return {**self.initial, **scratch} if len(scratch) < len(self.initial) else scratch
        state = self.slots.get(slot)
        if state is None or start:
            state = dict(self.initial)
            if self.buffers is not None and self.buffers.has(slot):
                state.update(self.buffers.reset(slot, self.initial))
            self.slots[slot] = state
        return state

    def dests(self, slot: messages.SequenceSlot) -> dict:
        """{state output: the bytes of the slot's next buffer} for a ready row: a backend
        that binds outputs (ONNX Runtime) writes the new state straight there."""
        buffers = self.buffers
        if buffers is None or not slot.ready or not buffers.has(slot.slot):
            return {}
        return {self._outputs_of[n]: memoryview(a.reshape(-1).view(np.uint8))
                for n, a in buffers.bindable(slot.slot).items()}

    def _initial(self, st, model_dir: str) -> np.ndarray:
        np_dtype = dtypes.DTYPES[st.datatype].numpy
        dims = st.initial_dims if st.initial_dims is not None else tuple(
            1 if d < 0 else d for d in st.dims)
        shape = ((1,) if self.batched else ()) + tuple(dims)
        if st.initial_file:
            path = os.path.join(model_dir, INITIAL_STATE_DIR, st.initial_file)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise TritonError(Code.INVALID_ARG, f"unable to read initial_state data_file "
                                  f"'{path}' of state input '{st.input_name}': {exc}") from None
            if st.datatype == "BYTES":
                arr = dtypes.deserialize_bytes(data).reshape(shape)
            else:
                need = int(np.prod(shape)) * np.dtype(np_dtype).itemsize
                if len(data) < need:
                    raise TritonError(Code.INVALID_ARG, f"initial_state setting expects {need} "
                                      f"bytes, but the data provided from {st.initial_file}only "
                                      f"has {len(data)} bytes.")
                arr = np.frombuffer(data[:need], dtype=np_dtype).reshape(shape)
        elif st.datatype == "BYTES":
            arr = np.full(shape, b"", dtype=object)
        else:
            arr = np.zeros(shape, dtype=np_dtype)
        arr.flags.writeable = False
        return arr

    # ------------------------------------------------------------ outputs

    def keep(self, slot: messages.SequenceSlot, flags: int, outputs: dict,
             shown=()) -> None:
        """Take the state outputs of a finished row out of ``outputs`` (they are not
        the client's, except those in ``shown``: also config outputs the request
        asks for) and keep them as the slot's next state inputs."""
        produced = [(st, outputs.get(st.output_name) if st.output_name in shown
                     else outputs.pop(st.output_name, None)) for st in self.states]
        if not slot.ready:
            return
        if flags & END:
            self.slots.pop(slot.slot, None)
            return
        state = self.slots.get(slot.slot)
        if state is None:
            return
        buffers = self.buffers
        if buffers is not None and not buffers.has(slot.slot):
            buffers = None
        moved = False
        for st, arr in produced:
            name = st.input_name
            if arr is None:
                continue
            # a GPU instance's state output (cupy) comes to the slot's host buffers once
            arr = arr.get() if is_device_array(arr) else np.asarray(arr)
            shape = self.initial[name].shape
            if self.batched and arr.ndim == len(shape) - 1:
                arr = arr.reshape((1, *arr.shape))
            if buffers is not None and name in buffers.names:
                view = buffers.take(slot.slot, name, arr)
                if view is not None:
                    state[name], moved = view, True
                    continue
            state[name] = arr
        if moved:
            self._flip(buffers, slot.slot, state)

    def _flip(self, buffers: SlotStates, slot: int, state: dict) -> None:
        """The next buffers become the current ones; a buffered state the model did not
        produce this step is carried over (one copy) so that it survives the swap."""
        nxt, cur = buffers.next(slot), buffers.current(slot)
        carried = [n for n in buffers.names if state[n] is cur[n] and nxt[n] is not cur[n]]
        for name in carried:
            np.copyto(nxt[name], cur[name])
        buffers.flip(slot)
        cur = buffers.current(slot)
        for name in carried:
            state[name] = cur[name]

    def joined(self, arrays: list):
        """A fused batch's state input rows as one view of the slots' block, if they are
        consecutive slots at one parity (sequence_state.SlotStates.joined), else None."""
        return self.buffers.joined(arrays) if self.buffers is not None else None

    def ended(self, slots: list[int]) -> None:
        """Slots whose sequence was force-ended (idle timeout): drop their state."""
        for slot in slots:
            self.slots.pop(slot, None)

    def close(self) -> None:
        """Unlink the state segment (the worker's unload or exit)."""
        if self.buffers is not None:
            self.buffers.close()
            self.buffers = None


def slot_count(spec: ModelSpec) -> int:
    """Sequence slots per instance, as the scheduler counts them (scheduler/sequence.py)."""
    seq = spec.sequence_batching
    if seq.strategy == "oldest" and seq.max_candidate_sequences > 0:
        return seq.max_candidate_sequences
    return max(spec.max_batch_size, 1)


def sequence_io(spec: ModelSpec, model_dir: str, server_id: str = "",
                tag: str = "") -> SequenceIO | None:
    """The SequenceIO of a sequence model (None for any other model); with ``server_id``
    its fixed-size states live in a shm segment tagged ``<tag>-state``."""
    if spec.sequence_batching is None:
        return None
    return SequenceIO(spec, model_dir, server_id, tag)
