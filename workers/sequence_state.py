"""Implicit state of a sequence model instance in shared memory: two buffers per slot.

``SlotStates`` owns one POSIX segment per worker instance (``<worker>-state``,
created at load, unlinked at unload or worker exit; its name carries the worker's
pid, so the parent reaps it when the worker dies). For every sequence slot and every
state of fixed size (no -1 dims, not BYTES) it holds two buffers, ``[slot][0|1]``:
the *current* one is handed to the model as the state input (a view, no copy;
writable like every input, so DLPack works), the *other* one is where the state output of this step goes: ONNX Runtime
writes it there itself (IO binding, ``WorkRequest.dests``), a Python model's output
array is copied there once (as Triton copies a Python state output). After the step
the two swap roles (``flip``), so the output of step k is the input of step k+1
without a copy. START copies the initial state into the current buffer; END and an
idle timeout only forget the slot (its buffers serve the next sequence). A not-ready
row of a slot gets the initial state in that slot's other buffer (free until the
slot's next step writes it), so a model writing into its input touches no live state.

A state with ``use_same_buffer_for_input_output`` has one buffer per slot (both
parities are the same array) and one scratch buffer for not-ready rows: the state
output is written over the state input once the step is done (a copy; ONNX Runtime
gets no binding there, since an output aliasing an input is not safe mid-run). It
halves the state memory at the cost of that copy, as Triton's single buffer does.

Why the worker's own segment: the state never leaves the instance (a sequence stays
on its slot), so one owner and one release point (invariant 3) come for free; a
worker crash loses the state, but it fails the slot's sequences anyway.
"""
from __future__ import annotations

import numpy as np

from tritond.shm.region import Segment, segment_name, unlink

ALIGN = 64


def fixed_size(st) -> bool:
    """A state that gets slot buffers: fixed dims and a fixed-size dtype."""
    return st.datatype != "BYTES" and all(d >= 0 for d in st.dims)


class SlotStates:
    """The two buffers of every slot for the fixed-size states (see module docstring)."""

    def __init__(self, initial: dict, names: list, slot_count: int, server_id: str,
                 tag: str, single=frozenset()) -> None:
        self.names = names                          # state input names with buffers
        self.single = frozenset(single) & set(names)   # one buffer per slot (same buffer)
        self.slot_count = slot_count
        sizes = [(n, initial[n].shape, initial[n].dtype) for n in names]
        row = {n: int(np.prod(s)) * d.itemsize for n, s, d in sizes}
        total = sum(_aligned(row[n] * slot_count) * (1 if n in self.single else 2)
                    + (_aligned(row[n]) if n in self.single else 0) for n in names)
        self.segment = Segment.create(segment_name(server_id, f"{tag}-state"),
                                      max(total, 1), reserve=True)
        buf = self.segment.buf
        off = [0]

        def carve(shape, dtype, count: int) -> np.ndarray:
            """``count`` buffers of ``shape``, back to back: slot i's is row i."""
            n = int(np.prod(shape)) * dtype.itemsize * count
            block = np.frombuffer(buf, np.uint8, n, off[0]).view(dtype).reshape((count, *shape))
            off[0] += _aligned(n)
            return block
        # Per state and parity one block of every slot's buffer, slot i after slot i-1, so
        # the rows of a direct batch (slot i in row i, same parity) join without a copy
        # (``joined``). views[slot][parity][name] -> that slot's buffer (a same-buffer
        # state's two parities are one object).
        blocks = {}
        for name, shape, dtype in sizes:
            first = carve(shape, dtype, slot_count)
            blocks[name] = (first, first if name in self.single else carve(shape, dtype,
                                                                           slot_count))
        self.views: list[tuple[dict, dict]] = []
        for i in range(slot_count):
            first = {name: blocks[name][0][i] for name in names}
            self.views.append((first, {name: first[name] if name in self.single
                                       else blocks[name][1][i] for name in names}))
        self._blocks = blocks
        # id(view) -> (name, parity, slot): the views live as long as this object, so
        # their ids are theirs; a lookup is cheaper than comparing data pointers.
        self._where = {id(v[p][name]): (name, p, i) for i, v in enumerate(self.views)
                       for p in (0, 1) for name in names}
        self._scratch = {name: carve(shape, dtype, 1)[0] for name, shape, dtype in sizes
                         if name in self.single}     # not-ready rows of same-buffer states
        self.parity = [0] * slot_count
        self.copies = 0        # state outputs copied in (a backend that binds outputs: none)

    def has(self, slot: int) -> bool:
        return 0 <= slot < self.slot_count

    def reset(self, slot: int, initial: dict) -> dict:
        """START: the initial state copied into the slot's current buffers; returns
        {state input: buffer}."""
        cur = self.views[slot][self.parity[slot]]
        for name in self.names:
            np.copyto(cur[name], initial[name])
        return dict(cur)

    def scratch(self, slot: int, initial: dict) -> dict:
        """A not-ready row of ``slot``: the initial state in the slot's other buffers."""
        nxt = {**self.views[slot][1 - self.parity[slot]], **self._scratch}
        for name in self.names:
            np.copyto(nxt[name], initial[name])
        return nxt

    def current(self, slot: int) -> dict:
        return self.views[slot][self.parity[slot]]

    def next(self, slot: int) -> dict:
        """{state input: the writable buffer the state output of this step goes to}."""
        return self.views[slot][1 - self.parity[slot]]

    def joined(self, arrays: list) -> np.ndarray | None:
        """The state buffers ``arrays`` of consecutive slots at one parity (the rows of a
        direct batch whose sequences stepped together) as one view of their block, rows
        joined along dim 0; None for anything else (the caller copies)."""
        where = self._where
        first = where.get(id(arrays[0]))
        if first is None or len(arrays) < 2:
            return None
        name, parity, slot = first
        for k, a in enumerate(arrays):
            if where.get(id(a)) != (name, parity, slot + k) or \
                    self.views[slot + k][parity][name] is not a:
                return None
        block = self._blocks[name][parity][slot:slot + len(arrays)]
        return block.reshape((-1, *block.shape[2:])) if block.ndim > 2 else block

    def bindable(self, slot: int) -> dict:
        """The next buffers a backend may write the state outputs into while it runs
        (not a same-buffer state's: that one is the step's input)."""
        nxt = self.views[slot][1 - self.parity[slot]]
        return {n: a for n, a in nxt.items() if n not in self.single} if self.single else nxt

    def take(self, slot: int, name: str, arr: np.ndarray) -> np.ndarray | None:
        """Put the state output ``arr`` of ``name`` into the slot's next buffer (no copy
        when the backend wrote it there); returns the buffer, None when ``arr``
        does not fit the buffer's shape (the caller keeps ``arr`` itself)."""
        nxt = self.views[slot][1 - self.parity[slot]][name]
        if arr.size != nxt.size:
            return None
        if not (arr.ctypes.data == nxt.ctypes.data and arr.dtype == nxt.dtype):
            try:
                np.copyto(nxt, arr.reshape(nxt.shape), casting="same_kind")
            except (TypeError, ValueError):
                return None
            self.copies += 1
        return nxt

    def flip(self, slot: int) -> None:
        self.parity[slot] ^= 1

    def close(self) -> None:
        """Unmap and unlink the segment (the worker's unload or exit). Idempotent."""
        seg, self.segment = self.segment, None
        if seg is None:
            return
        self.views = []
        seg.close()
        unlink(seg.name)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
