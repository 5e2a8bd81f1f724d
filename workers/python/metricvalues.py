"""The values of a worker's custom metrics, in place in one fixed-layout /dev/shm file.

A model may update a metric per request; rewriting the registry's file on every
update cost a file write each (~70 µs). Here the registry's *shape* (families,
labels, buckets) is still published as a small file when it changes
(``custom_metrics._publish``), but each series' numbers live in a slot of this
array of float64, written in place: an update is a few stores into a shared
mapping, and a scrape that follows it (even from inside the same ``execute``:
python_backend's QA ``custom_metrics``) reads the page the model just wrote.

A slot is ``[uid, updated_ns, value, sum, count, counts...]``. ``uid`` names the
series that owns it (never reused, 0 = free): a reader holding a shape older
than a freed or reused slot sees another uid and reads again (``read``).
Without a path (unit tests) the array lives in process memory.
"""
from __future__ import annotations

import mmap
import os

HEAD = 5                        # uid, updated_ns, value, sum, count
UID, UPDATED, VALUE, SUM, COUNT = range(HEAD)
SUFFIX = ".values"              # next to the shape file: the same /dev/shm prefix


class Values:
    """A growable float64 array, in a file when ``path`` is given; slots by width."""

    def __init__(self, capacity: int = 512) -> None:
        self.path: str | None = None
        self._fd = -1
        self._map = None
        self.v = memoryview(bytearray(8 * capacity)).cast("d")
        self._next = 0
        self._free: dict[int, list[int]] = {}      # width -> free slots
        self._uid = 0

    def to_file(self, path: str) -> None:
        """From now on in the file ``path`` (the numbers so far copied into it)."""
        self.close()
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._remap(len(self.v))

    def _remap(self, capacity: int) -> None:
        os.ftruncate(self._fd, 8 * capacity)
        new = mmap.mmap(self._fd, 8 * capacity)
        view = memoryview(new).cast("d")
        old, old_map = self.v, self._map
        if old_map is None:                        # from process memory into the file
            view[:len(old)] = old
        self.v, self._map = view, new
        old.release()
        if old_map is not None:
            old_map.close()

    def allocate(self, width: int) -> tuple[int, int]:
        """(slot, uid) of a zeroed slot of ``width`` values."""
        free = self._free.get(width)
        if free:
            slot = free.pop()
        else:
            slot, self._next = self._next, self._next + width
            if self._next > len(self.v):
                self._grow(max(2 * len(self.v), self._next))
        v = self.v
        for i in range(slot + 1, slot + width):
            v[i] = 0.0
        self._uid += 1
        v[slot] = float(self._uid)                 # last: the slot is whole when named
        return slot, self._uid

    def release(self, slot: int, width: int) -> None:
        self.v[slot + UID] = 0.0
        self._free.setdefault(width, []).append(slot)

    def _grow(self, capacity: int) -> None:
        if self._fd >= 0:
            self._remap(capacity)
            return
        old = self.v
        self.v = memoryview(bytearray(8 * capacity)).cast("d")
        self.v[:len(old)] = old
        old.release()

    def close(self) -> None:
        """Remove the file; the numbers go on in process memory (a model's stale Metric
        objects may still write to their slots: harmless there)."""
        if self._fd < 0:
            return
        mapped, self.v = self.v, memoryview(bytearray(8 * len(self.v))).cast("d")
        self.v[:] = mapped
        mapped.release()
        self._map.close()
        os.close(self._fd)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._fd, self._map, self.path = -1, None, None


def width(buckets: list | None) -> int:
    return HEAD + (len(buckets) + 1 if buckets is not None else 0)


def read(path: str):
    """The float64 array of ``path`` (a copy: a scrape's snapshot); empty when gone."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    return memoryview(data[:len(data) // 8 * 8]).cast("d")
