"""Priority queues with Triton's per-level queue policies.

One :class:`PolicyQueue` per model version holds one :class:`Level` per
priority level. Each level has a main FIFO and a *delayed* FIFO (requests
whose timeout expired under the DELAY action; they are served after the
level's non-expired requests). Removal is lazy: a cancelled, rejected or
dispatched entry is only marked, and fronts are trimmed when walked, so
``cancel`` is O(1) and nothing shifts a deque in the middle.

Levels are made when a request needs one (Triton's PriorityQueue does the same):
``priority_levels`` may be 2^64 - 1, and a level made for a request's priority is
dropped once empty, so clients' priorities cannot grow the queue. The default level
and the levels the config gives a policy of their own stay.

Timeouts live in one heap per queue keyed by deadline, so ``expire`` and
``next_timeout`` cost nothing for queues without timeouts.
"""
from __future__ import annotations

import bisect
import heapq
from collections import deque
from typing import Iterator

from .config import DELAY, Policy, SchedConfig

# Entry.state values
MAIN = 0       # waiting in its level's main FIFO
DELAYED = 1    # timed out under DELAY: waiting in the delayed FIFO
DONE = 2       # dispatched, rejected or cancelled (still physically queued: lazy removal)
CANCELLED = 3  # a sequence's request the client cancelled: it keeps its place (sequence_table.py)
SKIPPED = 4    # a sequence's dispatched request cancelled before it ran: its worker answers it,
               # the entry marks where it was (sequence_table.py)


class Entry:
    """One queued request and what the scheduler needs to know about it."""

    __slots__ = ("req", "size", "enqueue_ns", "state", "level", "seq", "shape", "owner")

    def __init__(self, req, size: int, enqueue_ns: int, level: int, seq: int):
        self.req = req               # a wire.RequestView
        self.size = size              # max(batch, 1): what counts toward max_batch_size
        self.enqueue_ns = enqueue_ns
        self.state = MAIN
        self.level = level
        self.seq = seq
        self.shape = None             # batching key, computed lazily by the batcher
        self.owner = None             # the sequence batcher's Sequence it belongs to


class Level:
    """One priority level: main + delayed FIFOs and its policy."""

    __slots__ = ("main", "delayed", "count", "policy", "index")

    def __init__(self, policy: Policy, index: int = 0) -> None:
        self.index = index            # priority level - 1
        self.main: deque[Entry] = deque()
        self.delayed: deque[Entry] = deque()
        self.count = 0                # live entries (MAIN or DELAYED)
        self.policy = policy

    def trim(self) -> None:
        """Drop finished entries from the fronts (amortised O(1))."""
        main = self.main
        while main and main[0].state != MAIN:
            main.popleft()
        delayed = self.delayed
        while delayed and delayed[0].state != DELAYED:
            delayed.popleft()


class PolicyQueue:
    """All queued requests of one model version, in Triton's service order."""

    __slots__ = ("levels", "by_index", "policies", "kept", "count", "epoch", "timeouts", "_seq")

    def __init__(self, cfg: SchedConfig) -> None:
        self.policies = cfg.policies
        # level indexes that stay when empty: the default level and those with a policy
        self.kept = {cfg.default_level - 1 if cfg.levels else 0, *cfg.policies.named}
        self.levels: list[Level] = []         # the levels there are, in service order
        self.by_index: dict[int, Level] = {}
        for index in sorted(self.kept):
            self._level(index)
        self.count = 0
        self.epoch = 0                # bumped on every removal or move (batcher cache key)
        # (deadline, seq, entry) heap; a due top (possibly stale) is the cheap
        # check before expire()
        self.timeouts: list[tuple[int, int, Entry]] = []
        self._seq = 0

    def _level(self, index: int) -> Level:
        level = self.by_index.get(index)
        if level is None:
            level = self.by_index[index] = Level(self.policies[index], index)
            bisect.insort(self.levels, level, key=lambda lv: lv.index)
        return level

    def _drop_if_empty(self, level: Level) -> None:
        if not level.count and level.index not in self.kept \
                and self.by_index.get(level.index) is level:
            del self.by_index[level.index]
            self.levels.remove(level)

    def push(self, req, level_index: int, now_ns: int) -> Entry | None:
        """Queue ``req``; None when the level is full (max_queue_size)."""
        level = self._level(level_index)
        policy = level.policy
        if policy.max_queue_size and level.count >= policy.max_queue_size:
            return None
        self._seq += 1
        batch = req.batch
        entry = Entry(req, batch if batch > 1 else 1, now_ns, level_index, self._seq)
        level.main.append(entry)
        level.count += 1
        self.count += 1
        if policy.timeout_ns or policy.allow_override:
            deadline = policy.deadline(now_ns, req.timeout_us)
            if deadline:
                heap = self.timeouts
                heapq.heappush(heap, (deadline, entry.seq, entry))
                if len(heap) > 2 * self.count + 64:
                    self._compact()
        return entry

    def requeue_front(self, entries: list[Entry]) -> None:
        """Put dispatched entries back at the front of their levels, in their order.

        For a pipelined batch whose worker died before starting it: those
        requests never ran, so they are served next instead of failing.
        """
        for entry in reversed(entries):
            entry.state = MAIN
            level = self._level(entry.level)
            level.main.appendleft(entry)
            level.count += 1
            self.count += 1
        self.epoch += 1

    def finish(self, entry: Entry) -> bool:
        """Mark ``entry`` done (dispatched/cancelled/rejected); False if it already was."""
        if entry.state == DONE:
            return False
        entry.state = DONE
        self.epoch += 1
        level = self.by_index[entry.level]
        level.count -= 1
        self.count -= 1
        self._drop_if_empty(level)
        return True

    def pop(self) -> Entry | None:
        """Take the next entry in service order out of the queue (the per-request path
        of the default scheduler)."""
        for level in self.levels:
            if level.count:
                main = level.main
                while main and main[0].state != MAIN:
                    main.popleft()
                if main:
                    entry = main.popleft()
                else:
                    level.trim()
                    entry = level.delayed.popleft()
                entry.state = DONE
                level.count -= 1
                self.count -= 1
                self.epoch += 1
                self._drop_if_empty(level)
                return entry
        return None

    def take(self, entries: list[Entry]) -> int:
        """Take live ``entries`` (a batch just formed) out of the queue; their total size."""
        levels = self.by_index
        size = 0
        for entry in entries:
            entry.state = DONE
            levels[entry.level].count -= 1
            size += entry.size
        self.count -= len(entries)
        self.epoch += 1
        if len(levels) > 1:
            for level in {entry.level: levels[entry.level] for entry in entries}.values():
                self._drop_if_empty(level)
        return size

    def expire(self, now_ns: int) -> list[Entry]:
        """Apply timeouts due by ``now_ns``: DELAY moves, REJECT returns the entries."""
        heap = self.timeouts
        rejected: list[Entry] = []
        while heap and heap[0][0] <= now_ns:
            entry = heapq.heappop(heap)[2]
            if entry.state != MAIN:
                continue
            self.epoch += 1
            level = self.by_index[entry.level]
            if level.policy.timeout_action == DELAY:
                entry.state = DELAYED
                level.delayed.append(entry)
            else:
                self.finish(entry)
                rejected.append(entry)
        return rejected

    def _compact(self) -> None:
        """Drop heap items of finished entries: dispatched requests leave theirs behind,
        which would otherwise pile up for as long as the timeout (amortised O(1))."""
        live = [item for item in self.timeouts if item[2].state == MAIN]
        heapq.heapify(live)
        self.timeouts = live

    def next_timeout(self) -> int | None:
        """Earliest pending deadline (stale heap tops are dropped on the way)."""
        heap = self.timeouts
        while heap and heap[0][2].state != MAIN:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def walk(self) -> Iterator[Entry]:
        """Live entries in service order: level 1 first; main, then delayed."""
        for level in self.levels:
            if not level.count:
                continue
            level.trim()
            for entry in level.main:
                if entry.state == MAIN:
                    yield entry
            for entry in level.delayed:
                if entry.state == DELAYED:
                    yield entry

    def drain(self) -> list[Entry]:
        """Remove and return every live entry (model gone)."""
        entries = list(self.walk())
        for entry in entries:
            self.finish(entry)
        for level in list(self.levels):
            level.main.clear()
            level.delayed.clear()
        self.timeouts.clear()
        self.epoch += 1
        return entries
