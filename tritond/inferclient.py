"""InferClient: the one way to run an inference from any process.

A pure object (no sockets, no tasks): its owner gives it ``post(addr, msg)``,
its own inbox address, the scheduler's address, an input ``ArenaPool`` and a
``SegmentCache``, and feeds it every ``Response`` its inbox receives
(:meth:`InferClient.on_response`). The frontend uses it for HTTP and gRPC;
the scheduler (ensembles), a worker (BLS) and an in-process API can too.

One request, start to finish::

    slots = []
    refs = [client.stage(name, dtype, shape, data, nbytes, slots), ...]  # or TensorRefs as given
    fut = client.submit(messages.Request(0, "", model, version, refs, ...), slots)
    resp = await fut                 # unary: the first final Response
    # or: async for resp in client.stream(req, slots): ...   (N responses, last one final)
    # or: client.stream(req, slots, callback=q.put)          (no event loop needed)
    release = client.releaser(resp)  # once the outputs are read: back to resp.instance

Buffer ownership: input slots are ours until the request's *final* Response
(a worker reads them until then, even after a Cancel); each output TensorRef
of kind SERVER_SHM belongs to ``Response.instance`` and goes back to it with
a ``Release`` through the scheduler, which hands it over with that worker's
next ``Execute``. Releases wait for this client's next Request (one frame) or
``linger_s``; one-off (big) segments go at once (``tritond/releases.py``).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from tritond import messages
from tritond.departures import exit_reasons, gone, live_workers
from tritond.releases import OutputReleases
from tritond.responsestream import ResponseStream
from tritond.shm.arena import ALIGN, ArenaPool
from tritond.shm.views import SegmentCache

log = logging.getLogger("tritond.inferclient")
RELEASE_LINGER_S = 0.005   # an idle client hands output slots back after this


class InferClient:
    """Requests in flight from one process (one inbox address); not thread-safe."""

    def __init__(self, post: Callable[[str, object], None], address: str, scheduler: str,
                 arena: ArenaPool, cache: SegmentCache,
                 linger_s: Optional[float] = RELEASE_LINGER_S):
        self.address = address
        self.scheduler = scheduler
        self.arena = arena
        self.cache = cache
        self._post = post
        # post_many(addr, msgs): several messages as one frame (AsyncOutbox.post_many)
        self.post_many: Optional[Callable[..., None]] = None
        # post_batched(addr, msg): a sequence step, not cut from its turn's frame
        # (AsyncOutbox.post_batched); None: posted as any request
        self.post_batched: Optional[Callable[[str, object], None]] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.pending: dict[int, tuple] = {}       # rid -> (future | ResponseStream, input slots)
        # linger_s None: no timer (a process without an event loop); releases then
        # ride on the next Request or wait for the owner's flush_releases().
        self.releases = OutputReleases(post, scheduler, cache, self.event_loop, linger_s)
        # Called as finished(rid, response) when a request's final Response came
        # (the frontend's client shm registrations wait for it).
        self.finished: Optional[Callable[[int, messages.Response], None]] = None
        self._next_rid = 1
        # rid -> the worker answering it after its execute returned (decoupled
        # models, response senders): cancels go there, its death fails the request.
        self.answering: dict[int, str] = {}

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop futures live on (the running one, looked up once: 3.11's
        get_running_loop() is a getpid() syscall per call)."""
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        return loop

    # ------------------------------------------------------------ inputs

    def stage(self, name: str, dtype: str, shape: list, data, nbytes: int,
              slots: list, lengths: bytes | None = None) -> messages.TensorRef:
        """Copy ``data`` (``nbytes`` raw bytes) once into the arena; its slot joins ``slots``.

        ``lengths``: a BYTES input's length table (``shm.lengths``), written after
        the payload at a 4-byte boundary so that the worker splits it without a walk.
        """
        if lengths is not None:
            return self._stage_with_table(name, dtype, shape, data, nbytes, slots, lengths)
        slot = self.arena.alloc(nbytes)
        slots.append((slot.region, slot.offset))
        if nbytes:
            if type(data) is memoryview and (data.format != "B" or data.ndim != 1):
                data = data.cast("B")
            slot.view[:] = data
        return slot.ref(name, dtype, shape)

    def _stage_with_table(self, name: str, dtype: str, shape: list, data, nbytes: int,
                          slots: list, lengths: bytes) -> messages.TensorRef:
        slot = self.arena.alloc(_span(nbytes, lengths))
        slots.append((slot.region, slot.offset))
        at = _place(slot.view, 0, data, nbytes, lengths)
        return messages.TensorRef(name, dtype, shape, slot.region, slot.offset, nbytes,
                                  messages.SERVER_SHM, lengths_at=at)

    def stage_together(self, tensors: list, sizes: list[int], slots: list) -> list:
        """``stage`` for several small inputs of one request (objects with ``name``,
        ``datatype``, ``shape``, ``data``), in one slot: one allocation and one free
        instead of one per input. Each input starts ``ALIGN``-aligned in it."""
        starts = []
        end = 0
        for t, n in zip(tensors, sizes):
            starts.append(end)
            end += (_span(n, getattr(t, "lengths", None)) + ALIGN - 1) & -ALIGN or ALIGN
        slot = self.arena.alloc(end)
        region, base, view = slot.region, slot.offset, slot.view
        slots.append((region, base))
        refs = []
        for t, n, at in zip(tensors, sizes, starts):
            lengths_at = _place(view, at, t.data, n, getattr(t, "lengths", None))
            refs.append(messages.TensorRef(t.name, t.datatype, t.shape, region, base + at, n,
                                           messages.SERVER_SHM, lengths_at=lengths_at))
        return refs

    def free(self, slots: list) -> None:
        """Give input slots back (a request that was never sent, or its final answer)."""
        free = self.arena.free
        for region, offset in slots:
            free(region, offset)

    # ------------------------------------------------------------ sending

    def submit(self, req: messages.Request, slots: list, batched: bool = False) -> asyncio.Future:
        """Send ``req``; the future gets its first final Response (non-final ones are released).

        ``req.rid`` and ``req.frontend`` are set here. Cancelling: :meth:`cancel`.
        ``batched``: a step the scheduler batches with the turn's others (a sequence
        model's): it rides the turn's frame whole (``post_batched``).
        """
        loop = self.loop
        fut = (loop if loop is not None else self.event_loop()).create_future()
        # _send inlined: this is every unary request's path.
        rid = self._next_rid
        self._next_rid = rid + 1
        req.rid = rid
        req.frontend = self.address
        self.pending[rid] = (fut, slots)
        if self.releases.held:
            self._post_with_releases(req, batched)
        elif batched and self.post_batched is not None:
            self.post_batched(self.scheduler, req)
        else:
            self._post(self.scheduler, req)
        return fut

    def stream(self, req: messages.Request, slots: list,
               callback: Optional[Callable[[messages.Response], None]] = None,
               batched: bool = False) -> "ResponseStream":
        """Send ``req``; its Responses come as a :class:`ResponseStream` (or to ``callback``).
        ``batched``: as :meth:`submit`'s."""
        stream = ResponseStream(self, callback)
        self._send(req, stream, slots, batched)
        stream.rid = req.rid
        return stream

    def _send(self, req: messages.Request, sink, slots: list, batched: bool = False) -> None:
        rid = self._next_rid
        self._next_rid = rid + 1
        req.rid = rid
        req.frontend = self.address
        self.pending[rid] = (sink, slots)
        if self.releases.held:
            self._post_with_releases(req, batched)
        elif batched and self.post_batched is not None:
            self.post_batched(self.scheduler, req)
        else:
            self._post(self.scheduler, req)

    def _post_with_releases(self, req: messages.Request, batched: bool = False) -> None:
        """Held output slots ride in the same frame as this Request.

        With ``post_many`` (the frontend's outbox) the group waits for the end of
        the loop turn and leaves as one frame with the turn's other requests.
        Posted one by one, the Releases went alone at once (the outbox's
        lone-message rule) and the Request in a second frame: two writes and two
        wake-ups of the scheduler per request at one connection.
        """
        post_many = self.post_many
        if post_many is None or self.releases.direct:
            self.releases.flush()
            self._post(self.scheduler, req)
            return
        msgs = self.releases.take_held()
        msgs.append(req)
        if batched:
            post_many(self.scheduler, msgs, batched=True)
        else:
            post_many(self.scheduler, msgs)

    def cancel(self, rid: int, fut: Optional[asyncio.Future] = None) -> None:
        """The caller gave up on ``rid``: Cancel it if unanswered; a result ``fut``
        already holds (answered in the same loop turn) is released."""
        if rid in self.pending:
            self._post(self.scheduler, messages.Cancel(self.address, rid))
            worker = self.answering.get(rid)
            if worker is not None:   # its execute returned: the scheduler no longer knows it
                self._post(worker, messages.CancelRunning(-1, [(self.address, rid)]))
        elif fut is not None and fut.done() and not fut.cancelled():
            self.releases.drop(fut.result())

    # ------------------------------------------------------------ receiving

    def on_response(self, resp: messages.Response) -> None:
        """Deliver one Response to its request; after the final one its input slots are freed."""
        rid = resp.rid
        final = resp.final
        entry = self.pending.pop(rid, None) if final else self.pending.get(rid)
        if entry is None:
            if resp.empty and not final:
                return                         # a marker for a request answered already
            log.warning("Response for unknown request %d", rid)
            self.releases.drop(resp)
            return
        sink, slots = entry
        if final:
            if slots:
                self.free(slots)
            if self.finished is not None:
                self.finished(rid, resp)
            if self.answering:
                worker = self.answering.pop(rid, None)
                if worker is not None and resp.error is not None and worker != resp.instance:
                    # failed elsewhere (the scheduler refused an iterative request's
                    # reschedule): the worker that streamed it drops its stream
                    self._post(worker, messages.CancelRunning(messages.ANSWERED,
                                                              [(self.address, rid)]))
        elif resp.instance:
            if self.answering.get(rid) != resp.instance:
                self._answered_by(rid, resp.instance, sink)
            if resp.empty:
                return                         # the marker: nothing for the reader
        if type(sink) is ResponseStream:
            sink._push(resp)
        elif final and not sink.done():
            sink.set_result(resp)
        else:                  # cancelled, or a non-final answer to a unary caller
            self.releases.drop(resp)

    def _answered_by(self, rid: int, instance: str, sink) -> None:
        self.answering[rid] = instance
        gone = sink.cancelled if type(sink) is ResponseStream else sink.done()
        if gone:                               # cancelled before its worker was known
            self._post(instance, messages.CancelRunning(-1, [(self.address, rid)]))

    def fail_gone_in(self, table: messages.ModelTable) -> None:
        """:meth:`fail_gone` for the workers ``table`` no longer lists (departures.py)."""
        if self.answering:
            self.fail_gone(live_workers(table), exit_reasons(table))

    def fail_gone(self, live: set, how: dict) -> None:
        """Workers not in ``live`` died: their requests answered after execute returned
        get a final UNAVAILABLE error (the scheduler had already let them go)."""
        for rid, error in gone(self.answering, live, how):   # nothing to tell a dead worker
            self.on_response(messages.Response(rid, error=error))

    # ------------------------------------------------------------ releases

    def releaser(self, resp: messages.Response) -> Optional[Callable[[], None]]:
        """A one-shot callable handing ``resp``'s output slots back (None: nothing to hand back)."""
        return self.releases.releaser(resp)

    def drop(self, resp: messages.Response) -> None:
        """Hand an unread Response's output slots back to its worker."""
        self.releases.drop(resp)

    def flush_releases(self, held: bool = True) -> None:
        """Send the held output slots now (``held=False``: only those going straight to a
        worker, see :meth:`OutputReleases.flush`)."""
        self.releases.flush(held)

    def take_held(self) -> list:
        """The held slots as Releases, for a caller that sends them in its own frame to
        the scheduler (a BLS caller's Executed)."""
        return self.releases.take_held()

    @property
    def in_flight(self) -> int:
        """Requests awaiting their final Response plus answers not yet released."""
        return len(self.pending) + self.releases.unreleased


def _span(nbytes: int, table) -> int:
    """Bytes a staged input takes: its payload, and a BYTES length table (``shm.lengths``)
    after it at a 4-byte boundary."""
    return nbytes if table is None else ((nbytes + 3) & ~3) + len(table)


def _place(view: memoryview, at: int, data, nbytes: int, table) -> int:
    """Write ``data`` (``nbytes`` raw bytes) at ``at`` in ``view``, and ``table`` after it
    as ``_span`` lays it out; returns the table's offset from ``at`` (0: no table)."""
    if nbytes:
        if type(data) is memoryview and (data.format != "B" or data.ndim != 1):
            data = data.cast("B")
        view[at:at + nbytes] = data
    if table is None:
        return 0
    lengths_at = (nbytes + 3) & ~3
    view[at + lengths_at:at + lengths_at + len(table)] = table
    return lengths_at
