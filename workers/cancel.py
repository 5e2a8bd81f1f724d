"""Request cancellation as a running model sees it (``request.is_cancelled()``).

The worker is single-threaded and busy inside the model's ``execute`` while a
request runs, so nobody reads its inbox then. ``is_cancelled()`` therefore
polls the endpoint itself, without blocking: a ``CancelRunning`` for the
running batch is remembered; every other message (Release, the next Execute,
Shutdown, ...) is kept, in order, in a backlog the worker's loop handles
before it reads the socket again, so nothing is lost or reordered.
"""
from __future__ import annotations

import logging
import threading

import msgspec

from tritond import messages

log = logging.getLogger("tritond.workers.cancel")


class CancelWatch:
    """One per worker process: the running batch's cancelled requests and the backlog."""

    def __init__(self, endpoint) -> None:
        self.ep = endpoint
        self.batch_id = -1                           # the batch now executing (-1: idle)
        self.last_batch = -1                         # the last batch started
        self.cancelled: set[tuple[str, int]] = set()
        # A pipelined batch waits behind the running one: its cancels can
        # arrive before it starts, so they are kept by batch id until then.
        self.ahead: dict[int, set[tuple[str, int]]] = {}
        # Cancels of the batch the scheduler counts as running that came before its
        # Execute was read: the model sees them, the requests still run (not skipped).
        self.told: dict[int, set[tuple[str, int]]] = {}
        self.backlog: list = []
        # Requests answered after execute returned (workers/streams.py) are
        # cancelled whatever batch a CancelRunning names; the hub keeps those.
        self.streams = None                          # StreamHub, when the worker has one
        self._main = threading.get_ident()

    def start(self, batch_id: int) -> "set[tuple[str, int]] | frozenset":
        """A batch starts executing; returns its requests cancelled before it started."""
        self.batch_id = self.last_batch = batch_id
        if not self.ahead and not self.told:   # the usual turn: no cancel came ahead of it
            self.cancelled = set()
            return _NONE
        self.cancelled = self.ahead.pop(batch_id, set())
        early = set(self.cancelled)
        self.cancelled |= self.told.pop(batch_id, set())
        for kept in (self.ahead, self.told):
            for old in [b for b in kept if b < batch_id]:
                del kept[old]
        return early

    def stop(self) -> None:
        self.batch_id = -1
        self.cancelled = set()

    def note(self, msg: messages.CancelRunning) -> None:
        """Remember a CancelRunning for the running or a later batch (a stale one is dropped)."""
        keys = [(frontend, rid) for frontend, rid in msg.requests]
        if self.streams is not None:
            self.streams.cancel(keys, msg.batch_id == messages.ANSWERED)
        if msg.batch_id == self.batch_id:
            self.cancelled.update(keys)
        elif msg.batch_id > self.last_batch:
            kept = self.told if msg.running else self.ahead
            kept.setdefault(msg.batch_id, set()).update(keys)

    def is_cancelled(self, key: tuple[str, int]) -> bool:
        """Whether request ``key`` = (frontend, rid) was cancelled; polls the inbox once."""
        if key in self.cancelled:
            return True
        streams = self.streams
        if streams is not None and streams.is_cancelled(key):
            return True
        if threading.get_ident() != self._main:
            return False        # a model's own thread: only the loop reads the socket
        self.poll()
        return key in self.cancelled or (streams is not None and streams.is_cancelled(key))

    def poll(self) -> None:
        """Read the inbox once without blocking (the loop's own thread): cancels are noted,
        the rest kept for the loop. Also called while the loop's thread waits for an
        ``async def execute`` running on the model's event loop thread."""
        try:
            msgs = self.ep.recv(0)
        except msgspec.MsgspecError as exc:
            log.error("undecodable message frame: %s", exc)
            return
        for msg in msgs:
            if type(msg) is messages.CancelRunning:
                self.note(msg)
            else:
                self.backlog.append(msg)

    def take(self) -> list:
        """The messages read while a model ran, oldest first (the loop handles them next)."""
        backlog = self.backlog
        if backlog:
            self.backlog = []
        return backlog


_NONE: frozenset = frozenset()
_watch: CancelWatch | None = None


def install(watch: CancelWatch | None) -> None:
    """Make ``watch`` the process-wide one (the worker main does this once)."""
    global _watch
    _watch = watch


def poll() -> None:
    """Read the worker's inbox for cancels once (no-op outside a worker)."""
    watch = _watch
    if watch is not None:
        watch.poll()


def is_cancelled(key: tuple[str, int]) -> bool:
    """For backends: False outside a worker (e.g. a model run in-process by a unit test)."""
    watch = _watch
    return watch is not None and watch.is_cancelled(key)
