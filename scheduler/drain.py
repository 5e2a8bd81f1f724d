"""Drain before swap: workers leaving the table finish what they hold.

On a reload or unload the parent lists the leaving workers' addresses in
``ModelTable.retiring``. Such an instance leaves the router (nothing new is
sent to it), but the batches it is executing or holds pipelined are not
failed: the worker runs them in order and answers them as usual. When it holds
nothing, the scheduler tells the parent ``Drained("instance:<address>")``,
and only then does the parent send it ``Shutdown`` (which the worker handles
after every Execute before it), so no accepted request is lost.

An unloaded version is first published UNLOADING: it takes no new requests
but dispatches its queue; once the queue is empty the scheduler tells the
parent ``Drained("model:<name>:<version>")`` and the parent removes it.
"""
from __future__ import annotations

from typing import Callable

from tritond import messages

from .iterative import unanswered
from .outputs import Notify


def instance_key(address: str) -> str:
    return f"instance:{address}"


def model_key(name: str, version: int) -> str:
    return f"model:{name}:{version}"


class Retirement:
    """Retiring instances and draining UNLOADING versions (held by SchedulerCore).

    ``steps_executed(batch, msg, now_ns)`` is the core's hook for the ensemble step
    requests a retiring instance ran; ``parent`` is where Drained notices go (set by
    the process shell).
    """

    def __init__(self, steps_executed: Callable[..., list], epoch_offset_ns: int = 0) -> None:
        self.parent = ""
        self.retiring: dict = {}            # address -> router.Instance still executing
        self.unloading = False              # some version is UNLOADING (the core's step checks it)
        self._told_drained: set = set()     # UNLOADING versions already reported drained
        self._listed: set = set()           # addresses the parent lists as retiring
        self._steps_executed = steps_executed
        self._epoch_offset_ns = epoch_offset_ns

    def relist(self, addresses: list) -> list:
        """Take the parent's new list of retiring workers; returns the retiring instances it
        no longer lists (one died, or the wait timed out): what they still hold must fail
        now rather than never being answered."""
        self._listed = set(addresses)
        return [self.retiring.pop(a) for a in list(self.retiring) if a not in self._listed]

    def retire(self, inst, out: list) -> bool:
        """``inst`` left the table: if it is alive (listed as retiring) let it finish its
        batches, then say so, and return True; False: it is dead, the caller fails it."""
        if inst.address not in self._listed:
            return False
        if inst.busy is None and not inst.ahead:
            out.append(self._drained(instance_key(inst.address)))
        else:
            self.retiring[inst.address] = inst
        return True

    def executed(self, msg: messages.Executed, now_ns: int) -> list:
        """Executed from a retiring instance: account it; Drained when it holds nothing."""
        retiring = self.retiring
        inst = retiring.get(msg.instance)
        if inst is None or inst.busy is None or inst.busy.batch_id != msg.batch_id:
            return []            # stale, or an instance dropped as dead
        batch = inst.busy
        inst.busy = inst.ahead.popleft() if inst.ahead else None
        inst.model.stats.batch_done(batch, msg.stats, msg.failed, now_ns,
                                    (now_ns + self._epoch_offset_ns) // 1_000_000,
                                    msg.hits, msg.misses)
        out = self._steps_executed(batch, msg, now_ns)     # ensemble steps it ran
        if msg.rescheduled:
            out += unanswered(batch, msg)
        if inst.busy is not None:
            return out
        del retiring[msg.instance]
        return out + [self._drained(instance_key(inst.address))]

    def release(self, msg: messages.Release) -> list:
        """Slots of a retiring instance go back at once (no next Execute carries them)."""
        if msg.instance not in self.retiring:
            return []
        return [Notify(msg.instance, messages.Release(msg.instance, list(msg.slots)))]

    def holding(self, frontend: str, rid: int):
        """The retiring instance running request (frontend, rid), if any (cancellation)."""
        for inst in self.retiring.values():
            for batch in (inst.busy, *inst.ahead):
                if batch is not None and any(e.req.rid == rid and e.req.frontend == frontend
                                             for e in batch.entries):
                    return inst, batch
        return None

    def unloading_drained(self, models: dict) -> list:
        """Drained notices for UNLOADING versions of ``models`` whose queue just became empty."""
        told = self._told_drained
        out = []
        unloading = []
        for key, model in models.items():
            if model.ready or model.policy.ensemble:
                continue
            unloading.append(key)
            if key not in told and not model.policy.count:
                told.add(key)
                out.append(self._drained(model_key(*key)))
        told.intersection_update(unloading)   # a version loaded again may unload again
        self.unloading = bool(unloading)
        return out

    def _drained(self, name: str) -> Notify:
        return Notify(self.parent, messages.Drained(name))
