"""The scheduler core's view of the model table: adopt, move, drop, fail instances."""
from __future__ import annotations

from tritond import messages, namespaces
from tritond.errors import REQUEST_CANCELLED, Code, TritonError

from .config import SchedConfig
from .drain import Retirement
from .model import Model
from .outputs import Output, _error, _merge, _refused
from .queue import CANCELLED, SKIPPED
from .router import Instance
from .stats import CANCELED
from .summary import Summaries

SERVED_STATES = ("READY", "UNLOADING")   # UNLOADING: drain what is queued, accept nothing new


class ModelTable:
    """The served model versions and their instances (held by SchedulerCore).

    ``queued`` and ``active`` are the core's request bookkeeping (shared dicts: moved
    and failed requests leave them here). ``settings`` is what the process shell sets
    on the core and new versions take: ``make_policy``, ``pipeline``, ``limiter``,
    ``summary_quantiles`` and ``cache_on``.
    """

    def __init__(self, queued: dict, active: dict, retirement: Retirement, settings) -> None:
        self.models: dict[tuple[str, int], Model] = {}
        self.instances: dict[str, Instance] = {}        # address -> instance
        self._exits: dict[str, str] = {}               # address -> how it ended (parent's words)
        self._queued = queued
        self._active = active
        self._retirement = retirement
        self._settings = settings
        self._by_name: dict[str, list[str]] = {}      # name -> keys (namespacing only)

    def set_models(self, table: messages.ModelTable) -> list[Output]:
        """Adopt a new model table; fail what can no longer be served."""
        out: list[Output] = []
        old = self.models
        new: dict[tuple[str, int], Model] = {}
        # How dead instances ended, so that their requests' errors can say it.
        self._exits = {a: how for e in table.models if e.exited for a, how in e.exited.items()}
        for inst in self._retirement.relist(table.retiring):
            self._fail_instance(inst, out)
        for entry in table.models:
            if entry.state not in SERVED_STATES:
                continue
            key = (entry.name, entry.version)
            model = self._adopt(old.get(key), entry, out)
            model.ready = entry.state == "READY"
            new[key] = model
        reasons = {(e.name, e.version): e.reason for e in table.models}
        for key, model in old.items():
            if key not in new:
                self._drop(model, out, reasons.get(key, ""))
        self.models = new
        # --model-namespacing: bare names (a BLS request names its model) -> keys
        self._by_name = namespaces.index(k for k, _ in new) if any(
            "/" in k for k, _ in new) else {}
        self.instances = {a: i for m in new.values() for a, i in m.router.instances.items()}
        out.extend(self._retirement.unloading_drained(new))
        return out

    def named(self, req) -> list[Output]:
        """Give a worker's BLS request, which names its model by a model name, the model's
        key (namespaces.py); Triton's ambiguity error when several namespaces serve that
        name. A frontend's Request carries a key already (frontend/models.py)."""
        if not self._by_name:
            return []
        name = req.model
        if "/" in name:
            if req.batch >= 0:      # a frontend's key (a BLS request's batch is -1: bls_call.py)
                return []
            # A model name never holds a "/", so no model answers to it: Triton's
            # FindModelIdentifier miss, never the namespaced model whose key it spells.
            return [_refused(req, Code.INVALID_ARG,
                             f"Request for unknown model: '{name}' is not found")]
        try:
            key = namespaces.resolve(name, self._by_name)
        except TritonError as exc:
            return [_refused(req, exc.code, exc.message)]
        if key is not None:
            req.model = key
        return []

    def _adopt(self, model: Model | None, entry: messages.ModelEntry, out: list) -> Model:
        """The Model for ``entry``: the existing one, or a new one on a config change."""
        config_json = entry.spec.config_json if entry.spec is not None else ""
        settings = self._settings
        # An ensemble's steps name their models' keys, which the config JSON does not
        # show (namespaces.py): a step relinked to another namespace is a new config too.
        if model is None or model.config_json != config_json or (
                entry.spec is not None and model.cfg.spec.steps != entry.spec.steps):
            cfg = SchedConfig(entry.spec)
            fresh = Model(entry.name, entry.version, config_json, cfg, settings.make_policy(cfg),
                          settings.pipeline)
            fresh.cached = settings.cache_on and _cached(config_json)
            fresh.generation = entry.generation if model is None else model.generation
            if model is not None:
                self._move(model, fresh, out)
            model = fresh
        if model.generation != entry.generation:
            # Loaded anew (not kept by the reload): Triton's new Model, new statistics.
            model.generation = entry.generation
            model.stats = model.stats.restart()
        model.router.limiter = settings.limiter
        if settings.summary_quantiles is not None and model.stats.summary is None:
            model.stats.summary = Summaries()
            # Triton leaves out the request summary of a model whose responses are cached
            model.stats.summary.cached = settings.cache_on and _cached(config_json)
        for inst in model.router.set_instances(entry.instances, model):
            if not self._retirement.retire(inst, out):
                self._fail_instance(inst, out, requeue=True)
            self._fail_queued(model, model.policy.on_instance_removed(inst), inst, out)
        return model

    def _move(self, old: Model, new: Model, out: list) -> None:
        """Carry queued requests, instances and statistics over a config change."""
        new.stats = old.stats
        new.router.adopt(old.router, new)
        self._active.pop(old, None)
        for entry in old.policy.drain():
            req = entry.req
            # A sequence's cancelled request, held, and those behind it (``SlotTable.take_all``):
            # the old batcher would cancel them all once its slot reached them.
            if entry.state == CANCELLED:
                self._queued.pop((req.frontend, req.rid), None)
                new.stats.failed(1, 0, CANCELED)
                out.append(_error(req, Code.CANCELLED, REQUEST_CANCELLED, new.version))
                continue
            try:
                moved = new.policy.add(req, entry.enqueue_ns)
            except TritonError as exc:   # e.g. the new config has a smaller max_queue_size
                self._queued.pop((req.frontend, req.rid), None)
                out.append(_error(req, exc.code, exc.message, new.version))
                continue
            self._queued[(req.frontend, req.rid)] = (new, moved)
            self._active[new] = None

    def _drop(self, model: Model, out: list, reason: str = "") -> None:
        """A model version went away: fail its queued and executing requests."""
        self._active.pop(model, None)
        message = (f"Request for unknown model: '{model.name}' version {model.version} "
                   "is not at ready state" + (f": {reason}" if reason else ""))
        for entry in model.policy.drain():
            req = entry.req
            self._queued.pop((req.frontend, req.rid), None)
            out.append(_error(req, Code.UNAVAILABLE, message, model.version))
        for inst in model.router.instances.values():
            inst.gone = True
            if not self._retirement.retire(inst, out):
                self._fail_instance(inst, out)

    def _fail_instance(self, inst: Instance, out: list, requeue: bool = False) -> None:
        """An instance disappeared: fail the requests it was executing.

        A pipelined batch behind it had not started: it goes back to the front
        of the queue (for another instance or the restarted one) when the
        model stays (``requeue``); it fails with the rest when the model goes.
        """
        batch, pending = inst.busy, list(inst.ahead)
        inst.busy = None
        inst.ahead.clear()
        model = inst.model
        if pending:
            pending = self._skipped(model, pending, out)
            if pending and requeue:
                self._requeue(model, [e for b in pending for e in b.entries])
            else:
                for b in pending:
                    batch = _merge(batch, b)
        if batch is None:
            return
        message = f"model '{model.name}' version {model.version}: {self._how(inst)} while " \
            "executing the request"
        for entry in batch.entries:
            out.append(_error(entry.req, Code.UNAVAILABLE, message, model.version))
        model.stats.failed(len(batch.entries), 0)

    def _skipped(self, model: Model, pending: list, out: list) -> list:
        """``pending`` less the requests a client cancelled while they waited (SKIPPED:
        the dead worker would have skipped them): answered CANCELLED, never run again."""
        kept = []
        for b in pending:
            if any(e.state == SKIPPED for e in b.entries):
                for entry in [e for e in b.entries if e.state == SKIPPED]:
                    out.append(_error(entry.req, Code.CANCELLED, REQUEST_CANCELLED,
                                      model.version))
                    model.stats.failed(1, 0, CANCELED)
                b.entries = [e for e in b.entries if e.state != SKIPPED]
                if not b.entries:
                    continue
            kept.append(b)
        return kept

    def _fail_queued(self, model: Model, entries: list, inst: Instance, out: list) -> None:
        """Queued requests that needed the removed ``inst`` (e.g. its sequences)."""
        if not entries:
            return
        message = f"model '{model.name}' version {model.version}: {self._how(inst)}"
        for entry in entries:
            req = entry.req
            self._queued.pop((req.frontend, req.rid), None)
            out.append(_error(req, Code.UNAVAILABLE, message, model.version))
        model.stats.failed(len(entries), 0)

    def _how(self, inst: Instance) -> str:
        return self._exits.get(inst.address) or \
            f"instance '{inst.name}' became unavailable"

    def _requeue(self, model: Model, entries: list) -> None:
        model.policy.requeue(entries)
        for entry in entries:
            req = entry.req
            self._queued[(req.frontend, req.rid)] = (model, entry)
        self._active[model] = None


def _cached(config_json: str) -> bool:
    """``response_cache { enable: true }`` in a config's JSON (read once per new version)."""
    import json

    if '"response_cache"' not in config_json:
        return False
    try:
        return bool(json.loads(config_json).get("response_cache", {}).get("enable"))
    except (ValueError, AttributeError):
        return False
