"""SchedulerCore: the pure scheduler (no IO, no clock reads; callers pass ``now_ns``).

Inputs are messages (``add``, ``cancel``, ``executed``, ``release``,
``set_models``); outputs are lists of :class:`Dispatch` (an Execute for a
worker), :class:`Reply` (an error Response for a frontend) and
:class:`Notify` (a CancelRunning for the worker running a cancelled request). ``add`` only
queues (or rejects): batches are formed in ``step`` so that everything that
arrived in one loop turn can join the same batch. The shell calls ``step``
after each drain and again at ``next_deadline_ns()``.

preserve_ordering is enforced where responses land (``frontend/ordering.py``):
they travel worker -> frontend directly.
"""
from __future__ import annotations

from tritond import messages
from tritond.errors import Code

from . import batcher
from .model import Batch, Instance, Model
from tritond.shm.arena import is_oneoff

from .outputs import Dispatch, Notify, Output, Reply, _error
from .queue import DONE
from .stats import stats_json
from .table import SERVED_STATES, TableMixin

__all__ = ["Dispatch", "Notify", "Output", "Reply", "SERVED_STATES", "SchedulerCore"]


class SchedulerCore(TableMixin):
    """Queues, batches and routes requests for every served model version.

    ``epoch_offset_ns`` converts the caller's monotonic ``now_ns`` to wall
    time for ``last_inference`` (the shell passes time_ns() - monotonic_ns()).
    ``pipeline`` lets a busy instance hold one more ready batch (model.py).
    """

    def __init__(self, epoch_offset_ns: int = 0, pipeline: bool = False) -> None:
        self.epoch_offset_ns = epoch_offset_ns
        self.pipeline = pipeline                       # see scheduler/model.py
        self._models: dict[tuple[str, int], Model] = {}
        self._latest: dict[str, int] = {}              # name -> newest READY version
        self._instances: dict[str, Instance] = {}      # address -> instance
        self._queued: dict[tuple[str, int], tuple[Model, object]] = {}  # (frontend, rid)
        self._active: dict[Model, None] = {}           # models with queued requests (ordered)
        self._batch_id = 0
        self._exits: dict[str, str] = {}               # address -> how it ended (parent's words)

    # --------------------------------------------------------------- requests

    def add(self, req: messages.Request, now_ns: int) -> list[Output]:
        """Queue ``req``; returns an immediate rejection if it cannot be queued."""
        model = self._models.get((req.model, req.version))
        if model is None and req.version <= 0:
            model = self._models.get((req.model, self._latest.get(req.model, -1)))
        if model is None or not model.ready:
            return [_error(req, Code.UNAVAILABLE, f"Request for unknown model: '{req.model}' "
                           f"version {req.version} is not at ready state")]
        cfg = model.cfg
        entry = model.queue.push(req, cfg.level_index(req.priority) if cfg.levels else 0, now_ns)
        if entry is None:
            model.stats.failed(1, 0)
            return [_error(req, Code.UNAVAILABLE, "Exceeds maximum queue size", model.version)]
        self._queued[(req.frontend, req.rid)] = (model, entry)
        self._active[model] = None
        return []

    def cancel(self, frontend: str, rid: int, now_ns: int) -> list[Output]:
        """Drop a still-queued request with CANCELLED; tell the worker running it otherwise.

        A running request still answers (the model may finish it or fail it
        after seeing ``is_cancelled()``), so only the worker is told.
        """
        item = self._queued.pop((frontend, rid), None)
        if item is None:
            return self._cancel_running(frontend, rid)
        model, entry = item
        model.queue.finish(entry)
        model.stats.failed(1, now_ns - (entry.req.arrival_ns or entry.enqueue_ns))
        return [_error(entry.req, Code.CANCELLED, "Request was cancelled", model.version)]

    def _cancel_running(self, frontend: str, rid: int) -> list[Output]:
        # A linear scan of the busy batches: cancels are rare, and an index
        # (frontend, rid) -> instance would cost every dispatch and completion.
        for inst in self._instances.values():
            for batch in (inst.busy, *inst.ahead):
                if batch is None:
                    continue
                for entry in batch.entries:
                    req = entry.req
                    if req.rid == rid and req.frontend == frontend:
                        return [Notify(inst.address, messages.CancelRunning(
                            batch.batch_id, [(frontend, rid)]))]
        return []            # already answered, or unknown

    def release(self, msg: messages.Release) -> list[Output]:
        """Output slots the frontend is done with: piggybacked on the next Execute.

        Riding on the next Execute costs no extra message and no extra worker
        wake-up. Slots in a one-off segment (a tensor too big for the worker's
        arena) go back at once, so /dev/shm returns to its baseline while idle.
        """
        inst = self._instances.get(msg.instance)
        if inst is None:
            return []
        big = []
        keep = inst.releases
        for slot in msg.slots:
            (big if is_oneoff(slot[0]) else keep).append(slot)
        return [Notify(inst.address, messages.Release(msg.instance, big))] if big else []

    def executed(self, msg: messages.Executed, now_ns: int) -> list[Output]:
        """A batch finished: free the instance and account statistics."""
        inst = self._instances.get(msg.instance)
        if inst is None:
            return []            # the instance was dropped and its requests already failed
        batch = inst.busy
        if batch is None or batch.batch_id != msg.batch_id:
            return []            # stale or duplicate notice
        model = inst.model
        ahead = inst.ahead
        inst.busy = ahead.popleft() if ahead else None
        second = model.second
        if inst.busy is None:
            if inst in second:           # a handful of instances: O(n) is fine
                second.remove(inst)
            model.free.append(inst)
        elif inst not in second:
            second.append(inst)
        model.stats.batch_done(batch, msg.stats, msg.failed, now_ns,
                               (now_ns + self.epoch_offset_ns) // 1_000_000)
        return []

    # ------------------------------------------------------------- scheduling

    def step(self, now_ns: int) -> list[Output]:
        """Expire timeouts and form batches for every free instance."""
        out: list[Output] = []
        if not self._active:
            return out
        idle = []
        for model in self._active:
            queue = model.queue
            if queue.due(now_ns):
                for entry in queue.expire(now_ns):
                    req = entry.req
                    self._queued.pop((req.frontend, req.rid), None)
                    model.stats.failed(1, now_ns - (req.arrival_ns or entry.enqueue_ns))
                    out.append(_error(req, Code.UNAVAILABLE, "Request timeout expired",
                                      model.version))
            model.wait_until = 0
            while queue.count and model.free:
                if model.cfg.batching:
                    entries, wait, model.pending = batcher.form(queue, model.cfg, now_ns,
                                                                model.pending)
                    if entries is None:
                        model.wait_until = wait
                        break
                else:
                    entries = batcher.single(queue)
                inst = model.free.popleft()
                self._dispatch(model, inst, entries, now_ns, out)
                model.second.append(inst)
            second = model.second
            while (self.pipeline and model.cfg.pipelinable and queue.count and second
                   and not model.free):
                entries = self._pipelined(model, now_ns)
                if entries is None:
                    break
                inst = second[0]
                self._dispatch(model, inst, entries, now_ns, out, True)
                if len(inst.ahead) >= model.room:
                    second.popleft()
                else:
                    second.rotate(-1)        # spread pipelined work over the instances
            if not queue.count:
                idle.append(model)
        for model in idle:
            del self._active[model]
        return out

    @staticmethod
    def _pipelined(model: Model, now_ns: int) -> list | None:
        """Entries worth queueing behind a busy instance: a full batch, or one request."""
        if not model.cfg.batching:
            return batcher.single(model.queue)
        cfg = model.cfg
        entries, wait, model.pending = batcher.form(model.queue, cfg, now_ns, model.pending)
        if entries is None:
            model.wait_until = wait      # wake when the window closes, busy or not
            return None
        # With a queue delay, form() only returns a batch that reached a preferred
        # size or whose oldest request waited the whole window: as in Triton, it
        # goes to the instance's queue even while the instance is busy. Without a
        # delay only full batches are queued ahead; the rest grows until the
        # instance is free.
        if cfg.delay_ns or sum(e.size for e in entries) >= cfg.max_preferred:
            return entries
        return None

    def _dispatch(self, model: Model, inst: Instance, entries: list, now_ns: int, out: list,
                  pipelined: bool = False) -> None:
        queued = self._queued
        queue = model.queue
        levels = queue.levels
        requests = []
        size = 0
        for entry in entries:
            entry.state = DONE                  # queue.finish, inlined: this is the hot loop
            levels[entry.level].count -= 1
            req = entry.req
            del queued[(req.frontend, req.rid)]
            requests.append(req)
            size += entry.size
        queue.count -= len(entries)
        queue.epoch += 1
        self._batch_id += 1
        releases, inst.releases = inst.releases, []
        batch = Batch(self._batch_id, entries, size, now_ns)
        if pipelined:
            inst.ahead.append(batch)
        else:
            inst.busy = batch
        out.append(Dispatch(inst.address, messages.Execute(self._batch_id, requests, releases)))

    def next_deadline_ns(self) -> int | None:
        """The earliest time step() must run again (delay window or timeout), if any."""
        best = None
        for model in self._active:
            t = model.next_deadline()
            if t is not None and (best is None or t < best):
                best = t
        return best

    # ------------------------------------------------------------- statistics

    def stats_json(self, name: str = "", version: str = "") -> dict:
        """Triton's ``{"model_stats": [...]}``; raises TritonError INVALID_ARG (see stats)."""
        ready = [m.stats for m in self._models.values() if m.ready]
        return stats_json(ready, name, str(version) if version else "")
