"""Scheduling policies: what one model version dispatches, and when.

:class:`SchedulerCore` owns what every policy shares (the ``(frontend, rid)``
index that cancels look up, statistics, batch ids, the Execute messages, the
model table); a per-model-version policy owns its queue and decides which
requests run together and on which instance, asking the model's
:class:`~scheduler.router.InstanceRouter`. Like the core, a policy is pure: no
IO, no clock (``now_ns`` is passed in).

The interface (:class:`Policy`), called by the core:

``add(req, now_ns) -> Entry``
    Queue a request (a ``wire.RequestView``); raise ``TritonError`` to reject it.
``remove(entry) -> bool``
    A queued request was cancelled; False if it had already left the queue.
``expire(now_ns) -> list[Entry]``
    Queued requests that timed out and must fail (cheap when nothing is due).
``next_batch(now_ns, router) -> Batch | None``
    The next batch to dispatch now, its entries already taken out of the queue
    and ``Batch.inst`` chosen through ``router`` (``idle()``, ``behind()`` for a
    pipelined batch, ``pinned(key)``); None when nothing should go now. The core
    calls it until it returns None, in every step where the policy has work.
``next_deadline(router) -> int | None``
    When step() must run again if nothing else happens (window, timeout).
``on_executed(batch, now_ns)``
    ``batch`` finished on ``batch.inst`` (the router already recorded it).
``on_instance_removed(inst) -> list[Entry]``
    ``inst`` left the table (its running batch is failed and its pipelined
    batches requeued by the core); queued entries that can no longer run.
``requeue(entries)``
    Dispatched entries that never started (their instance died): serve them next.
``drain() -> list[Entry]``
    The model version goes away: every queued entry, taken out.
``count``
    Queued requests; the core stops stepping the policy at 0.
``depth``
    How many batches an instance may hold behind its running one when
    instance pipelining is on (0: never; the core sets ``router.depth``).

Planned policies plug in here without touching ``SchedulerCore.step``:

- ``SequencePolicy`` (sequence batcher): ``add`` files a request under its
  sequence (``req.correlation_id``, START/END in ``req.flags``) and on START
  pins the correlation id to an instance with a free slot
  (``router.least_pinned()``, ``router.pin``); ``next_batch`` builds a batch of
  the ready sequences of a pinned, idle instance (``router.pins``, one slot per
  sequence); ``on_executed`` lets a sequence's next request go, END unpins;
  ``next_deadline`` covers idle-sequence timeouts; ``on_instance_removed``
  fails the queued requests of the sequences in ``inst.pins``.
- ``EnsemblePolicy`` (``ensemble.py``): has no instances (its router stays
  empty, ``next_batch`` returns None); its ``ensemble`` flag makes the core
  hand the request to ``Ensembles.start`` (``ensembles.py``), which submits
  step requests to the composing models' policies through ``core.add``; the
  composing models' responses come back to the scheduler's own address.
"""
from __future__ import annotations

from tritond.errors import Code, TritonError, request_tag

from . import batcher
from .config import SchedConfig
from .queue import Entry, PolicyQueue
from .router import Batch, Instance, InstanceRouter

# Pipelining depth: a batching model queues one full batch ahead (batches must
# still grow); a model that runs one request per execution queues more, so a
# worker drains several Executes per wake-up and answers them in one frame per peer.
PIPELINE_AHEAD_BATCHING = 1
PIPELINE_AHEAD_SINGLE = 3

_NONE: tuple = ()

QUEUE_FULL = "Exceeds maximum queue size"      # Triton's words


class QueueFull(TritonError):
    """A full queue's refusal (Triton's words after the request's id): the core first
    dispatches what the batcher would have taken out, then tries again."""


class Policy:
    """Base of the policies that serve requests from a :class:`PolicyQueue`
    (Triton's priority levels and queue policies: timeouts, max_queue_size,
    REJECT/DELAY); subclasses decide ``next_batch``."""

    __slots__ = ("cfg", "queue", "depth")
    ensemble = False     # EnsemblePolicy: the core starts its requests (scheduler/ensembles.py)
    holds_cancels = False   # SequencePolicy: a cancelled request keeps its place (``hold``)
    dropped: tuple = ()     # SequencePolicy: requests to answer CANCELLED (``take_dropped``)

    def __init__(self, cfg: SchedConfig, depth: int) -> None:
        self.cfg = cfg
        self.queue = PolicyQueue(cfg)
        # A request pipelined into a worker can no longer be overtaken, expire or
        # count toward max_queue_size: models that use those rules never pipeline.
        self.depth = depth if cfg.pipelinable else 0

    @property
    def count(self) -> int:
        return self.queue.count

    def add(self, req, now_ns: int) -> Entry:
        cfg = self.cfg
        entry = self.queue.push(req, cfg.level_index(req.priority) if cfg.levels else 0, now_ns)
        if entry is None:
            raise QueueFull(Code.UNAVAILABLE, request_tag(req.request_id) + QUEUE_FULL)
        return entry

    def remove(self, entry: Entry) -> bool:
        return self.queue.finish(entry)

    def expire(self, now_ns: int) -> list[Entry]:
        queue = self.queue
        heap = queue.timeouts     # called every step: most steps have nothing due
        return queue.expire(now_ns) if heap and heap[0][0] <= now_ns else _NONE

    def next_batch(self, now_ns: int, router: InstanceRouter) -> Batch | None:
        raise NotImplementedError

    def next_deadline(self, router: InstanceRouter) -> int | None:
        return self.queue.next_timeout()

    def on_executed(self, batch: Batch, now_ns: int) -> None:
        pass

    def on_instance_removed(self, inst: Instance) -> list[Entry]:
        return []

    def requeue(self, entries: list[Entry]) -> None:
        self.queue.requeue_front(entries)

    def drain(self) -> list[Entry]:
        return self.queue.drain()


class DefaultPolicy(Policy):
    """Triton's default scheduler (and any model that does not batch): one
    request per execution, in service order, on the instance idle longest."""

    __slots__ = ()

    def __init__(self, cfg: SchedConfig) -> None:
        super().__init__(cfg, PIPELINE_AHEAD_SINGLE)

    def next_batch(self, now_ns: int, router: InstanceRouter) -> Batch | None:
        queue = self.queue
        if not queue.count:
            return None
        inst = router.idle() or router.behind()
        if inst is None:
            return None
        entry = queue.pop()
        return Batch(inst, [entry], entry.size)


class DynamicBatchPolicy(Policy):
    """Triton's dynamic batcher (``batcher.form``: preferred sizes, delay window,
    shape agreement). A busy instance is given one more batch only when that
    batch cannot grow any more (see ``_worth_pipelining``)."""

    __slots__ = ("wait_until", "pending", "queued")

    def __init__(self, cfg: SchedConfig) -> None:
        super().__init__(cfg, PIPELINE_AHEAD_BATCHING)
        self.wait_until = 0          # delay window end when the batcher chose to wait
        self.pending = None          # the batcher's resumable walk (batcher.Pending)
        # Sum of the queued entries' sizes. While the instances are busy a batch is
        # only sent ahead once it cannot grow; below the largest preferred size in
        # total, none can, and the queue is not walked again at every step.
        self.queued = 0

    def add(self, req, now_ns: int) -> Entry:
        entry = super().add(req, now_ns)
        self.queued += entry.size
        return entry

    def remove(self, entry: Entry) -> bool:
        removed = super().remove(entry)
        if removed:
            self.queued -= entry.size
        return removed

    def expire(self, now_ns: int) -> list[Entry]:
        gone = super().expire(now_ns)
        if gone:
            self.queued -= sum(e.size for e in gone)
        return gone

    def requeue(self, entries: list[Entry]) -> None:
        super().requeue(entries)
        self.queued += sum(e.size for e in entries)

    def drain(self) -> list[Entry]:
        self.queued = 0
        return super().drain()

    def next_batch(self, now_ns: int, router: InstanceRouter) -> Batch | None:
        self.wait_until = 0
        queue = self.queue
        if not queue.count:
            return None
        inst = router.idle()
        ahead = inst is None
        cfg = self.cfg
        if ahead:
            inst = router.behind()
            if inst is None or self.queued < cfg.max_preferred:
                return None
        entries, wait, self.pending = batcher.form(queue, cfg, now_ns, self.pending)
        if entries is None:
            self.wait_until = wait   # wake when the window closes, busy or not
            return None
        if ahead and not self._worth_pipelining(entries):
            return None
        size = queue.take(entries)
        self.queued -= size
        return Batch(inst, entries, size)

    def _worth_pipelining(self, entries: list[Entry]) -> bool:
        # Only a batch that cannot grow any more (the largest preferred size, or
        # max_batch_size) is queued behind a busy instance; any other batch, its
        # window closed or not, keeps growing here until the instance is free.
        # Triton does the same: a payload waiting for its instance takes in every
        # request that arrives until the instance picks it up (GetDynamicBatch's
        # payload_batch_size), so under load batches fill up to what arrived
        # during the previous execution. Sent to the worker early, it could not.
        return sum(e.size for e in entries) >= self.cfg.max_preferred

    def next_deadline(self, router: InstanceRouter) -> int | None:
        timeout = self.queue.next_timeout()
        wait = self.wait_until if router.free or router.second else 0
        if wait and (timeout is None or wait < timeout):
            return wait
        return timeout


def make_policy(cfg: SchedConfig) -> Policy:
    """The policy a model version's config asks for."""
    if cfg.spec.steps:
        from .ensemble import EnsemblePolicy   # it subclasses Policy
        return EnsemblePolicy(cfg)
    if cfg.sequence:
        from .sequence import SequencePolicy    # imports this module
        return SequencePolicy(cfg)
    return DynamicBatchPolicy(cfg) if cfg.batching else DefaultPolicy(cfg)
