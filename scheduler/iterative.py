"""Iterative sequences (``sequence_batching { iterative_sequence: true }``), Triton's way.

A model releases a request with ``TRITONSERVER_REQUEST_RELEASE_RESCHEDULE``
(Python: ``request.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)``)
to run it again later, in the same sequence slot, with the same inputs; a
decoupled model streams a response per step. What Triton's ``IterativeSequencer``
(core/src/sequence_batch_scheduler/sequence_utils.*) does, and so do we:

- a request without a correlation id gets one from a per-model counter and the
  START flag: every client request is a sequence of its own;
- a rescheduled request is queued again with flags 0 (neither START nor END) and
  keeps its slot, so its implicit state carries over; if its sequence was reaped
  meanwhile (idle past ``max_sequence_idle_microseconds``) it fails as any
  request without START for an unknown sequence does;
- a request released without the flag (answered, failed) ends its
  sequence at once, as Triton's cancelled null END request does: a later request
  of that id without START fails (so does the reschedule of any other request of
  it), while the requests the client had already queued under that id run in
  order with their own flags and the slot's state; the slot is freed (and the
  worker drops the state) once none of them is left;
- a client's cancel of a queued request (or of a running one, which the model then
  reschedules) leaves it in its place; once its slot reaches it, it and the requests
  behind it are answered CANCELLED and the sequence ends (sequence_table.py's ``hold``,
  as Triton core's batcher does with a cancelled request in a slot's queue);
- a request carrying END (the client's) cannot be rescheduled: Triton gives it
  no iterative release callback, so its reschedule fails with core's
  INVALID_ARG "not configured" error (Triton's Python backend only logs a failed
  reschedule; its QA backend answers it, and so do we).

The worker reports the rescheduled requests in ``Executed.rescheduled``; they
got no Response and their frontend keeps waiting (and keeps their inputs).
"""
from __future__ import annotations

from tritond.errors import RESCHEDULE_NOT_CONFIGURED, Code
from tritond.messages import SEQUENCE_END as END

from .outputs import _error
from .queue import CANCELLED
from .sequence_table import SlotTable


class IterativeSequencer:
    """The per-model part of iterative sequences inside ``SequencePolicy``."""

    __slots__ = ("table", "next_id")

    def __init__(self, table: SlotTable) -> None:
        self.table = table
        self.next_id = 1            # Triton's counter starts at 1

    def assign(self, req, start: int) -> int:
        """A request without a correlation id starts a sequence of its own."""
        live = self.table.live
        corrid = self.next_id
        while corrid in live:       # a client's own id in use: skip it
            corrid += 1
        self.next_id = corrid + 1
        req.correlation_id = corrid
        req.flags = start
        return corrid

    def released(self, entry) -> None:
        """``entry``'s request left for good: its sequence ends (Triton's
        IterativeSequencer enqueues a cancelled END null request behind the queued
        ones: the id is forgotten now, the slot once the queue ahead of it ran)."""
        seq = entry.owner
        if seq is None:
            return
        table = self.table
        if table.live.get(seq.corrid) is seq:
            del table.live[seq.corrid]      # no step of it without START from now on
        if seq.home is not None and seq.head() is None:
            table.timeout(seq)              # frees the slot; the next Execute drops its state


def executed(core, model, batch, msg, now_ns: int) -> list:
    """After a batch of an iterative model: queue its rescheduled requests again
    (through ``core.add``: an unloading model or an ended sequence answers them with
    the error); every other request ends its sequence."""
    again = {(f, r) for f, r in msg.rescheduled} if msg.rescheduled else ()
    sequencer = model.policy.iterative
    out: list = []
    for entry in batch.entries:
        req = entry.req
        if (req.frontend, req.rid) in again:
            if req.flags & END:         # no release callback in Triton: core's outermost one
                out.append(_error(req, Code.INVALID_ARG, RESCHEDULE_NOT_CONFIGURED, req.version))
                continue
            req.flags = 0               # a continuing step (IterativeSequencer::RescheduleRequest)
            failed = core.add(req, now_ns)
            if not failed:
                if entry.state == CANCELLED:    # cancelled while it ran (cancels.py)
                    model.policy.hold(core._queued[(req.frontend, req.rid)][1])  # noqa: SLF001
                continue
            out += failed
        sequencer.released(entry)
    return out


def unanswered(batch, msg) -> list:
    """Errors for the rescheduled requests of a batch whose instance is retiring
    (unload or reload): it runs nothing new, so they cannot run again."""
    if not msg.rescheduled:
        return []
    again = {(f, r) for f, r in msg.rescheduled}
    return [_error(e.req, Code.UNAVAILABLE, f"model '{e.req.model}' version {e.req.version}: "
                   "the instance running iterative sequence "
                   f"{e.req.correlation_id} is unloading; the request cannot be rescheduled",
                   e.req.version)
            for e in batch.entries if (e.req.frontend, e.req.rid) in again]
