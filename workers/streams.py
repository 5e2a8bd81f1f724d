"""Responses sent after ``execute`` returned (decoupled models, response senders).

A decoupled model answers a request 0..N times, from ``execute`` or from its
own threads, long after the worker told the scheduler the instance is free.
The worker's loop is single-threaded and owns the sockets, the output arena
and the slot bookkeeping, so a model thread never touches them: its
``send`` appends to a lock-protected outbox and wakes the loop through an
eventfd registered in the endpoint's selector; the loop (:meth:`StreamHub.drain`)
writes the outputs into the arena and posts the Responses in send order.
A send on the loop's own thread (inside ``execute``) is written at once.

Backpressure: output slots are credits. A request may hold at most
``MAX_HELD`` responses (or ``MAX_HELD_BYTES``, one response always fits)
that its reader has not released yet; past that ``send`` blocks until the
frontend releases some (non-final Releases come straight to this worker), or
the request is cancelled. A slow reader therefore pauses the model instead of
growing /dev/shm or the frontend's memory.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Callable, Optional

import numpy as np

from tritond import messages
from tritond.errors import Code
from tritond.messages import ErrorInfo, Response

from .outputs import as_output

log = logging.getLogger("tritond.workers.streams")

MAX_HELD = 256                   # unreleased responses per request before send blocks
MAX_HELD_BYTES = 16 << 20        # ... or unreleased output bytes (one response always fits)
FLUSH_S = 0.0005                 # sends inside execute leave in frames at most this far apart
WAIT_S = 0.05                    # how often a blocked send re-checks (cancel, shutdown)


class Stream:
    """One request answered through its response sender."""

    __slots__ = ("key", "rid", "frontend", "version", "outputs", "sent", "closed",
                 "cancelled", "held", "held_bytes", "index", "last_ns", "parked")

    def __init__(self, req: messages.Request, outputs: list[str]) -> None:
        self.key = (req.frontend, req.rid)
        self.rid = req.rid
        self.frontend = req.frontend
        self.version = req.version
        self.outputs = outputs           # requested output names (others are pruned)
        self.sent = 0                    # responses handed to the loop
        self.closed = False              # the final one was handed over
        self.cancelled = False
        self.held = 0                    # responses not yet released by the reader
        self.held_bytes = 0
        self.index = 0                   # responses posted (the response_stats key)
        self.last_ns = time.monotonic_ns()   # execute start, then the last response
        self.parked = False              # rescheduled: queued in the scheduler (reschedule.py)


class _Credit:
    """The slots of one drained response; its credit returns with the last one."""

    __slots__ = ("stream", "nbytes", "left")

    def __init__(self, stream: Stream, nbytes: int, left: int) -> None:
        self.stream = stream
        self.nbytes = nbytes
        self.left = left


def _outputs(response) -> tuple[dict, Optional[ErrorInfo], dict]:
    """(outputs, error, parameters) of a pb_utils.InferenceResponse (or None)."""
    if response is None:
        return {}, None, {}
    if response.has_error():
        err = response.error()
        return {}, ErrorInfo(int(err.code()), err.message()), {}
    outs = {t.name(): t._array for t in response.output_tensors()}   # numpy or cupy
    return outs, None, response._parameters     # checked by InferenceResponse already


def _nbytes(response) -> int:
    """The output bytes a response will take (its credit), estimated at send time."""
    if response is None or response._error is not None:
        return 0
    total = 0
    for t in response._outputs:
        arr = t._array
        total += arr.nbytes if arr.dtype != np.object_ else 64 * arr.size
    return total


class StreamHub:
    """The open streams of one worker, the thread-safe outbox and the credits."""

    def __init__(self, instance: str, writer, io, post: Callable[[str, object], None],
                 flush: Callable[[], None]) -> None:
        self.instance = instance
        self.writer = writer             # workers.outputs.OutputWriter
        self.io = io                     # workers.shapes.ModelIO
        self._post = post
        self._flush = flush
        self._cond = threading.Condition()
        self._outbox: deque = deque()
        self._main = threading.get_ident()
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._woken = False
        self.streams: dict[tuple[str, int], Stream] = {}
        self._credits: dict[tuple[str, int], _Credit] = {}
        self.pump: Optional[Callable[[float], None]] = None   # the loop's inbox, read while blocked
        self._last_flush = 0.0
        self.closing = False     # shutting down: sends never block (finalize may join senders)
        self._new: list[Stream] = []             # opened during the running execute
        self.stats: dict[int, list[int]] = {}    # response index -> ResponseStats row

    def fileno(self) -> int:
        return self._efd

    def on_wake(self) -> None:
        """The endpoint saw the eventfd: consume it (the loop drains next)."""
        try:
            os.eventfd_read(self._efd)
        except (BlockingIOError, OSError):
            pass

    # ------------------------------------------------------------ streams

    def open(self, req: messages.Request, outputs: list[str]) -> Stream:
        """Start answering ``req`` through the hub (the loop's thread)."""
        stream = Stream(req, outputs)
        self.streams[stream.key] = stream
        self._new.append(stream)
        return stream

    def is_cancelled(self, key) -> bool:
        stream = self.streams.get(key)
        return stream is not None and stream.cancelled

    def cancel(self, keys, answered: bool = False) -> None:
        """Requests the client gave up on: their senders' is_cancelled() turns true;
        ``answered`` (their final answer came from elsewhere): a parked one is dropped."""
        with self._cond:
            hit = False
            for key in keys:
                stream = self.streams.get(tuple(key))
                if stream is not None:
                    stream.cancelled = hit = True
                    if answered and stream.parked:     # nothing will send on it again
                        del self.streams[stream.key]
            if hit:
                self._cond.notify_all()

    # ------------------------------------------------------------ sending

    def submit(self, stream: Stream, response, final: bool) -> None:
        """A model's ``send`` (any thread): hand the response to the loop, in order."""
        size = _nbytes(response)
        main = threading.get_ident() == self._main
        with self._cond:
            while self._full(stream, size) and not final:
                if main:
                    self._cond.release()
                    try:
                        self.drain()
                        self._flush()
                        if self.pump is not None:
                            self.pump(WAIT_S)    # reads Releases and Cancels meanwhile
                    finally:
                        self._cond.acquire()
                else:
                    self._cond.wait(WAIT_S)
            stream.sent += 1
            stream.held += 1
            stream.held_bytes += size
            if final:
                stream.closed = True
            self._outbox.append((stream, response, final, size))
            if not self._woken and not main and self._efd >= 0:
                os.eventfd_write(self._efd, 1)   # under the lock: close() cannot race it
            self._woken = True
        if main:
            # Inside execute: written now, and sent at most FLUSH_S later (or
            # when execute returns), so a model streaming from execute streams.
            self.drain()
            now = time.perf_counter()
            if final or now - self._last_flush > FLUSH_S:
                self._last_flush = now
                self._flush()

    def stop_blocking(self) -> None:
        """Shutting down: no send waits for credits any more."""
        with self._cond:
            self.closing = True
            self._cond.notify_all()

    def _full(self, stream: Stream, size: int) -> bool:
        if stream.cancelled or not stream.held or self.closing:
            return False
        return stream.held >= MAX_HELD or stream.held_bytes + size > MAX_HELD_BYTES

    def drain(self) -> None:
        """Write and post every response handed over so far (the loop's thread)."""
        if not self._outbox:   # unlocked peek: a racing send wakes the loop through the eventfd
            return
        with self._cond:
            items, self._outbox = self._outbox, deque()
            self._woken = False
        for stream, response, final, size in items:
            self._send(stream, response, final, size)

    def _send(self, stream: Stream, response, final: bool, size: int) -> None:
        t0 = time.monotonic_ns()
        try:
            outs, error, params = _outputs(response)
        except Exception as exc:  # noqa: BLE001 - a malformed response fails as data
            outs, error, params = {}, ErrorInfo(int(Code.INTERNAL), str(exc)), {}
        refs = []
        for name in stream.outputs:
            arr = outs.get(name)
            if arr is None or error is not None:
                continue
            try:
                arr = as_output(arr)
                ref = self.writer.write(name, arr, self.io.client_shape(name, arr.shape), None)
            except Exception as exc:  # noqa: BLE001 - e.g. an unsupported dtype
                ref = ErrorInfo(int(Code.INTERNAL), str(exc))
            if isinstance(ref, ErrorInfo):
                error = ref
                break
            refs.append(ref)
        if error is not None:
            self.writer.discard(refs)
            refs = []
        if refs:
            credit = _Credit(stream, size, len(refs))
            for ref in refs:
                self._credits[(ref.region, ref.offset)] = credit
        else:
            self._returned(stream, size)
        self._post(stream.frontend, Response(
            stream.rid, error=error, outputs=refs, parameters=params, instance=self.instance,
            model_version=stream.version, final=final, empty=response is None))
        self._account(stream, response is None, error, t0)
        if final and not stream.held:
            self.streams.pop(stream.key, None)

    def _account(self, stream: Stream, empty: bool, error: Optional[ErrorInfo],
                 t0: int) -> None:
        """Triton's response_stats at this response's index (see ResponseStats), counted
        as its InferenceStatsAggregator counts them: an empty response is compute_infer
        and empty_response, a cancelled one (the client's cancel, or an error response
        with code CANCELLED) only cancel, each with its duration."""
        t1 = time.monotonic_ns()
        infer, output = t0 - stream.last_ns, t1 - t0
        stream.last_ns = t1
        row = self.stats.get(stream.index)
        if row is None:
            row = self.stats[stream.index] = [0] * 12
        stream.index += 1
        if stream.cancelled or (error is not None and error.code == int(Code.CANCELLED)):
            row[10] += 1
            row[11] += infer + output
        elif empty:
            row[0] += 1
            row[1] += infer + output
            row[8] += 1
            row[9] += infer + output
        else:
            row[0] += 1
            row[1] += infer
            row[2] += 1
            row[3] += output
            k = 4 if error is None else 6
            row[k] += 1
            row[k + 1] += infer + output

    def take_stats(self) -> list:
        """The response_stats rows gathered since the last call."""
        stats, self.stats = self.stats, {}
        return list(stats.items())

    def after_execute(self) -> None:
        """``execute`` returned: requests opened by it that are still open with nothing
        sent get a marker, so their frontend knows which worker answers them
        (its cancels come here directly; a crash of this worker fails them)."""
        new = self._new
        if not new:
            return
        self._new = []
        for stream in new:
            if not stream.sent and not stream.closed:
                self._post(stream.frontend, Response(stream.rid, instance=self.instance,
                                                     final=False, empty=True))

    # ------------------------------------------------------------ credits

    def released(self, region: str, offset: int) -> None:
        """The reader released a slot (the loop's thread, after OutputWriter.release)."""
        credit = self._credits.pop((region, offset), None)
        if credit is None:
            return
        credit.left -= 1
        if credit.left == 0:
            self._returned(credit.stream, credit.nbytes)

    def _returned(self, stream: Stream, nbytes: int) -> None:
        with self._cond:
            stream.held -= 1
            stream.held_bytes -= nbytes
            self._cond.notify_all()
        if stream.closed and not stream.held and self.streams.get(stream.key) is stream:
            del self.streams[stream.key]

    def close(self) -> None:
        with self._cond:     # a model thread must never write to a reused fd number
            efd, self._efd = self._efd, -1
        if efd >= 0:
            os.close(efd)
