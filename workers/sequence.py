"""A sequence model's extra inputs, made in the worker: control tensors and implicit state.

The scheduler says, per row of an Execute, which sequence slot it is and whether
it is ready (``messages.SequenceSlot``); START and END come from the request's
flags and CORRID from its correlation id. Here they become the model's control
inputs (Triton's shapes: ``[1]``, ``[1, 1]`` when the model batches; the values of
the config's ``*_false_true``), made once per value and shared read-only, so no
tensor crosses a socket.

Implicit state (``sequence_batching.state``) lives in this worker, per slot: the
array the model produced as the state output of one step is handed to it as the
state input of the next step of the same slot (no copy). START resets it to the
initial state, END and a force-ended (idle) slot drop it, and a not-ready row sees
the initial state without touching the slot's.
"""
from __future__ import annotations

import os

import numpy as np

from tritond import messages
from tritond.errors import Code, TritonError
from tritond.shm import dtypes
from tritond.spec import CONTROL_CORRID, CONTROL_END, CONTROL_READY, CONTROL_START, ModelSpec

START = messages.SEQUENCE_START
END = messages.SEQUENCE_END
INITIAL_STATE_DIR = "initial_state"      # Triton's folder for initial_state data_file


def _const(value, dtype, shape) -> np.ndarray:
    arr = np.full(shape, value, dtype=dtype)
    arr.flags.writeable = False
    return arr


class SequenceIO:
    """Control tensors and implicit state of one sequence model instance."""

    def __init__(self, spec: ModelSpec, model_dir: str = "") -> None:
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

    # ------------------------------------------------------------ inputs

    def inputs(self, req: messages.Request, slot: messages.SequenceSlot) -> dict:
        """The control (and state) inputs of one row."""
        ready = slot.ready
        flags = req.flags if ready else 0
        values = {CONTROL_START: flags & START, CONTROL_END: flags & END, CONTROL_READY: ready}
        out = {name: (true if values[kind] else false) for name, kind, false, true in self.flags}
        if self.corrid is not None:
            name, dtype = self.corrid
            out[name] = self._corrid(req.correlation_id if ready else 0, dtype)
        if self.states:
            out.update(self._state(slot.slot, ready, flags & START))
        return out

    def _corrid(self, corrid, dtype: str) -> np.ndarray:
        if dtype == "BYTES":
            arr = np.empty(self.shape, dtype=object)
            arr.fill(str(corrid).encode() if corrid else b"")
            return arr
        if isinstance(corrid, str):      # a string id given to an integer CORRID
            corrid = int(corrid) if corrid.isdigit() else 0
        return np.full(self.shape, corrid, dtype=dtypes.DTYPES[dtype].numpy)

    def _state(self, slot: int, ready: bool, start: int) -> dict:
        if not ready:
            return self.initial
        state = self.slots.get(slot)
        if state is None or start:
            state = self.slots[slot] = dict(self.initial)
        return state

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

    def keep(self, slot: messages.SequenceSlot, flags: int, outputs: dict) -> None:
        """Take the state outputs of a finished row out of ``outputs`` (they are not
        the client's) and keep them as the slot's next state inputs."""
        produced = [(st, outputs.pop(st.output_name, None)) for st in self.states]
        if not slot.ready:
            return
        if flags & END:
            self.slots.pop(slot.slot, None)
            return
        state = self.slots.get(slot.slot)
        if state is None:
            return
        for st, arr in produced:
            if arr is not None:
                arr = np.asarray(arr)
                shape = self.initial[st.input_name].shape
                if self.batched and arr.ndim == len(shape) - 1:
                    arr = arr.reshape((1, *arr.shape))
                state[st.input_name] = arr

    def ended(self, slots: list[int]) -> None:
        """Slots whose sequence was force-ended (idle timeout): drop their state."""
        for slot in slots:
            self.slots.pop(slot, None)


def sequence_io(spec: ModelSpec, model_dir: str) -> SequenceIO | None:
    """The SequenceIO of a sequence model (None for any other model)."""
    return SequenceIO(spec, model_dir) if spec.sequence_batching is not None else None
