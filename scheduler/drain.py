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

from tritond import messages

from .outputs import Notify


def instance_key(address: str) -> str:
    return f"instance:{address}"


def model_key(name: str, version: int) -> str:
    return f"model:{name}:{version}"


class RetireMixin:
    """Retiring instances and draining UNLOADING versions (state of SchedulerCore)."""

    parent = ""          # the parent's address (set by the process shell)

    def _init_drain(self) -> None:
        self._retiring: dict = {}            # address -> router.Instance still executing
        self._told_drained: set = set()      # UNLOADING versions already reported drained
        self._unloading = False              # some version is UNLOADING (step checks it)
        self._retire_set: set = set()

    def _retire(self, inst, out: list) -> None:
        """``inst`` left the table alive: let it finish its batches, then say so."""
        if inst.busy is None and not inst.ahead:
            out.append(self._drained(instance_key(inst.address)))
        else:
            self._retiring[inst.address] = inst

    def _forget_retired(self, out: list) -> None:
        """Retiring workers the parent no longer lists (one died, or the wait timed out):
        what they still held fails now rather than never being answered."""
        for address in [a for a in self._retiring if a not in self._retire_set]:
            self._fail_instance(self._retiring.pop(address), out)

    def retired_executed(self, msg: messages.Executed, now_ns: int) -> list:
        """Executed from a retiring instance: account it; Drained when it holds nothing."""
        retiring = self._retiring
        inst = retiring.get(msg.instance)
        if inst is None or inst.busy is None or inst.busy.batch_id != msg.batch_id:
            return []            # stale, or an instance dropped as dead
        batch = inst.busy
        inst.busy = inst.ahead.popleft() if inst.ahead else None
        inst.model.stats.batch_done(batch, msg.stats, msg.failed, now_ns,
                                    (now_ns + self.epoch_offset_ns) // 1_000_000)
        out = self._steps_executed(batch, msg, now_ns)     # ensemble steps it ran
        if inst.busy is not None:
            return out
        del retiring[msg.instance]
        return out + [self._drained(instance_key(inst.address))]

    def retired_release(self, msg: messages.Release) -> list:
        """Slots of a retiring instance go back at once (no next Execute carries them)."""
        if msg.instance not in self._retiring:
            return []
        return [Notify(msg.instance, messages.Release(msg.instance, list(msg.slots)))]

    def retiring_holds(self, frontend: str, rid: int):
        """The retiring instance running request (frontend, rid), if any (cancellation)."""
        for inst in self._retiring.values():
            for batch in (inst.busy, *inst.ahead):
                if batch is not None and any(e.req.rid == rid and e.req.frontend == frontend
                                             for e in batch.entries):
                    return inst, batch
        return None

    def unloading_drained(self) -> list:
        """Drained notices for UNLOADING versions whose queue just became empty."""
        told = self._told_drained
        out = []
        unloading = []
        for key, model in self._models.items():
            if model.ready or model.policy.ensemble:
                continue
            unloading.append(key)
            if key not in told and not model.policy.count:
                told.add(key)
                out.append(self._drained(model_key(*key)))
        told.intersection_update(unloading)   # a version loaded again may unload again
        self._unloading = bool(unloading)
        return out

    def _drained(self, name: str) -> Notify:
        return Notify(self.parent, messages.Drained(name))
