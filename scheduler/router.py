"""InstanceRouter: which instance of a model version gets the next batch.

One router per model version owns its instances and their states:

- **idle** instances wait in a FIFO, so the one idle longest is used next
  (round-robin over instances);
- **pipelining**: an instance executes one batch at a time (as in Triton) but
  may hold ``depth`` more dispatched batches in its socket (``Instance.ahead``):
  the worker starts the next one the moment the first ends instead of idling
  for the Executed -> Execute round trip. Busy instances with room wait in
  ``second``; ``depth`` is 0 where pipelining is off or the model's rules need
  requests to stay queued here (see ``SchedConfig.pipelinable``);
- **sticky assignment**: ``pin(key, inst)`` ties a key (a sequence's
  correlation id) to an instance until ``unpin``; a removed instance drops
  its pins and keeps them in ``Instance.pins`` so its policy can fail them.

Rate limiting (Triton's ``rate_limiter`` resources, ``ratelimit.py``) gates
``idle()``: with a ``limiter``, an idle instance is offered only once the
resources of its group are free; ``assign`` acquires them and ``finished()``
gives them back when the instance goes idle.

Policies only *ask* (``idle``, ``behind``, ``pinned``); the core records the
choice with ``assign`` and the completion with ``finished``. Pure: no IO.
"""
from __future__ import annotations

from collections import deque
from typing import Hashable

from tritond import messages


class Batch:
    """A batch for ``inst``: formed by a policy, then dispatched by the core (which
    sets ``batch_id`` and ``dispatch_ns``) and accounted for when its Executed arrives."""

    __slots__ = ("inst", "entries", "size", "batch_id", "dispatch_ns", "rows", "slots", "ended")

    def __init__(self, inst: "Instance", entries: list, size: int) -> None:
        self.inst = inst
        self.entries = entries
        self.size = size                    # sum of the entries' sizes
        self.batch_id = 0
        self.dispatch_ns = 0
        # Sequence batches (scheduler/sequence.py): the Execute's requests when they
        # are not just the entries' (not-ready rows pad idle slots), one
        # messages.SequenceSlot per row, and slots whose sequence timed out.
        self.rows = None
        self.slots = ()
        self.ended = ()


class Instance:
    """One worker instance of a model version."""

    __slots__ = ("address", "name", "kind", "device_id", "model", "busy", "ahead", "releases",
                 "gone", "pins")

    def __init__(self, entry: messages.InstanceEntry, model) -> None:
        self.address = entry.address
        self.name = entry.name
        self.kind = entry.kind
        self.device_id = entry.device_id
        self.model = model                  # scheduler.model.Model
        self.busy: Batch | None = None      # executing
        self.ahead: deque[Batch] = deque()  # dispatched behind it (pipelined), in order
        self.releases: list[tuple[str, int]] = []   # piggybacked on the next Execute
        self.gone = False
        self.pins: set = set()              # keys pinned to it (sticky assignment)


class InstanceRouter:
    """Instance choice, pipelining and sticky assignment for one model version."""

    __slots__ = ("instances", "free", "second", "depth", "pins", "limiter")

    def __init__(self, depth: int = 0) -> None:
        self.instances: dict[str, Instance] = {}   # address -> instance
        self.free: deque[Instance] = deque()       # nothing in flight, longest idle first
        self.second: deque[Instance] = deque()     # busy, with room for a pipelined batch
        self.depth = depth                          # batches an instance may hold ahead
        self.pins: dict[Hashable, Instance] = {}
        self.limiter = None                         # ratelimit.RateLimiter, if rate limiting

    # ------------------------------------------------------------ choice

    def idle(self) -> Instance | None:
        """The instance idle longest, if any (where a rate limiter would gate it)."""
        free = self.free
        if self.limiter is not None and free:
            return self.limiter.first_ready(free)
        return free[0] if free else None

    def behind(self) -> Instance | None:
        """A busy instance that may take one more batch now (pipelining), if any.

        Only while no instance is idle: an idle one always goes first.
        """
        second = self.second
        if self.limiter is not None and second and self.limiter.limited(second[0]):
            return None                     # resources are held per busy period: no pipelining
        return second[0] if second and not self.free else None

    def assign(self, inst: Instance, batch: Batch) -> None:
        """``batch`` was dispatched to ``inst`` (idle, or behind its running batch)."""
        second = self.second
        if inst.busy is None:
            inst.busy = batch
            if self.limiter is not None:
                self.limiter.acquire(inst)
            free = self.free
            if free[0] is inst:
                free.popleft()
            else:                           # a pinned instance: rare and few
                free.remove(inst)
            if self.depth:
                second.append(inst)
            return
        inst.ahead.append(batch)
        if second and second[0] is inst:
            if len(inst.ahead) >= self.depth:
                second.popleft()
            else:
                second.rotate(-1)           # spread pipelined work over the instances
        elif len(inst.ahead) >= self.depth and inst in second:
            second.remove(inst)

    def finished(self, inst: Instance) -> Batch:
        """``inst`` finished its running batch (returned); it starts the next one ahead."""
        batch = inst.busy
        ahead = inst.ahead
        inst.busy = ahead.popleft() if ahead else None
        second = self.second
        if inst.busy is None:
            if inst in second:              # a handful of instances: O(n) is fine
                second.remove(inst)
            self.free.append(inst)
            if self.limiter is not None:
                self.limiter.release(inst)
        elif len(ahead) < self.depth and inst not in second:
            second.append(inst)
        return batch

    def waiting(self) -> int:
        """Requests dispatched behind a running batch (pipelined): not executing yet."""
        return sum(len(b.entries) for inst in self.instances.values() for b in inst.ahead)

    def set_depth(self, depth: int) -> None:
        """Change how many batches an instance may hold ahead (pipelining on/off)."""
        self.depth = depth
        self.second = deque(i for i in self.instances.values()
                            if i.busy is not None and len(i.ahead) < depth)

    # ---------------------------------------------------- sticky assignment

    def pin(self, key: Hashable, inst: Instance) -> None:
        """Route ``key`` to ``inst`` until unpinned (a key moves if pinned again)."""
        old = self.pins.get(key)
        if old is not None:
            old.pins.discard(key)
        self.pins[key] = inst
        inst.pins.add(key)

    def unpin(self, key: Hashable) -> Instance | None:
        """Forget ``key``; the instance it was pinned to, if any."""
        inst = self.pins.pop(key, None)
        if inst is not None:
            inst.pins.discard(key)
        return inst

    def pinned(self, key: Hashable) -> Instance | None:
        return self.pins.get(key)

    def least_pinned(self) -> Instance | None:
        """The instance with the fewest pinned keys (the first such in table order)."""
        return min(self.instances.values(), key=lambda i: len(i.pins), default=None)

    # ------------------------------------------------------------ instances

    def set_instances(self, entries: list[messages.InstanceEntry], model) -> list[Instance]:
        """Adopt the live instance set of ``model``; return the removed instances.

        A removed instance is marked ``gone`` and its keys are unpinned (it
        keeps them in ``pins``); its batches are the caller's to fail or requeue.
        """
        wanted = {e.address: e for e in entries}
        removed = [inst for addr, inst in self.instances.items() if addr not in wanted]
        for inst in removed:
            inst.gone = True
            if self.limiter is not None:
                self.limiter.forget(inst)
            del self.instances[inst.address]
            for key in inst.pins:
                del self.pins[key]
        if removed:
            self.free = deque(i for i in self.free if not i.gone)
            self.second = deque(i for i in self.second if not i.gone)
        for addr, entry in wanted.items():
            if addr not in self.instances:
                inst = self.instances[addr] = Instance(entry, model)
                self.free.append(inst)
                if self.limiter is not None:
                    self.limiter.register(inst)
        return removed

    def adopt(self, other: "InstanceRouter", model) -> None:
        """Take over ``other``'s instances and pins (a config change made a new model)."""
        for addr, inst in other.instances.items():
            inst.model = model
            self.instances[addr] = inst
        self.free = deque(other.free)
        self.set_depth(self.depth)
        self.pins.update(other.pins)
