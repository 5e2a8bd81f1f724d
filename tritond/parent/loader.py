"""Model loading and worker restarts: the part of the supervisor that owns model states.

A member of :class:`tritond.parent.supervisor.Supervisor`; what it needs of the
rest of the parent is passed in explicitly (the model registry, the server's
phase, the outbox, a way to start a worker and to publish the table).

One instance's worker (start, load, stop): instances.py. Restarts of dead
workers: restarts.py.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from tritond import gpus
from tritond.errors import TritonError, status_text
from tritond.namespaces import identifier
from tritond.repository import timestamps
from tritond.scheduler import ratelimit
from tritond.spec import ModelSpec
from . import ensembles, loadsets, pythonenv, reloads, restarts
from .children import Child
from .instances import Instances
from .models import (LOADED, LOADING, READY, UNAVAILABLE, UNLOADED, Instance, ModelVersion,
                     Phase, Registry, failed, planned_instances)

log = logging.getLogger("tritond.supervisor")


def final_spec(config_json: str, version: int) -> ModelSpec:
    """The spec every process gets, from the config the first worker completed."""
    from tritond import repository
    from tritond.repository.modelconfig import from_json

    return repository.spec_from_config(from_json(config_json), version)


class Loader:
    """Loads model versions, starts their instances and restarts dead ones."""

    def __init__(self, options, registry: Registry, phase: Phase, outbox,
                 start_worker: Callable[[str, str], Child], send_setup: Callable[[Child], None],
                 publish: Callable[[], int]) -> None:
        self.options = options
        self.registry = registry
        self.phase = phase
        self.publish = publish
        self.instances = Instances(outbox, start_worker, send_setup)   # one worker each
        # (model, version) -> what its instances need of the rate limiter (_check_rate_limits)
        self.rate_needs: dict[tuple[str, int], list] = {}
        # --model-load-thread-count: versions whose workers load at the same time.
        self.slots = asyncio.Semaphore(options.model_load_thread_count)
        self.envs = pythonenv.Environments()    # EXECUTION_ENV_PATH, unpacked once

    # ------------------------------------------------------------- loading

    async def load_all(self) -> None:
        from tritond import repository

        sources = repository.scan(
            self.options.model_repository,
            model_config_name=self.options.model_config_name,
            strict=self.options.disable_auto_complete_config,
            namespacing=self.options.model_namespacing)
        asked = wanted = self._wanted_models()
        if wanted:
            wanted = ensembles.expand(wanted, sources)   # an ensemble loads what it needs
        self.registry.known = {src.name for src in sources}   # index rows, even never loaded
        loads = []
        for src in sources:
            if wanted is not None and src.name not in wanted:
                continue
            if src.error and src.polled:
                # Triton meets a config it cannot read or check polling the repository
                # (InitializeModelInfo): the model gets no state (a name-only index row)
                # and leaves the server ready; the start fails only under --exit-on-error.
                log.error("Poll failed for model directory '%s': %s", identifier(src.name),
                          src.error)
                self.registry.unpolled.add(src.name)
                continue
            if src.error:
                log.error("failed to load '%s': %s", identifier(src.name), src.error)
                self.registry.failed[src.name] = src.error
                continue
            mvs = [ModelVersion(src.name, v, src.model_dir, src.repository) for v in src.versions]
            for mv in mvs:
                self.registry.versions[(src.name, mv.version)] = mv
            loads.append(self.load_versions(mvs, src))
        if wanted:
            for name in sorted(wanted - {s.name for s in sources}):
                if name not in asked:       # a step's model: its ensemble is refused
                    log.error("failed to poll model '%s': model not found in any model "
                              "repository.", identifier(name))
                    continue
                self.registry.failed[name] = (f"model '{identifier(name)}' not found in any "
                                              "model repository")
                log.error("failed to load '%s': not found in any model repository",
                          identifier(name))
        self.publish()
        await asyncio.gather(*loads)
        configs = {src.name: src.config for src in sources}
        for mv in [mv for mv in self.registry.versions.values() if mv.refused]:
            ensembles.forget_refused(self.registry, mv, configs[mv.name])
        self.publish()

    def _wanted_models(self) -> set[str] | None:
        if self.options.model_control_mode != "explicit":
            return None
        names = set(self.options.load_model)
        return None if "*" in names else names

    async def load_versions(self, versions: list[ModelVersion], src) -> None:
        """Load ``versions`` of one model together: they become READY when all loaded;
        one failing releases the others (loadsets.py)."""
        await loadsets.load_together(versions, lambda mv: self.load_version(mv, src),
                                     self.serve, self.release)

    def serve(self, versions: list[ModelVersion]) -> None:
        """Make the versions of a load that succeeded READY at once (core's OnLoadFinal)."""
        for mv in versions:
            mv.state, mv.reason = READY, ""
        self.publish()

    def release(self, versions: list[ModelVersion]) -> None:
        """Unload the ``versions`` a failed load of their model brought up (core's
        OnLoadFinal): UNAVAILABLE "unloaded", their workers finalized."""
        log.info("failed to load '%s'", versions[0].identifier)
        for mv in versions:
            mv.state, mv.reason = UNAVAILABLE, UNLOADED
            self.stop_instances(mv, UNLOADED)
            log.info("successfully unloaded '%s' version %d", mv.identifier, mv.version)
        self.publish()

    async def load_version(self, mv: ModelVersion, src) -> None:
        from tritond import repository
        from tritond.repository import backends, support

        cfg = src.config
        mv.stamps = timestamps.read(mv.model_dir)     # what a reload compares (reloads.py)
        try:
            repository.normalize(cfg, gpus=gpus.count())
            mv.basis = reloads.basis(cfg)
            # Resolved per version (Triton resolves each version's backend library) on a
            # copy: a runtime filled in for one version must not reach the config the
            # next version's basis is taken from (a reload would then see it changed)
            cfg = _own_copy(cfg)
            backends.resolve(cfg, mv.model_dir, mv.version, self.options.backend_directory)
            support.check(cfg)   # before a worker is spawned for a feature we lack
            # The frontend reads the labels; a label_filename escaping the model
            # dir (UNSUPPORTED) or unreadable fails the load here.
            repository.load_labels(mv.model_dir, cfg)
            self._check_rate_limits(mv, cfg)
        except Exception as exc:  # noqa: BLE001 - reported as the model's reason
            return self._fail(mv, _reason(exc))
        if env := pythonenv.requested(cfg):
            try:     # unpacking an archive takes seconds: off the parent's loop
                mv.python_env = await asyncio.to_thread(self.envs.prepare, env, mv.model_dir)
            except Exception as exc:  # noqa: BLE001 - reported as the model's reason
                return self._fail(mv, _reason(exc))
        if ensembles.is_ensemble(cfg):       # no worker: the scheduler runs it
            return await ensembles.load_ensemble(self, mv, cfg)
        retries = self.options.model_load_retry_count
        for attempt in range(retries + 1):
            last = attempt == retries or self.phase.stopping
            async with self.slots:
                await self._load_workers(mv, cfg, last)
            if mv.state != LOADING:          # LOADED, or UNAVAILABLE after the last try
                return
            log.info("retrying the load of '%s' version %d (retry %d of %d)", mv.identifier,
                     mv.version, attempt + 1, retries)
            mv.reason = ""

    def _check_rate_limits(self, mv: ModelVersion, cfg) -> None:
        """Refuse ``mv`` as Triton's rate limiter refuses its instances (scheduler/ratelimit.py
        load_error); remember what it needs for the models loaded after it."""
        if self.options.rate_limit != "execution_count" or ensembles.is_ensemble(cfg):
            return
        from tritond import repository

        self.check_rate_limits(mv, repository.spec_from_config(cfg, mv.version))

    def check_rate_limits(self, mv: ModelVersion, spec: ModelSpec) -> None:
        """_check_rate_limits for the instances of ``spec`` (also a served version's new
        instance groups, reloads.py); ValueError with Triton's text when refused."""
        if self.options.rate_limit != "execution_count":
            return
        # a passive instance is never registered with Triton's rate limiter
        needs = ratelimit.instance_needs(spec.config_json, [
            (i.name, i.device_id) for i in planned_instances(spec) if not i.passive])
        held = (LOADING, LOADED, READY)
        others = [need for key, kept in self.rate_needs.items() if key != (mv.name, mv.version)
                  and getattr(self.registry.versions.get(key), "state", None) in held
                  for need in kept]
        error = ratelimit.load_error(
            needs, others, ratelimit.parse_overrides(self.options.rate_limit_resource))
        if error:
            raise ValueError(error)
        self.rate_needs[(mv.name, mv.version)] = needs

    async def _load_workers(self, mv: ModelVersion, cfg, last: bool) -> None:
        """Start every instance of ``mv``: LOADED (READY once its load's other versions
        are, loadsets.py); or UNAVAILABLE with the reason after the ``last`` try (still
        LOADING after another)."""
        from tritond import repository

        fail = self._fail if last else self._attempt_failed
        mv.instances = []           # a retry starts afresh (the failed ones were stopped)
        mv.warmup = []
        partial = repository.spec_from_config(cfg, mv.version)
        first = planned_instances(partial)[0]
        mv.instances.append(first)
        ok, result = await self.instances.start(
            mv, first, partial, auto_complete=not self.options.disable_auto_complete_config)
        if ok:
            try:
                mv.spec = final_spec(result, mv.version)
            except Exception as exc:  # noqa: BLE001 - a worker's bad config fails the load
                ok, result = False, f"completed config: {getattr(exc, 'message', exc)}"
        if not ok:
            return fail(mv, result)
        rest = planned_instances(mv.spec)[1:]
        mv.instances.extend(rest)
        results = await asyncio.gather(*(self.instances.start(mv, inst, mv.spec, False)
                                         for inst in rest))
        # an instance that loaded may have died while the others loaded (restarts.py
        # logged it): the version must not end LOADED with a dead instance
        errors = [text for ok, text in results if not ok] + \
            [inst.exit for inst in mv.instances if inst.exit and not inst.live]
        if errors:
            return fail(mv, errors[0])
        mv.state = LOADED
        self.log_loaded(mv)

    def log_loaded(self, mv: ModelVersion) -> None:
        mv.load_seconds = time.monotonic() - mv.load_started
        log.info("successfully loaded '%s' version %d (%d instance%s)", mv.identifier, mv.version,
                 len(mv.instances), "" if len(mv.instances) == 1 else "s")
        self.publish()      # during start-up too: the index shows each model as it loads

    async def start_instance(self, mv: ModelVersion, inst: Instance,
                             spec: ModelSpec) -> tuple[bool, str]:
        """Start one more instance of a served version (reloads.py, restarts.py)."""
        return await self.instances.start(mv, inst, spec, False)

    def stop_instance(self, inst: Instance, why: str) -> None:
        self.instances.stop(inst, why)

    def _attempt_failed(self, mv: ModelVersion, reason: str) -> None:
        """A load that --model-load-retry-count tries again: stays LOADING."""
        log.error("loading '%s' version %d failed: %s", mv.identifier, mv.version, reason)
        mv.reason = reason
        self.stop_instances(mv, reason)

    def _fail(self, mv: ModelVersion, reason: str) -> None:
        """Make ``mv`` UNAVAILABLE with ``reason`` and stop its remaining workers."""
        mv.state = UNAVAILABLE
        mv.reason = reason
        failed(mv)
        log.error("model '%s' version %d is UNAVAILABLE: %s", mv.identifier, mv.version, reason)
        self.stop_instances(mv, reason)
        self.publish()

    def stop_instances(self, mv: ModelVersion, why: str) -> None:
        """Finalize ``mv``'s workers (an expected exit: no restart)."""
        for inst in mv.instances:
            self.instances.stop(inst, why)

    # ------------------------------------------------------------ restarts

    def on_worker_death(self, child: Child) -> None:
        """A worker died on its own (restarts.py)."""
        restarts.on_worker_death(self, child)


def _reason(exc: Exception) -> str:
    """A version's failure reason: Triton's Status text for our errors."""
    if isinstance(exc, TritonError):
        return status_text(exc.code, exc.message)
    return str(exc)


def _own_copy(cfg):
    copy = type(cfg)()
    copy.CopyFrom(cfg)
    return copy
