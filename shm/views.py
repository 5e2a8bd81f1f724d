"""Zero-copy numpy views of tensors that live in other processes' shared memory.

A worker (or a frontend serialising outputs) holds one :class:`SegmentCache`:
each region is mapped on first use and kept, so steady-state access to a
tensor costs a dict lookup, a bounds check and a numpy view: no syscall, no copy.
"""
from __future__ import annotations

import os

import numpy as np

from tritond.errors import invalid_arg

from .dtypes import (_NP, _SIZE, deserialize_bytes, element_size, num_elements, serialize_bytes,
                     serialized_size)
from tritond.messages import CUDA_SHM, SERVER_SHM

from .arena import is_oneoff
from .region import SHM_DIR, Segment, label

# One-off segments (shm.arena.is_oneoff) are unlinked by their owner when no
# longer needed and their names are never reused: a mapping kept here after
# that pins the pages, so /dev/shm space would never come back.


class SegmentCache:
    """Maps segments by name on first use and keeps the mappings until ``forget``/``close``.

    A region that was unlinked and re-created under the same name with the same
    size keeps its old mapping here, so client regions are cached under
    ``(key, gen)`` (``gen`` = the frontend's registration number, never reused)
    and dropped with :meth:`forget` once unregistered and no longer used. A
    region that grew is re-attached automatically. CUDA refs go to a lazily
    created :class:`tritond.shm.cuda.CudaRegions`.
    """

    def __init__(self, writable: bool = True):
        self.writable = writable
        self._segments: dict = {}              # region, or (region, gen) for client regions
        self._oneoffs: set[str] = set()        # cached one-off segments of other processes
        self._cuda = None

    def buffer(self, region: str, offset: int, nbytes: int, gen: int = 0) -> memoryview:
        """A memoryview of ``nbytes`` at ``offset`` of ``region``; INVALID_ARG if out of bounds."""
        key = (region, gen) if gen else region
        seg = self._segments.get(key)
        if seg is None:
            seg = self._attach(region, key)
        # Python ints cannot overflow; compare without forming offset + nbytes
        # against anything but the known size, and reject negatives explicitly.
        if offset < 0 or nbytes < 0 or nbytes > seg.size - offset:
            seg = self._reattach_if_grown(seg, key, offset, nbytes)
        if seg.fd >= 0:
            _check_not_truncated(seg, offset, nbytes)
        return seg.buf[offset:offset + nbytes]

    def read(self, region: str, offset: int, nbytes: int, gen: int = 0) -> bytes:
        """A copy of ``nbytes`` at ``offset`` of a client region, read with pread, not mmap.

        A client that shrinks its region under us makes this a short read
        (INVALID_ARG), never a SIGBUS: the frontend reads client regions this way.
        """
        key = (region, gen) if gen else region
        seg = self._segments.get(key) or self._attach(region, key)
        if offset < 0 or nbytes < 0:
            raise invalid_arg(f"{label(region)}: negative offset or size")
        if seg.fd < 0:
            return bytes(self.buffer(region, offset, nbytes, gen))
        data = os.pread(seg.fd, nbytes, offset)
        if len(data) != nbytes:
            raise invalid_arg(_truncated(region, offset + len(data), offset, nbytes))
        return data

    def array(self, ref) -> np.ndarray:
        """The tensor ``ref`` (a TensorRef) as a numpy array over shared memory.

        Fixed-size types give a zero-copy view of ``ref.shape``; BYTES gives a
        deserialised object array of ``bytes`` (a copy of each element).
        """
        shape = ref.shape
        count = num_elements(shape)
        size = _SIZE.get(ref.dtype, 0)
        if size is None:                       # BYTES
            at = ref.lengths_at
            if at and at >= ref.nbytes and ref.kind == SERVER_SHM:   # the frontend's length table
                buf = self.buffer(ref.region, ref.offset, at + 4 * count, ref.gen)
                return deserialize_bytes(buf[:ref.nbytes], count, buf[at:]).reshape(shape)
            buf = self.buffer(ref.region, ref.offset, ref.nbytes, ref.gen)
            return deserialize_bytes(buf, count).reshape(shape)
        if size == 0:
            element_size(ref.dtype)            # raises INVALID_ARG naming the datatype
        if ref.nbytes != count * size:
            raise invalid_arg(
                f"tensor '{ref.name}' of {ref.dtype} shape {list(shape)} needs {count * size} bytes, "
                f"got {ref.nbytes}")
        if ref.kind == CUDA_SHM:
            return self.cuda.array(ref, _NP[ref.dtype], shape)
        buf = self.buffer(ref.region, ref.offset, ref.nbytes, ref.gen)
        return np.frombuffer(buf, _NP[ref.dtype]).reshape(shape)

    @property
    def cuda(self):
        if self._cuda is None:
            from .cuda import CudaRegions
            self._cuda = CudaRegions()
        return self._cuda

    def forget(self, region: str, gen: int = 0) -> None:
        """Drop the mapping of ``region`` (it is re-attached on next use).

        Arrays still viewing it keep the pages mapped until they die (CPython
        refuses to munmap under an exported buffer), so a running model is safe.
        """
        seg = self._segments.pop((region, gen) if gen else region, None)
        if seg is not None:
            seg.close()
        self._oneoffs.discard(region)
        if gen and self._cuda is not None:
            self._cuda.forget(region, gen)

    def close(self) -> None:
        """Drop every mapping; arrays still referencing one keep it alive."""
        for seg in self._segments.values():
            seg.close()
        self._segments.clear()
        self._oneoffs.clear()
        if self._cuda is not None:
            self._cuda.close()

    @property
    def has_oneoffs(self) -> bool:
        """True while one-off segments are mapped (call ``drop_unlinked`` when idle)."""
        return bool(self._oneoffs)

    def drop_unlinked(self) -> int:
        """Forget the cached one-off segments their owner unlinked; returns how many."""
        gone = [r for r in self._oneoffs
                if not os.path.exists(os.path.join(SHM_DIR, r.lstrip("/")))]
        for region in gone:
            self.forget(region)
        return len(gone)

    def __contains__(self, region: str) -> bool:
        return region in self._segments

    def __len__(self) -> int:
        return len(self._segments)

    def server_regions(self) -> list[str]:
        """Names of the mapped tritond segments (client regions, keyed with a gen, excluded)."""
        return [k for k in self._segments if type(k) is str]

    def _attach(self, region: str, key) -> Segment:
        oneoff = type(key) is str and is_oneoff(region)
        if oneoff and self._oneoffs:
            self.drop_unlinked()         # a new name: the older ones may be gone by now
        # Client regions (keyed with a gen) keep their fd: their size is checked per use.
        seg = Segment.attach(region, writable=self.writable, keep_fd=type(key) is tuple)
        self._segments[key] = seg
        if oneoff:
            self._oneoffs.add(region)
        return seg

    def _reattach_if_grown(self, seg: Segment, key, offset: int, nbytes: int) -> Segment:
        if offset >= 0 and nbytes >= 0:
            self._segments.pop(key, None)
            seg.close()
            seg = self._attach(seg.name, key)
            if nbytes <= seg.size - offset:
                return seg
        raise invalid_arg(
            f"{label(seg.name)} of {seg.size} bytes cannot hold {nbytes} bytes at offset {offset}")


def _check_not_truncated(seg: Segment, offset: int, nbytes: int) -> None:
    """A client may shrink its region at any time: touching pages past the end would
    SIGBUS, so its current size is checked before each use (one fstat)."""
    size = os.fstat(seg.fd).st_size
    if offset + nbytes > size:
        raise invalid_arg(_truncated(seg.name, size, offset, nbytes))


def _truncated(name: str, size: int, offset: int, nbytes: int) -> str:
    return (f"{label(name)} was truncated to {size} bytes after registration; "
            f"it cannot hold {nbytes} bytes at offset {offset}")


def array_nbytes(arr: np.ndarray, datatype: str) -> int:
    """Bytes ``arr`` occupies in shared memory as ``datatype`` (serialised size for BYTES)."""
    size = element_size(datatype)
    return serialized_size(arr) if size is None else size * arr.size


def write_array(view: memoryview, arr: np.ndarray) -> None:
    """Copy ``arr`` into ``view`` in the protocol layout (little-endian, C order) with one copy.

    Object, bytes and str arrays are written BYTES-serialised. ``view`` must be
    exactly as long as the result (INVALID_ARG otherwise).
    """
    arr = np.asarray(arr)
    if arr.dtype.kind in "OSU":
        data = serialize_bytes(arr)
        if len(data) != len(view):
            raise invalid_arg(f"BYTES tensor serialises to {len(data)} bytes, buffer holds {len(view)}")
        view[:] = data
        return
    if arr.nbytes != len(view):
        raise invalid_arg(f"tensor of {arr.nbytes} bytes does not fit a buffer of {len(view)}")
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    dst = np.frombuffer(view, dtype=dt).reshape(arr.shape)
    np.copyto(dst, arr, casting="equiv")     # byte-swaps big-endian input in the same pass
