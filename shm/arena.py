"""A best-fit allocator over one shared-memory segment, and the per-process pool around it.

:class:`Arena` is pure bookkeeping (offsets only, no memory), so it is tested
without shm. :class:`ArenaPool` owns one arena segment plus one-off segments
for requests the arena cannot hold, and hands out :class:`Slot` views.
"""
from __future__ import annotations

import logging
import re
from bisect import bisect_left, insort
from typing import Optional

from tritond.errors import Code, TritonError
from tritond.messages import SERVER_SHM, TensorRef

from .region import Segment, segment_name

log = logging.getLogger("tritond.shm")

_ONEOFF_NAME = re.compile(r"-x\d+$")


def is_oneoff(region: str) -> bool:
    """Whether ``region`` is a one-off segment (a tensor too big for its arena).

    Their owner unlinks them when freed (or keeps a couple as spares), and a
    name is never reused: other processes must drop their mappings of them.
    """
    return _ONEOFF_NAME.search(region) is not None


SPARES = 2                      # freed one-off segments kept for reuse
ALIGN = 64                      # cache line; also enough for any dtype and AVX-512 loads
_SHIFT = 48                     # free-list key = size << 48 | start (capacity < 256 TiB)
_LOW = (1 << _SHIFT) - 1


class Arena:
    """Best-fit allocation of 64-byte-aligned blocks in ``[0, capacity)``, with coalescing.

    Free blocks sit in one list sorted by (size, start), encoded as single ints
    so ``bisect`` finds the smallest fitting block in O(log n); neighbours are
    merged on free through start/end maps, so freeing everything always leaves
    one block of the full capacity.
    """

    __slots__ = ("capacity", "used", "_by_size", "_free_at", "_free_end", "_live")

    def __init__(self, capacity: int):
        capacity -= capacity % ALIGN
        if capacity < 0 or capacity >= 1 << _SHIFT:
            raise ValueError(f"arena capacity {capacity} out of range")
        self.capacity = capacity
        self.used = 0
        self._by_size: list[int] = []          # size << _SHIFT | start, sorted
        self._free_at: dict[int, int] = {}     # start -> size of a free block
        self._free_end: dict[int, int] = {}    # end -> start of a free block
        self._live: dict[int, int] = {}        # start -> size of an allocated block
        if capacity:
            self._add_free(0, capacity)

    def alloc(self, nbytes: int) -> Optional[int]:
        """Offset of a new block of at least ``nbytes`` (0 allowed), or None if none fits."""
        if nbytes < 0:
            raise ValueError(f"cannot allocate {nbytes} bytes")
        need = (nbytes + ALIGN - 1) & -ALIGN or ALIGN   # 0 bytes still gets a unique offset
        by_size = self._by_size
        i = bisect_left(by_size, need << _SHIFT)
        if i == len(by_size):
            return None
        key = by_size.pop(i)
        start, size = key & _LOW, key >> _SHIFT
        del self._free_at[start]
        if size > need:
            # the remainder keeps the block's end: _add_free inlined (the hot path),
            # its end entry overwritten in place
            rest = start + need
            insort(by_size, (size - need) << _SHIFT | rest)
            self._free_at[rest] = size - need
            self._free_end[start + size] = rest
        else:
            del self._free_end[start + size]
        self._live[start] = need
        self.used += need
        return start

    def free(self, offset: int) -> None:
        """Return a block; ValueError if ``offset`` is not a live allocation (double free)."""
        try:
            size = self._live.pop(offset)
        except (KeyError, TypeError):
            raise ValueError(f"offset {offset!r} is not allocated in this arena") from None
        self.used -= size
        start, end = offset, offset + size
        free_at, free_end = self._free_at, self._free_end
        nxt = free_at.get(end)
        if nxt is not None:                    # merge with the free block after
            self._remove_free(end, nxt)
            end += nxt
        prev = free_end.get(start)
        if prev is not None:                   # merge with the free block before
            self._remove_free(prev, start - prev)
            start = prev
        insort(self._by_size, (end - start) << _SHIFT | start)     # _add_free, inlined
        free_at[start] = end - start
        free_end[end] = start

    def _add_free(self, start: int, size: int) -> None:
        insort(self._by_size, size << _SHIFT | start)
        self._free_at[start] = size
        self._free_end[start + size] = start

    def _remove_free(self, start: int, size: int) -> None:
        key = size << _SHIFT | start
        by_size = self._by_size
        del by_size[bisect_left(by_size, key)]
        del self._free_at[start]
        del self._free_end[start + size]

    @property
    def largest_free(self) -> int:
        return self._by_size[-1] >> _SHIFT if self._by_size else 0

    @property
    def free_blocks(self) -> int:
        return len(self._by_size)

    def __len__(self) -> int:
        return len(self._live)


class Slot:
    """``nbytes`` writable bytes at ``offset`` of segment ``region``; ``view`` is exactly that long."""

    __slots__ = ("region", "offset", "nbytes", "view")

    def __init__(self, region: str, offset: int, nbytes: int, view: memoryview):
        self.region = region
        self.offset = offset
        self.nbytes = nbytes
        self.view = view

    def ref(self, name: str, dtype: str, shape: list[int]) -> TensorRef:
        """A TensorRef describing this slot's contents, to send to another process."""
        return TensorRef(name, dtype, shape, self.region, self.offset, self.nbytes, SERVER_SHM)

    def __repr__(self) -> str:
        return f"Slot({self.region!r}, {self.offset}, {self.nbytes})"


class ArenaPool:
    """One process's shared-memory allocator: an arena segment plus one-off overflow segments.

    The arena segment ``segment_name(server_id, tag)`` is created on the first
    alloc, so it carries the owning process's pid (for orphan reaping). A request
    the arena cannot fit gets its own segment ``segment_name(server_id, f"{tag}-x{n}")``,
    unlinked again when freed. ``reserve`` allocates pages at creation so a full
    /dev/shm is a clean UNAVAILABLE error, not a SIGBUS. Not thread-safe.
    """

    def __init__(self, server_id: str, tag: str, size: int, reserve: bool = True):
        segment_name(server_id, tag)           # validate now, not on the first request
        self.server_id = server_id
        self.tag = tag
        self.size = size
        self.reserve = reserve
        self.region: Optional[str] = None      # arena segment name once created
        self._arena: Optional[Arena] = None
        self._segment: Optional[Segment] = None
        self._buf: Optional[memoryview] = None
        self._oneoffs: dict[str, Segment] = {}
        self._spares: list[Segment] = []      # freed one-offs kept for reuse (pages already in)
        self._oneoff_count = 0
        self._closed = False

    def alloc(self, nbytes: int) -> Slot:
        """A slot of exactly ``nbytes``, from the arena or else from a new one-off segment."""
        arena = self._arena
        if arena is None:
            arena = self._open()
        off = arena.alloc(nbytes) if arena is not None else None
        if off is None:
            return self._alloc_oneoff(nbytes)
        return Slot(self.region, off, nbytes, self._buf[off:off + nbytes])

    def free(self, region: str, offset: int) -> None:
        """Release a slot; a one-off segment is unlinked. ValueError for an unknown slot."""
        if region == self.region and region is not None:
            self._arena.free(offset)
            return
        seg = self._oneoffs.get(region)
        if seg is None or offset != 0:
            raise ValueError(f"slot ({region!r}, {offset!r}) was not allocated by this pool")
        del self._oneoffs[region]
        # Keep the most recent big segment: the next large tensor (a steady
        # stream of them is the usual case) reuses pages that are already
        # faulted in instead of zeroing a fresh tmpfs object. trim() drops it.
        self._spares.append(seg)
        while len(self._spares) > SPARES:
            self._drop(self._spares.pop(0))

    @property
    def has_spares(self) -> bool:
        return bool(self._spares)

    def trim(self) -> int:
        """Unlink the spare one-off segments (call when idle); returns bytes given back."""
        freed = sum(s.size for s in self._spares)
        for seg in self._spares:
            self._drop(seg)
        self._spares.clear()
        return freed

    @staticmethod
    def _drop(seg: Segment) -> None:
        seg.unlink()
        seg.close()

    def close(self, unlink: bool = True) -> None:
        """Unlink and unmap every segment this pool created. Idempotent. ``unlink=False``
        only unmaps: readers that have not mapped a segment yet still can (its creator's
        parent unlinks it later)."""
        self._closed = True
        segs = list(self._oneoffs.values()) + self._spares
        self._oneoffs.clear()
        self._spares = []
        if self._segment is not None:
            segs.append(self._segment)
        self._segment = self._arena = self._buf = None
        for seg in segs:
            if unlink:
                seg.unlink()
            seg.close()

    def stats(self) -> dict:
        """Counters for metrics and tests."""
        arena = self._arena
        return {
            "region": self.region,
            "capacity": arena.capacity if arena else 0,
            "used": arena.used if arena else 0,
            "live": len(arena) if arena else 0,
            "free_blocks": arena.free_blocks if arena else 0,
            "largest_free": arena.largest_free if arena else 0,
            "oneoff_live": len(self._oneoffs),
            "oneoff_bytes": sum(s.size for s in self._oneoffs.values()),
            "oneoff_created": self._oneoff_count,
            "spare_bytes": sum(s.size for s in self._spares),
        }

    def _open(self) -> Optional[Arena]:
        if self._closed:
            raise ValueError(f"ArenaPool '{self.tag}' is closed")
        if self.size <= 0:
            return None                        # no arena configured: every slot is a one-off
        name = segment_name(self.server_id, self.tag)
        try:
            self._segment = Segment.create(name, self.size, reserve=self.reserve)
        except TritonError as exc:
            if exc.code != Code.UNAVAILABLE:
                raise
            # /dev/shm cannot hold the whole arena (the parent said how to make room
            # at start): keep serving with one-off segments sized to each tensor.
            log.warning("shared-memory arena '%s' (%d bytes) does not fit: using per-tensor "
                        "segments instead: %s", self.tag, self.size, exc.message)
            self.size = 0
            return None
        self._buf = self._segment.buf
        self.region = name
        self._arena = Arena(self.size)
        return self._arena

    def _alloc_oneoff(self, nbytes: int) -> Slot:
        if nbytes < 0:
            raise ValueError(f"cannot allocate {nbytes} bytes")
        if self._closed:
            raise ValueError(f"ArenaPool '{self.tag}' is closed")
        seg = self._spare(nbytes)
        if seg is None:
            self._oneoff_count += 1
            name = segment_name(self.server_id, f"{self.tag}-x{self._oneoff_count}")
            seg = Segment.create(name, max(nbytes, 1), reserve=self.reserve)
        self._oneoffs[seg.name] = seg
        return Slot(seg.name, 0, nbytes, seg.buf[:nbytes])

    def _spare(self, nbytes: int) -> Optional[Segment]:
        """A kept segment that fits ``nbytes`` without wasting more than half of itself."""
        for i, seg in enumerate(self._spares):
            if nbytes <= seg.size <= 2 * max(nbytes, 1):
                return self._spares.pop(i)
        return None
