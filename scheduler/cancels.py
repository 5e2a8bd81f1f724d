"""Cancels: finding a request wherever it is and stopping it.

A cancel names ``(frontend, rid)``; the request may be queued (dropped with
CANCELLED; a sequence's keeps its place and is answered, with the requests behind
it, once its slot reaches it, as in Triton: ``SlotTable.hold``), an ensemble's
(``ensembles.py`` cancels its steps), running on an instance or held by a retiring
one (the worker is told: ``CancelRunning``, the model sees ``is_cancelled()`` and
still answers). Cancels are rare, so this searches rather than keeping an index that
every dispatch would pay for.
"""
from __future__ import annotations

from tritond import messages
from tritond.errors import REQUEST_CANCELLED, Code

from .outputs import Notify, Output, _error
from .queue import CANCELLED, SKIPPED
from .stats import CANCELED


class Cancels:
    """The cancel path of a :class:`~scheduler.core.SchedulerCore` (``core``)."""

    def __init__(self, core) -> None:
        self.core = core

    def cancel(self, frontend: str, rid: int, now_ns: int) -> list[Output]:
        """Drop a still-queued request with CANCELLED; tell the worker running it otherwise."""
        core = self.core
        item = core._queued.pop((frontend, rid), None)     # noqa: SLF001 - our core
        if item is None:
            if core.ensembles.clients:
                out = core.ensembles.cancel(frontend, rid, now_ns)
                if out is not None:
                    return out
            return self._running(frontend, rid)
        model, entry = item
        policy = model.policy
        if policy.holds_cancels:
            policy.hold(entry)
            core._queued[(frontend, rid)] = item            # noqa: SLF001 - still queued
            return []
        policy.remove(entry)
        model.stats.failed(1, now_ns - (entry.req.arrival_ns or entry.enqueue_ns), CANCELED)
        return [_error(entry.req, Code.CANCELLED, REQUEST_CANCELLED, model.version)]

    @staticmethod
    def _skipped(policy, entry) -> None:
        """``entry`` waits in its worker behind the running batch (pipelining): counted
        CANCELED when its batch is reported (stats.batch_done); a sequence's ends its
        sequence as if it were still queued (``SlotTable.skipped``)."""
        entry.state = SKIPPED
        if policy.holds_cancels:
            policy.table.skipped(entry)

    def dropped(self, model, entries: list, now_ns: int) -> list[Output]:
        """CANCELLED for ``entries``, a sequence's requests taken out with the cancelled
        one its slot reached (Triton answers them CANCELLED with no message; ours reads
        as every cancel's)."""
        queued = self.core._queued                          # noqa: SLF001 - our core
        out: list[Output] = []
        for entry in entries:
            req = entry.req
            queued.pop((req.frontend, req.rid), None)
            model.stats.failed(1, now_ns - (req.arrival_ns or entry.enqueue_ns), CANCELED)
            out.append(_error(req, Code.CANCELLED, REQUEST_CANCELLED, model.version))
        return out

    def _running(self, frontend: str, rid: int) -> list[Output]:
        # A linear scan of the busy batches: an index (frontend, rid) -> instance
        # would cost every dispatch and completion.
        core = self.core
        for inst in core._instances.values():               # noqa: SLF001 - our core
            for batch in (inst.busy, *inst.ahead):
                if batch is None:
                    continue
                for entry in batch.entries:
                    req = entry.req
                    if req.rid == rid and req.frontend == frontend:
                        if batch is not inst.busy:      # not started: its worker skips it
                            self._skipped(inst.model.policy, entry)
                        elif inst.model.cfg.iterative:  # its reschedule is queued cancelled
                            entry.state = CANCELLED     # (iterative.executed)
                        return [Notify(inst.address, messages.CancelRunning(
                            batch.batch_id, [(frontend, rid)], batch is inst.busy))]
        retirement = core.retirement
        held = retirement.holding(frontend, rid) if retirement.retiring else None
        if held is not None:
            inst, batch = held
            if batch is not inst.busy:      # not started: its worker skips it (counted
                for entry in batch.entries:     # CANCELED); the retiring instance's
                    if entry.req.rid == rid and entry.req.frontend == frontend:
                        entry.state = SKIPPED   # sequences end with it: no mark
            return [Notify(inst.address, messages.CancelRunning(
                batch.batch_id, [(frontend, rid)], batch is inst.busy))]
        return []            # already answered, or unknown
