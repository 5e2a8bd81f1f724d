"""Where a worker puts output tensors: its own output arena, or a client's region.

Every output is written exactly once. A batched execution writes each batch
output into ONE slot and hands every request a :class:`TensorRef` to its slice
of that slot; a single request's outputs likewise share one slot (one arena
alloc and free per request, not per output). A slot goes back to the arena when
its last slice is released (refcount). The frontend names slices by
``(region, offset)`` in ``Release``.

When a request's ``OutputSpec.dest`` names a client-registered region the bytes
go straight there (no arena slot, nothing to release).

An output may be a cupy array in GPU memory (a GPU Python model's ``from_dlpack``
tensor): into a client CUDA region it is copied device to device; anywhere else
it is copied to the host once, straight into its shared-memory slot (no
intermediate host buffer, so no pinned staging pool is needed).
"""
from __future__ import annotations

import logging
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from tritond import messages
from tritond.errors import Code
from tritond.messages import CLIENT_SHM, CUDA_SHM, ErrorInfo, TensorRef
from tritond.shm import dtypes
from tritond.shm.arena import ALIGN
from tritond.shm.cuda import is_device_array
from tritond.shm.views import write_array

log = logging.getLogger("tritond.workers.outputs")

Key = tuple[str, int]


# Native-order fixed-size numpy dtype -> protocol datatype, filled as outputs are
# written: the per-output ``dtypes.from_numpy`` checks run once per dtype, and a
# hit also says the array's bytes are already in protocol order (little-endian).
_NATIVE: dict = {}


def _protocol_dtype(dt) -> tuple[str, bool]:
    """(protocol datatype, whether ``dt`` is a native-order fixed-size dtype)."""
    name = _NATIVE.get(dt)
    if name is not None:
        return name, True
    name = dtypes.from_numpy(dt)
    native = name != "BYTES" and dt.isnative
    if native:
        _NATIVE[dt] = name
    return name, native


class Encoded:
    """An output ready to be copied: protocol dtype plus bytes (BYTES) or the array.

    A BYTES output bound for this worker's arena (``table``) also has its length
    table (``shm.lengths``): ``span`` bytes in all, the table ``lengths_at`` bytes
    in (0: none), so that whoever parses it next (a JSON answer, an ensemble's
    next step) needs no walk of the prefixes. Client regions get the payload only.
    """

    __slots__ = ("dtype", "array", "data", "nbytes", "plain", "table", "lengths_at", "span")

    def __init__(self, arr: np.ndarray, bf16: bool = False, table: bool = False) -> None:
        name, native = _protocol_dtype(arr.dtype)
        # numpy has no bfloat16: BF16 outputs are their 16-bit patterns (uint16).
        self.dtype = "BF16" if bf16 and arr.dtype.itemsize == 2 else name
        self.array = arr
        # A host array of native fixed-size elements: copied as raw bytes when C-ordered.
        self.plain = native and type(arr) is np.ndarray
        # BYTES are stored serialised; their size is only known once encoded.
        self.table: Optional[bytes] = None
        if name != "BYTES":
            self.data: Optional[bytes] = None
        elif table:
            self.data, self.table = dtypes.serialize_bytes_table(arr)
        else:
            self.data = dtypes.serialize_bytes(arr)
        self.nbytes = len(self.data) if self.data is not None else arr.nbytes
        if self.table is None:
            self.lengths_at, self.span = 0, self.nbytes
        else:
            self.lengths_at = (self.nbytes + 3) & ~3
            self.span = self.lengths_at + len(self.table)

    @classmethod
    def raw(cls, dtype: str, data) -> "Encoded":
        """Bytes already in the protocol's layout (a response-cache entry: BYTES
        serialised), copied as they are, so a hit is byte-identical to the miss."""
        enc = cls.__new__(cls)
        enc.dtype, enc.array, enc.data, enc.plain, enc.table = dtype, None, data, False, None
        enc.nbytes = enc.span = len(data)
        enc.lengths_at = 0
        return enc

    def copy_into(self, view: memoryview) -> None:
        """The payload into ``view`` (and the length table, when there is one, at
        ``lengths_at``: ``view`` is then ``span`` bytes long)."""
        if self.data is not None:
            view[:self.nbytes] = self.data
            if self.table is not None:
                view[self.lengths_at:self.span] = self.table
        elif not self.nbytes:
            return
        elif self.plain and self.array.flags.c_contiguous:
            # one memcpy, without write_array's dtype and layout checks (done above);
            # a length mismatch still raises ValueError
            view[:] = memoryview(self.array).cast("B")
        elif type(self.array) is not np.ndarray and is_device_array(self.array):
            # the one device-to-host copy, into the slot itself
            host = np.frombuffer(view[:self.nbytes], self.array.dtype).reshape(self.array.shape)
            self.array.get(out=host)
        else:
            write_array(view, self.array)


def as_output(arr):
    """A backend's output as something :class:`Encoded` takes: a cupy array stays on the
    device (it is copied out once, where it goes), anything else becomes numpy."""
    if type(arr) is np.ndarray:       # the common case, without the module-name test
        return arr
    return arr if is_device_array(arr) else np.asarray(arr)


def _in_place(enc: Encoded, view: memoryview) -> bool:
    """True when the output array already is exactly ``view`` (same address, C order)."""
    arr = enc.array
    if enc.data is not None or not enc.nbytes or is_device_array(arr) \
            or not arr.flags.c_contiguous:
        return False
    return arr.ctypes.data == np.frombuffer(view, np.uint8).ctypes.data


_DEST_SMALL = "shared memory size specified with the request for output '"


def _dest_error(name: str, have: int, need: int) -> ErrorInfo:
    return ErrorInfo(int(Code.INVALID_ARG),     # the client's region: a client error (400)
                     f"{_DEST_SMALL}{name}' ({have} bytes) should be at least {need} bytes "
                     "to hold the results")


def renamed_dest_error(message: str, renames: dict) -> str:
    """``message`` naming the output as the client asked for it (an ensemble's output:
    ``renames`` maps the step model's names to the ensemble's), as Triton names it."""
    if not message.startswith(_DEST_SMALL):
        return message
    name, rest = message[len(_DEST_SMALL):].split("'", 1)
    return f"{_DEST_SMALL}{renames.get(name, name)}'{rest}"


class OutputWriter:
    """Writes outputs into shm and tracks which slots are still referenced."""

    def __init__(self, pool, cache) -> None:
        self._pool = pool            # tritond.shm.arena.ArenaPool (this worker's)
        self._cache = cache          # tritond.shm.views.SegmentCache (client regions)
        self._slot_of: dict[Key, Key] = {}   # slice (region, offset) -> slot key
        self._refs: dict[Key, int] = {}      # slot key -> live slices
        self._keys: dict[Key, list[Key]] = {}  # slot key -> its slice keys (multi-slice slots only)
        self.bf16: set[str] = set()              # outputs the model config declares TYPE_BF16

    # ------------------------------------------------------------ writing

    def write(self, name: str, arr: np.ndarray, shape: Sequence[int],
              dest: Optional[TensorRef]) -> Union[TensorRef, ErrorInfo]:
        """Write one request's output; ``shape`` is what the client is told."""
        enc = Encoded(arr, name in self.bf16, dest is None)
        if dest is not None:
            return self._to_client(name, enc, shape, dest)
        return self._write_slot(name, enc, shape)

    def write_all(self, outs: Iterable[tuple]) -> Union[list[TensorRef], ErrorInfo]:
        """Write one request's outputs, ``(name, array or Encoded, client shape, dest)``
        each, in order.

        Outputs bound for this worker's arena share ONE slot (one alloc and one
        free per request instead of one per output), each at a 64-byte-aligned
        position of it and with its own slice key for ``release``. The first
        output that fails stops the request (an ErrorInfo returned, or an
        exception such as an unsupported dtype); no slot is allocated by then.
        """
        refs: list = []
        mine = []                       # (index in refs, name, Encoded, shape, position)
        total = 0
        bf16 = self.bf16
        for name, arr, shape, dest in outs:
            # an Encoded already: a response-cache hit's bytes (workers/cachelookup.py)
            enc = arr if type(arr) is Encoded else Encoded(arr, name in bf16, dest is None)
            if dest is not None:
                ref = self._to_client(name, enc, shape, dest)
                if type(ref) is ErrorInfo:
                    return ref
                refs.append(ref)
                continue
            mine.append((len(refs), name, enc, shape, total))
            refs.append(None)
            # every slice gets its own aligned offset, a zero-byte one included
            total += (enc.span + ALIGN - 1) & -ALIGN or ALIGN
        if len(mine) == 1:
            i, name, enc, shape, _ = mine[0]
            refs[i] = self._write_slot(name, enc, shape)
        elif mine:
            slot = self._pool.alloc(total)
            region, base, view = slot.region, slot.offset, slot.view
            keys = []
            try:
                for i, name, enc, shape, pos in mine:
                    enc.copy_into(view[pos:pos + enc.span])
                    refs[i] = TensorRef(name, enc.dtype, list(shape), region, base + pos,
                                        enc.nbytes, lengths_at=enc.lengths_at)
                    keys.append((region, base + pos))
            except BaseException:       # a failed copy (e.g. a device array): no slot leaks
                self._pool.free(region, base)
                raise
            self._hold((region, base), keys)
        return refs

    def _write_slot(self, name: str, enc: Encoded, shape: Sequence[int]) -> TensorRef:
        slot = self._pool.alloc(enc.span)
        key = (slot.region, slot.offset)
        try:
            enc.copy_into(slot.view)
        except BaseException:           # a failed copy: the slot goes back, not leaks
            self._pool.free(*key)
            raise
        # a fresh slot with one slice: it is its own slice key and has no _keys list
        self._slot_of[key] = key
        self._refs[key] = 1
        return TensorRef(name, enc.dtype, list(shape), slot.region, slot.offset, enc.nbytes,
                         lengths_at=enc.lengths_at)

    def write_batch(self, name: str, arr: np.ndarray, rows: Sequence[int],
                    shapes: Sequence[Optional[Sequence[int]]],
                    dests: Sequence[Optional[TensorRef]]) -> list:
        """Write a batch output once and slice it per request.

        ``rows[i]`` is request i's batch size; ``shapes[i]`` its client shape, or
        None when request i did not ask for this output. Returns, per request,
        a TensorRef, an ErrorInfo, or None (not requested).
        """
        starts = np.cumsum([0, *rows])
        bf16 = name in self.bf16
        parts = [Encoded(arr[starts[i]:starts[i + 1]], bf16) for i in range(len(rows))]
        out: list = [None] * len(rows)
        shared = []
        for i, (part, shape, dest) in enumerate(zip(parts, shapes, dests)):
            if shape is None:
                continue
            if dest is not None:
                out[i] = self._to_client(name, part, shape, dest)
            else:
                shared.append(i)
        if not shared:
            return out
        slot = self._pool.alloc(sum(parts[i].nbytes for i in shared))
        pos, keys = 0, []
        for i in shared:
            part = parts[i]
            part.copy_into(slot.view[pos:pos + part.nbytes])
            off = slot.offset + pos
            out[i] = TensorRef(name, part.dtype, list(shapes[i]), slot.region, off, part.nbytes)
            keys.append((slot.region, off))
            pos += part.nbytes
        self._hold((slot.region, slot.offset), keys)
        return out

    def _to_client(self, name: str, enc: Encoded, shape, dest: TensorRef):
        # The frontend checked dest against the registered range; writing at most
        # dest.nbytes keeps every byte inside it.
        if dest.nbytes < enc.nbytes:
            return _dest_error(name, dest.nbytes, enc.nbytes)
        if dest.kind == CUDA_SHM:
            if enc.data is not None:
                return ErrorInfo(int(Code.UNSUPPORTED), f"output '{name}': BYTES outputs "
                                 "cannot be written to CUDA shared memory")
            self._cache.cuda.write(dest, enc.array)
        else:
            view = self._cache.buffer(dest.region, dest.offset, enc.nbytes, dest.gen)
            if not _in_place(enc, view):    # the backend wrote it there itself: no copy
                enc.copy_into(view)
        return TensorRef(name, enc.dtype, list(shape), dest.region, dest.offset, enc.nbytes,
                         kind=dest.kind or CLIENT_SHM, device=dest.device, gen=dest.gen)

    # ---------------------------------------------------------- ownership

    def _hold(self, slot: Key, slices: list[Key]) -> None:
        # Zero-byte slices may share an offset: the count is per slice, and the
        # key stays mapped until the whole slot is freed.
        for key in slices:
            self._slot_of[key] = slot
        self._refs[slot] = self._refs.get(slot, 0) + len(slices)
        self._keys.setdefault(slot, []).extend(slices)

    def release(self, region: str, offset: int) -> bool:
        """The frontend is done with the slice at ``(region, offset)``; False if unknown."""
        slot = self._slot_of.get((region, offset))
        if slot is None:
            return False
        left = self._refs[slot] - 1
        if left > 0:
            self._refs[slot] = left
            return True
        del self._refs[slot]
        keys = self._keys.pop(slot, None)
        if keys is None:            # a single-slice slot (write): the slice is the slot
            del self._slot_of[slot]
        else:
            for key in keys:
                self._slot_of.pop(key, None)
        self._pool.free(*slot)
        return True

    def discard(self, refs: Sequence[TensorRef]) -> None:
        """Drop outputs that will never be sent (their request failed later)."""
        for ref in refs:
            if ref.kind == messages.SERVER_SHM:
                self.release(ref.region, ref.offset)

    @property
    def live_slots(self) -> int:
        return len(self._refs)
