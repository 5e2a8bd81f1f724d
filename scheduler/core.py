"""SchedulerCore: the pure scheduler (no IO, no clock reads; callers pass ``now_ns``).

Inputs are messages (``add``, ``cancel``, ``executed``, ``release``,
``set_models``); outputs are lists of :class:`Dispatch` (an Execute for a
worker), :class:`Reply` (an error Response for a frontend) and
:class:`Notify` (a CancelRunning for the worker running a cancelled request). ``add`` only
queues (or rejects): batches are formed in ``step`` so that everything that
arrived in one loop turn can join the same batch. The shell calls ``step``
after each drain and again at ``next_deadline_ns()``.

What to dispatch is each model version's policy's decision (``policy.py``),
where to send it its router's (``router.py``); the core keeps the bookkeeping
they share. Requests are ``wire.RequestView`` s: the parts the scheduler does
not read are forwarded to the worker undecoded.

preserve_ordering is enforced where responses land (``frontend/ordering.py``):
they travel worker -> frontend directly.
"""
from __future__ import annotations

from typing import Callable

from tritond import messages
from tritond.errors import Code, TritonError
from tritond.shm.arena import is_oneoff

from . import blscalls, iterative
from .cancels import Cancels
from .config import SchedConfig
from .drain import Retirement
from .ensembles import Ensembles
from .model import Model
from .policy import Policy, QueueFull, make_policy
from .outputs import Dispatch, Notify, Output, Reply, _error, _refused
from .router import Batch, Instance
from .stats import REJECTED, model_metrics, stats_json
from .table import SERVED_STATES, ModelTable
from .wire import ExecuteView, RequestView

__all__ = ["Dispatch", "Notify", "Output", "Reply", "SERVED_STATES", "SchedulerCore"]


class SchedulerCore:
    """Queues, batches and routes requests for every served model version.

    ``epoch_offset_ns`` converts the caller's monotonic ``now_ns`` to wall
    time for ``last_inference`` (the shell passes time_ns() - monotonic_ns()).
    ``pipeline`` lets a busy instance hold more ready batches (router.py).
    ``make_policy(cfg)`` builds the policy of each model version (policy.py).
    """

    def __init__(self, epoch_offset_ns: int = 0, pipeline: bool = False,
                 make_policy: Callable[[SchedConfig], Policy] = make_policy,
                 address: str = "") -> None:
        self.epoch_offset_ns = epoch_offset_ns
        self.address = address         # where workers answer the ensembles' step requests
        self.ensembles = Ensembles(self)
        self.make_policy = make_policy
        self._pipeline = pipeline
        self._models: dict[tuple[str, int], Model] = {}
        self._instances: dict[str, Instance] = {}      # address -> instance
        self._queued: dict[tuple[str, int], tuple[Model, object]] = {}  # (frontend, rid)
        self._active: dict[Model, None] = {}           # models with queued requests (ordered)
        self._batch_id = 0
        self.limiter = None                             # ratelimit.RateLimiter (--rate-limit)
        self.summary_quantiles = None                   # summary_latencies=true: ((q, err), ...)
        self.cache_on = False                           # --cache-config sized a response cache
        self.bls_callers: set[str] = set()              # BLS channels seen (proc forwards tables)
        self.retirement = Retirement(self._steps_executed, epoch_offset_ns)  # drain.py
        self.table = ModelTable(self._queued, self._active, self.retirement, settings=self)
        self.cancels = Cancels(self)                    # cancels.py: where a request is, stop it
        # cancel(frontend, rid, now_ns) -> outputs: a queued, held or running request
        self.cancel: Callable[[str, int, int], list[Output]] = self.cancels.cancel

    @property
    def pipeline(self) -> bool:
        return self._pipeline

    @pipeline.setter
    def pipeline(self, on: bool) -> None:
        self._pipeline = on
        for model in self._models.values():
            model.set_pipeline(on)

    # --------------------------------------------------------------- requests

    def add(self, req: RequestView, now_ns: int) -> list[Output]:
        """Queue ``req``; returns an immediate rejection if it cannot be queued.

        ``req.version`` is resolved (the frontend resolves "latest"; BLS: -1, below,
        its refusals worded by blscalls.py)."""
        if req.batch >= 0:
            return self._add(req, now_ns)
        return blscalls.worded(self._add(req, now_ns), req)

    def _add(self, req: RequestView, now_ns: int) -> list[Output]:
        model = self._models.get((req.model, req.version))
        asked = req.version
        if model is None and asked < 0:            # BLS: the latest ready version
            req.version = self.ensembles.latest(req.model)
            model = self._models.get((req.model, req.version))
        if req.batch < 0:                          # BLS: the scheduler knows if it batches
            self.bls_callers.add(req.frontend)
            refused = blscalls.admit(model, req)
            if refused is not None:
                return [refused]
        if model is None or not model.ready:
            return [_refused(req, Code.UNAVAILABLE, f"Request for unknown model: '{req.model}' "
                             f"version {req.version} is not at ready state")]
        if model.policy.ensemble:
            return self.ensembles.start(model, req, now_ns)
        if model.cfg.passive_only:
            # Triton 2.51 crashes here (its rate limiter has no queue for the model);
            # its INTERNAL "Unable to find the payload queue" is what it means to say.
            return [_refused(req, Code.INTERNAL, f"every instance of model '{req.model}' is "
                             "passive: no instance executes its requests", model.version)]
        if req.trace:                              # a traced request: QUEUE_START
            req.trace.append(now_ns)
        out: list[Output] = []
        try:
            entry = model.policy.add(req, now_ns)
        except TritonError as exc:
            # A full queue: first send what its batcher would have taken out already (the
            # requests of one frame are queued before step() runs; Triton's batcher takes
            # a full batch for a free instance at once), then try again.
            if isinstance(exc, QueueFull):
                out = self._dispatch_ready(model, now_ns)
            try:
                entry = model.policy.add(req, now_ns) if out else None
            except TritonError:
                entry = None
            if entry is None:
                # not counted as a failure: Triton's Enqueue errors (a full queue, a
                # sequence batcher's refusals) never reach its statistics or metrics;
                # ServerInferAsync returns them, no response carries them (refused)
                out.append(_refused(req, exc.code, exc.message, model.version))
                return out
        self._queued[(req.frontend, req.rid)] = (model, entry)
        self._active[model] = None
        return out

    def _dispatch_ready(self, model: Model, now_ns: int) -> list[Output]:
        """The batches ``model``'s policy forms now (step() for one model)."""
        out: list[Output] = []
        batch = model.policy.next_batch(now_ns, model.router)
        while batch is not None:
            self._dispatch(model, batch, now_ns, out)
            batch = model.policy.next_batch(now_ns, model.router)
        return out

    def release(self, msg: messages.Release) -> list[Output]:
        """Output slots the frontend is done with: piggybacked on the next Execute.

        Riding on the next Execute costs no extra message and no extra worker
        wake-up. Slots in a one-off segment (a tensor too big for the worker's
        arena) go back at once, so /dev/shm returns to its baseline while idle.
        """
        inst = self._instances.get(msg.instance)
        if inst is None:
            return self.retirement.release(msg)
        big = []
        keep = inst.releases
        for slot in msg.slots:
            (big if is_oneoff(slot[0]) else keep).append(slot)
        return [Notify(inst.address, messages.Release(msg.instance, big))] if big else []

    def responses_sent(self, msg: messages.ResponseStats) -> None:
        """Per-response statistics from a worker (responses of response senders)."""
        inst = self._instances.get(msg.instance)
        if inst is not None:
            inst.model.stats.responses_sent(msg.rows)

    def warmup_ran(self, msg: messages.WarmupStats, now_ns: int) -> None:
        """A version's warmup runs: Triton counts each as an execution of its requests
        (they reach the backend directly: no queue time)."""
        model = self._models.get((msg.model, msg.version))
        if model is None:
            return
        now_ms = (now_ns + self.epoch_offset_ns) // 1_000_000
        for st in msg.runs:
            n = st.batch_size
            model.stats.executed(n, n, 0, n * (st.end_ns - st.start_ns), st.compute_input_ns,
                                 st.compute_infer_ns, st.compute_output_ns, now_ms)

    def executed(self, msg: messages.Executed, now_ns: int) -> list[Output]:
        """A batch finished: free the instance, account statistics, requeue rescheduled."""
        inst = self._instances.get(msg.instance)
        if inst is None:         # retiring, or dropped with its requests already failed
            return self.retirement.executed(msg, now_ns)
        batch = inst.busy
        if batch is None or batch.batch_id != msg.batch_id:
            return []            # stale or duplicate notice
        model = inst.model
        model.router.finished(inst)
        policy = model.policy
        policy.on_executed(batch, now_ns)
        model.stats.batch_done(batch, msg.stats, msg.failed, now_ns,
                               (now_ns + self.epoch_offset_ns) // 1_000_000,
                               msg.hits, msg.misses)
        out = iterative.executed(self, model, batch, msg, now_ns) if model.cfg.iterative else []
        if policy.dropped:       # a sequence ended by a request its worker skipped: answered
            # now, not at the next step (a ModelTable in the same read would drain it first)
            out += self.cancels.dropped(model, policy.take_dropped(), now_ns)
        if self.ensembles.clients or self.ensembles.unexecuted:
            return out + self._steps_executed(batch, msg, now_ns)
        return out

    def _steps_executed(self, batch, msg: messages.Executed, now_ns: int) -> list[Output]:
        """Ensemble steps in ``batch``: compute times count, a final step ends its request."""
        address = self.address
        out: list[Output] = []
        again = msg.rescheduled
        for entry in batch.entries:
            req = entry.req
            if req.frontend == address:
                answering = "" if again and (address, req.rid) in again else msg.instance
                out.extend(self.ensembles.executed(req.rid, msg.stats, now_ns, answering))
        return out

    # -------------------------------------------------------------- ensembles

    def response(self, resp: messages.Response, now_ns: int) -> list[Output]:
        """A worker answered an ensemble step request (sent to our own address)."""
        return self.ensembles.on_response(resp, now_ns, worker=True)

    def settle(self, out: list[Output], now_ns: int) -> list[Output]:
        """Hand replies addressed to ourselves (errors of ensemble step requests) to
        the ensembles, and dispatch the steps that follows; call after ``step``."""
        if not self.ensembles.steps and not self.ensembles.unexecuted:
            return out
        address = self.address
        while True:
            mine = [o for o in out if type(o) is Reply and o.frontend == address]
            if not mine:
                return out
            out = [o for o in out if not (type(o) is Reply and o.frontend == address)]
            for reply in mine:
                out.extend(self.ensembles.on_response(reply.response, now_ns))
            out.extend(self.step(now_ns))

    def set_models(self, table: messages.ModelTable) -> list[Output]:
        out = self.table.set_models(table)
        # The table's dicts, aliased: every request reads them, without an indirection.
        self._models, self._instances = self.table.models, self.table.instances
        self.ensembles.table_changed(self._models)
        if self.ensembles.answering:
            out.extend(self.ensembles.workers_gone(table))
        return out

    # ------------------------------------------------------------- scheduling

    def step(self, now_ns: int) -> list[Output]:
        """Fail expired requests, dispatch what each model's policy forms."""
        out: list[Output] = []
        if not self._active:
            return out
        idle = []
        for model in self._active:
            policy = model.policy
            expired = policy.expire(now_ns)
            if expired:
                self._expired(model, expired, now_ns, out)
            router = model.router
            next_batch = policy.next_batch
            batch = next_batch(now_ns, router)
            while batch is not None:
                self._dispatch(model, batch, now_ns, out)
                batch = next_batch(now_ns, router)
            if policy.dropped:               # a sequence's, cancelled (sequence_table.py)
                out += self.cancels.dropped(model, policy.take_dropped(), now_ns)
            if not policy.count:
                idle.append(model)
        for model in idle:
            del self._active[model]
        if self.retirement.unloading:
            out.extend(self.retirement.unloading_drained(self._models))
        return out

    def _expired(self, model: Model, entries: list, now_ns: int, out: list) -> None:
        message = getattr(model.policy, "expired_message", "Request timeout expired")
        for entry in entries:
            req = entry.req
            self._queued.pop((req.frontend, req.rid), None)
            model.stats.failed(1, now_ns - (req.arrival_ns or entry.enqueue_ns), REJECTED)
            out.append(_error(req, Code.UNAVAILABLE, message, model.version))

    def _dispatch(self, model: Model, batch: Batch, now_ns: int, out: list) -> None:
        queued = self._queued
        requests = []
        for entry in batch.entries:          # the hot loop
            req = entry.req
            del queued[(req.frontend, req.rid)]
            requests.append(req)
        self._batch_id += 1
        batch.batch_id = batch_id = self._batch_id
        batch.dispatch_ns = now_ns
        inst = batch.inst
        releases, inst.releases = inst.releases, []
        model.router.assign(inst, batch)
        if batch.slots:                      # a sequence batch (scheduler/sequence.py)
            out.append(Dispatch(inst.address, ExecuteView(
                batch_id, batch.rows or requests, releases, list(batch.slots),
                list(batch.ended))))
            return
        out.append(Dispatch(inst.address, ExecuteView(batch_id, requests, releases)))

    def next_deadline_ns(self) -> int | None:
        """The earliest time step() must run again (delay window or timeout), if any."""
        best = None
        for model in self._active:
            t = model.policy.next_deadline(model.router)
            if t is not None and (best is None or t < best):
                best = t
        return best

    # ------------------------------------------------------------- statistics

    def stats_json(self, name: str = "", version: str = "", totals: bool = False) -> dict:
        """Triton's ``{"model_stats": [...]}``; raises TritonError INVALID_ARG (see stats).
        ``totals``: /metrics' counters, which a full reload does not restart."""
        ready = [m.stats for m in self._models.values() if m.ready]
        return stats_json(ready, name, str(version) if version else "", totals)

    def worker_addresses(self) -> list[str]:
        """Every worker this scheduler sends to (serving or retiring)."""
        return [*self._instances, *self.retirement.retiring]

    def metrics(self, now_ns: int = 0) -> list[messages.ModelMetrics]:
        """Pending requests, failures per reason and (when on) latency summaries of every
        READY version (/metrics)."""
        return model_metrics([m for m in self._models.values() if m.ready],
                             self.summary_quantiles, self.ensembles.direct, now_ns)
