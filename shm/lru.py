"""A least-recently-used byte store in one POSIX shared-memory segment (the response cache).

Every frontend maps the same segment, so an entry one frontend inserted is a
hit on all of them. The parent creates and lays out the segment before any
frontend starts (:func:`create`); frontends :meth:`SharedLru.attach` it.

Concurrency: one lock for the whole store, an ``flock`` on the segment's own
file descriptor (each process opens its own). The kernel drops the lock of a
process that dies, so a killed frontend never leaves it held, and there is no
named semaphore to reap. Every operation is short and bounded (a hash probe,
relinking a few list nodes, one copy of the entry), so holding a lock across
processes costs less than any single-writer scheme, which would have to move
the bytes to the writer first.

Layout (int64 words, then the data blocks)::

    header   [HEADER]   magic, layout, block size, counts, list heads, statistics
    entries  [max_entries x ENTRY]  k0, k1, first block, nbytes, prev, next
    slots    [nslots]   entry id or -1: open addressing, linear probing on k0
    blocks   [nblocks]  next block of the same entry (a free block: next free one)
    data     [nblocks x block size]

Keys are 16-byte digests (k0, k1). An entry's bytes live in a chain of fixed
blocks, so eviction of the least recently used entries (a doubly linked list,
most recent first) always frees usable space; on a fresh store the free list
hands out consecutive blocks and chains are copied run by run.
"""
from __future__ import annotations

import fcntl
import struct

from .region import Segment

MAGIC = 0x7472_6974_6F6E_6443   # "tritondC"
LAYOUT = 1
HEADER = 16
ENTRY = 6
(_MAGIC, _LAYOUT, _BLOCK, _NBLOCKS, _NSLOTS, _MAXENT, _FREE_BLOCK, _FREE_BLOCKS, _FREE_ENTRY,
 _HEAD, _TAIL, _COUNT, _EVICTIONS, _USED, _SIZE, _INSERTS) = range(HEADER)
_K0, _K1, _FIRST, _NBYTES, _PREV, _NEXT = range(ENTRY)
MAX_BLOCKS = 16384       # bounds the metadata (~1.3 MiB) and the per-entry walk


def geometry(size: int) -> tuple[int, int, int, int]:
    """(block size, blocks, max entries, hash slots) for a data budget of ``size`` bytes."""
    block = 64
    while size // block > MAX_BLOCKS:
        block *= 2
    nblocks = max(1, size // block)
    nslots = 1
    while nslots < 2 * nblocks:
        nslots *= 2
    return block, nblocks, nblocks, nslots


def total_bytes(size: int) -> int:
    block, nblocks, maxent, nslots = geometry(size)
    return 8 * (HEADER + maxent * ENTRY + nslots + nblocks) + nblocks * block


def create(name: str, size: int) -> Segment:
    """Create and lay out the segment (the parent, before any frontend maps it)."""
    block, nblocks, maxent, nslots = geometry(size)
    seg = Segment.create(name, total_bytes(size), reserve=True)
    words = seg.buf[:8 * (HEADER + maxent * ENTRY + nslots + nblocks)].cast("q")
    h = [0] * HEADER
    h[_MAGIC], h[_LAYOUT], h[_BLOCK], h[_NBLOCKS] = MAGIC, LAYOUT, block, nblocks
    h[_NSLOTS], h[_MAXENT], h[_FREE_BLOCK], h[_FREE_BLOCKS] = nslots, maxent, 0, nblocks
    h[_FREE_ENTRY], h[_HEAD], h[_TAIL], h[_SIZE] = 0, -1, -1, nblocks * block
    words[:HEADER] = _pack(h)
    ents = HEADER
    for e in range(maxent):             # the free entry list: 0 -> 1 -> ... (in _NEXT)
        words[ents + e * ENTRY + _NEXT] = e + 1 if e + 1 < maxent else -1
    slots = ents + maxent * ENTRY
    words[slots:slots + nslots] = _pack([-1] * nslots)
    nxt = slots + nslots
    words[nxt:nxt + nblocks] = _pack([*range(1, nblocks), -1])
    words.release()
    return seg


def _pack(values: list[int]) -> memoryview:
    return memoryview(struct.pack(f"{len(values)}q", *values)).cast("q")


class SharedLru:
    """One process's handle on the store; every public method takes the lock."""

    def __init__(self, seg: Segment) -> None:
        self.seg = seg
        words = seg.buf.cast("q")
        if words[_MAGIC] != MAGIC or words[_LAYOUT] != LAYOUT:
            raise ValueError(f"{seg.name} is not a tritond response cache")
        self.block = words[_BLOCK]
        self.nblocks = words[_NBLOCKS]
        self.mask = words[_NSLOTS] - 1
        maxent = words[_MAXENT]
        self.h = words
        self.ents = HEADER
        self.slots = HEADER + maxent * ENTRY
        self.next = self.slots + words[_NSLOTS]
        self.data = seg.buf[8 * (self.next + self.nblocks):]
        self.size = words[_SIZE]

    @classmethod
    def attach(cls, name: str) -> "SharedLru":
        return cls(Segment.attach(name, keep_fd=True))

    def close(self) -> None:
        self.h.release()
        self.data.release()
        self.seg.close()

    # ------------------------------------------------------------ public

    def get(self, key: bytes) -> bytearray | None:
        """A copy of the entry stored under ``key`` (now the most recent), or None."""
        k0, k1 = struct.unpack_from("<qq", key)
        with self._locked():
            e = self._find(k0, k1)[1]
            if e < 0:
                return None
            self._unlink(e)
            self._push_front(e)
            return self._read(e)

    def put(self, key: bytes, blob: bytes) -> bool:
        """Store ``blob`` under ``key``, evicting the least recently used entries to make
        room; False when it is bigger than the whole store (or empty)."""
        need = -(-len(blob) // self.block)
        if not 0 < need <= self.nblocks:
            return False
        k0, k1 = struct.unpack_from("<qq", key)
        h = self.h
        with self._locked():
            slot, e = self._find(k0, k1)
            if e >= 0:
                return True             # another frontend stored the same answer first
            while h[_FREE_BLOCKS] < need or h[_FREE_ENTRY] < 0:
                self._evict(h[_TAIL])
            slot = self._find(k0, k1)[0]       # evictions may have moved the probe chain
            first = self._take_blocks(need)
            self._write(first, blob)
            e = h[_FREE_ENTRY]
            base = self.ents + e * ENTRY
            h[_FREE_ENTRY] = h[base + _NEXT]
            h[base + _K0], h[base + _K1], h[base + _FIRST] = k0, k1, first
            h[base + _NBYTES] = len(blob)
            h[self.slots + slot] = e
            self._push_front(e)
            h[_COUNT] += 1
            h[_USED] += len(blob)
            h[_INSERTS] += 1
        return True

    def stats(self) -> dict:
        h = self.h
        with self._locked():
            return {"entries": h[_COUNT], "used": h[_USED], "evictions": h[_EVICTIONS],
                    "inserts": h[_INSERTS], "free_blocks": h[_FREE_BLOCKS]}

    def keys_by_recency(self) -> list[bytes]:
        """Every key, most recent first (tests and debugging)."""
        out, h = [], self.h
        with self._locked():
            e = h[_HEAD]
            while e >= 0:
                base = self.ents + e * ENTRY
                out.append(struct.pack("<qq", h[base + _K0], h[base + _K1]))
                e = h[base + _NEXT]
        return out

    # ------------------------------------------------------------ inside the lock

    def _locked(self):
        return _Flock(self.seg.fd)

    def _find(self, k0: int, k1: int) -> tuple[int, int]:
        """(slot, entry) of the key, or (the empty slot where it would go, -1)."""
        h, ents, slots, mask = self.h, self.ents, self.slots, self.mask
        i = k0 & mask
        while True:
            e = h[slots + i]
            if e < 0:
                return i, -1
            base = ents + e * ENTRY
            if h[base + _K0] == k0 and h[base + _K1] == k1:
                return i, e
            i = (i + 1) & mask

    def _unlink(self, e: int) -> None:
        h, base = self.h, self.ents + e * ENTRY
        prev, nxt = h[base + _PREV], h[base + _NEXT]
        if prev >= 0:
            h[self.ents + prev * ENTRY + _NEXT] = nxt
        else:
            h[_HEAD] = nxt
        if nxt >= 0:
            h[self.ents + nxt * ENTRY + _PREV] = prev
        else:
            h[_TAIL] = prev

    def _push_front(self, e: int) -> None:
        h, base = self.h, self.ents + e * ENTRY
        head = h[_HEAD]
        h[base + _PREV], h[base + _NEXT] = -1, head
        if head >= 0:
            h[self.ents + head * ENTRY + _PREV] = e
        else:
            h[_TAIL] = e
        h[_HEAD] = e

    def _evict(self, e: int) -> None:
        h, base = self.h, self.ents + e * ENTRY
        self._unlink(e)
        self._delete_slot(self._find(h[base + _K0], h[base + _K1])[0])
        self._free_blocks(h[base + _FIRST])
        h[_USED] -= h[base + _NBYTES]
        h[base + _NEXT] = h[_FREE_ENTRY]
        h[_FREE_ENTRY] = e
        h[_COUNT] -= 1
        h[_EVICTIONS] += 1

    def _delete_slot(self, i: int) -> None:
        """Backward-shift deletion: later members of the probe run move up, no tombstones."""
        h, slots, mask, ents = self.h, self.slots, self.mask, self.ents
        j = i
        while True:
            j = (j + 1) & mask
            f = h[slots + j]
            if f < 0:
                break
            home = h[ents + f * ENTRY + _K0] & mask
            # f stays when its home lies cyclically in (i, j]
            if (i < home <= j) if i <= j else (home > i or home <= j):
                continue
            h[slots + i] = f
            i = j
        h[slots + i] = -1

    def _take_blocks(self, need: int) -> int:
        h, nxt = self.h, self.next
        first = last = h[_FREE_BLOCK]
        for _ in range(need - 1):
            last = h[nxt + last]
        h[_FREE_BLOCK] = h[nxt + last]
        h[nxt + last] = -1
        h[_FREE_BLOCKS] -= need
        return first

    def _free_blocks(self, first: int) -> None:
        h, nxt = self.h, self.next
        last, n = first, 1
        while h[nxt + last] >= 0:
            last = h[nxt + last]
            n += 1
        h[nxt + last] = h[_FREE_BLOCK]
        h[_FREE_BLOCK] = first
        h[_FREE_BLOCKS] += n

    def _runs(self, first: int, nbytes: int):
        """(data offset, length) of each run of consecutive blocks of a chain."""
        h, nxt, block = self.h, self.next, self.block
        b, left = first, nbytes
        while b >= 0 and left > 0:
            start = run = b
            while h[nxt + run] == run + 1:
                run += 1
            length = min((run - start + 1) * block, left)
            yield start * block, length
            left -= length
            b = h[nxt + run]

    def _write(self, first: int, blob: bytes) -> None:
        data, src, pos = self.data, memoryview(blob), 0
        for at, length in self._runs(first, len(blob)):
            data[at:at + length] = src[pos:pos + length]
            pos += length

    def _read(self, e: int) -> bytearray:
        h, base = self.h, self.ents + e * ENTRY
        nbytes = h[base + _NBYTES]
        out = bytearray(nbytes)
        data, pos = self.data, 0
        for at, length in self._runs(h[base + _FIRST], nbytes):
            out[pos:pos + length] = data[at:at + length]
            pos += length
        return out


class _Flock:
    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
