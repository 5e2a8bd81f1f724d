"""The sequence batcher's bookkeeping: sequences, each instance's slots, not-ready rows."""
from __future__ import annotations

from collections import deque

from .queue import CANCELLED, DONE, MAIN, Entry
from .wire import RequestView


class Sequence:
    """One live sequence: its queued requests (in order) and where it runs."""

    __slots__ = ("corrid", "entries", "last_ns", "home", "slot", "expires")

    def __init__(self, corrid) -> None:
        self.corrid = corrid
        self.entries: deque[Entry] = deque()
        self.last_ns = 0            # arrival of its latest request (idle timeout)
        self.home: Home | None = None   # None while in the backlog, or once ended
        self.slot = -1
        self.expires = 0            # in the backlog: its requests' earliest timeout (0: none)

    def head(self) -> Entry | None:
        """The next request of the slot (dispatched ones are dropped on the way); a
        cancelled one (``CANCELLED``, or a skipped one's mark, ``SKIPPED``) stays until
        its slot reaches it (sequence_table.py)."""
        entries = self.entries
        while entries and entries[0].state == DONE:
            entries.popleft()
        return entries[0] if entries else None

    def cancelled(self) -> bool:
        """Whether a request of it was cancelled (Triton's IsAnyRequestCancelled)."""
        return any(e.state == CANCELLED for e in self.entries)

    def cancelled_head(self) -> bool:
        """Whether its next request is a cancelled one (or the mark of one skipped)."""
        head = self.head()
        return head is not None and head.state != MAIN


class Home:
    """One instance's sequence slots (slot i holds a Sequence or None)."""

    __slots__ = ("inst", "slots", "ended")

    def __init__(self, inst, count: int) -> None:
        self.inst = inst
        self.slots: list[Sequence | None] = [None] * count
        self.ended: list[int] = []  # slots force-ended since the last batch (worker drops state)

    def free(self) -> int:
        """The lowest free slot, or -1."""
        for i, seq in enumerate(self.slots):
            if seq is None:
                return i
        return -1

    def used(self) -> int:
        return sum(seq is not None for seq in self.slots)


def null_row(req: RequestView, rid: int) -> RequestView:
    """A not-ready row shaped like ``req`` (same input references, read only): no
    requester, no sequence, a negative ``rid`` unique in its batch; the worker runs
    it with READY false and answers nobody."""
    return RequestView(rid, "", req.model, req.version, req.inputs, req.outputs, req.batch)
