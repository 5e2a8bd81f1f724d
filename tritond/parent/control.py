"""Explicit model control: the repository load/unload API.

A member of :class:`tritond.parent.supervisor.Supervisor`, next to the
:class:`tritond.parent.loader.Loader` whose ``load_version`` it reuses. A frontend
sends ``LoadQuery`` / ``UnloadQuery``; the parent answers (``Answer``) once
every frontend applied the resulting model table, so the client's next request
already sees the change.

- load: re-reads the model from the repository on disk (``config`` parameter:
  a JSON ModelConfig used instead of the file). A loaded model is reloaded:
  the new versions load beside the old ones, which keep serving; on success
  the table switches and the old workers are finalized; on failure of any
  version the versions this load brought up are released too (``loadsets.py``),
  the old versions stay and the error is returned. ``file:`` parameters are UNSUPPORTED
  (their paths are checked first, as Triton does; ``overrides.py``).
- unload: the versions become UNLOADING with reason "unloaded" (ignored by
  strict readiness): no new requests, but what was accepted still runs; then
  UNAVAILABLE, and their workers are finalized once idle.

Both drain before they swap (``drain.py``, ``unloads.py``): no accepted request is lost.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from tritond import messages
from tritond.errors import Code, TritonError, invalid_arg, unavailable, unsupported
from tritond.namespaces import identifier, name_of
from tritond.repository.paths import check_model_name
from . import ensembles, overrides, reloads
from .drain import Drainer
from .loader import Loader
from .names import Names
from .models import READY, UNLOADED, ModelVersion, Phase, Registry, load_status
from .unloads import Unloader

log = logging.getLogger("tritond.supervisor")

POLLING = "explicit model load / unload is not allowed if polling is enabled"


class ModelControl:
    """Answers the frontends' load/unload queries (explicit mode only)."""

    def __init__(self, options, registry: Registry, phase: Phase, loader: Loader, outbox,
                 publish: Callable[[], int],
                 publish_and_wait: Callable[[], Awaitable[None]],
                 drained: dict | None = None) -> None:
        self.options = options
        self.registry = registry
        self.phase = phase
        self.loader = loader
        self.outbox = outbox
        self.publish = publish
        self.publish_and_wait = publish_and_wait
        self._locks: dict[str, asyncio.Lock] = {}
        self.drainer = Drainer(options, registry, {} if drained is None else drained)
        self.names = Names(options, registry)
        self.unloader = Unloader(registry, loader, self.drainer, publish)
        # Models loaded as an ensemble's steps, not yet rechecked against the refused
        # ensembles (_retry_refused, once the locks of the load are released).
        self._stepped: list[str] = []

    def on_query(self, msg) -> None:
        """Start answering a LoadQuery / UnloadQuery (a task: loading takes seconds, the
        inbox must not wait)."""
        asyncio.get_running_loop().create_task(self._answer(msg))

    async def _answer(self, msg) -> None:
        try:
            if self.options.model_control_mode != "explicit":
                raise unavailable(POLLING)
            if not self.phase.started or self.phase.stopping:
                raise unavailable("Server not ready")     # Triton's text (server.cc)
            errors = []
            for key in self._keys(msg):     # Triton loads / unloads every namespace's copy
                try:
                    await self._apply(key, msg)
                except TritonError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
            answer = messages.Answer(msg.qid)
        except TritonError as exc:
            answer = messages.Answer(msg.qid, error=messages.ErrorInfo(int(exc.code), exc.message))
        except Exception as exc:  # noqa: BLE001 - a bug must still answer the client
            log.exception("model control %s failed", type(msg).__name__)
            answer = messages.Answer(msg.qid, error=messages.ErrorInfo(
                int(Code.INTERNAL), f"{type(exc).__name__}: {exc}"))
        self.outbox.post(msg.frontend, answer)

    def _keys(self, msg) -> list[str]:
        """The keys a query's name stands for (namespaces.py): its copy in every repository
        (load) or every loaded copy (unload); the name itself when there is none."""
        if type(msg) is messages.LoadQuery:
            check_model_name(msg.name)           # a client's name: never a path
            return self.names.on_disk(msg.name) or [msg.name]
        return self.names.loaded(msg.name) or ([msg.name] if "/" not in msg.name else [])

    async def _apply(self, key: str, msg) -> None:
        loaded, refused = False, dict(self.registry.refused)
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                if type(msg) is messages.LoadQuery:
                    loaded = await self._load_model(key, msg)
                else:
                    await self.unloader.unload(key)
                    if msg.unload_dependents:
                        for dependent in self.unloader.dependents(key):
                            await self.unloader.unload(dependent)
            finally:        # a failed load is in the table (index reason) too
                await self.publish_and_wait()
        # outside the locks: an ensemble's load may take them
        await self._retry_refused(key if loaded else None, refused)

    async def _retry_refused(self, key: str | None, before: dict) -> None:
        """Load again the ensembles refused ``before`` the load of ``key`` (and not by it)
        whose steps name a model it (re)loaded (``key`` itself, an ensemble's steps), as
        Triton's dependency graph rechecks the nodes waiting for them; their failures are
        only logged (the load asked for ``key``)."""
        async def retry(ens: str) -> bool:
            try:
                return await self.load_key(ens)
            except TritonError as exc:
                log.error("%s", exc.message.rstrip("\n"))
                return False
        loaded = {name_of(k) for k in [key, *self._stepped] if k is not None}
        self._stepped.clear()
        for ens, entry in list(self.registry.refused.items()):
            if loaded & entry[1] and before.get(ens) is entry is self.registry.refused.get(ens):
                await self.apply_change(ens, lambda ens=ens: retry(ens))

    # ------------------------------------------------------------------ load

    async def _load_model(self, name: str, query: messages.LoadQuery,
                          visiting: frozenset = frozenset()) -> bool:
        """Load or reload ``name``; whether anything was loaded."""
        check_model_name(name_of(name))          # before the name meets the file system
        if query.files:
            problem = overrides.file_problem(query.files, query.config)
            if problem:
                raise overrides.poll_failure(name, problem)
            raise unsupported("loading model files from 'file:' parameters is not supported by "
                              "tritond: put the files in the model repository and load again")
        src = self._read_source(name, query.config or None)
        old = self.registry.versions_of(name)
        if not query.config and reloads.unmodified(old, src):
            return False            # as Triton: nothing on disk changed since the last load
        if src.error and src.polled:    # Triton reads and checks the config polling
            raise overrides.poll_failure(name, src.error)
        if src.error:
            if not self.registry.versions_of(name):      # shown UNAVAILABLE with the reason
                self.registry.failed[name] = src.error
            # Triton meets these (model files, versions) loading the model: its
            # LoadModelByDependency text (poll failures are raised by _read_source)
            raise invalid_arg(f"load failed for model '{identifier(name)}': {src.error}\n")
        if ensembles.is_ensemble(src.config):
            await self._load_composing(name, src.config, visiting)
        cfg, stamps, kept = reloads.kept(old, src, overridden=bool(query.config))
        new = [kept.get(v) or ModelVersion(name, v, src.model_dir, src.repository)
               for v in src.versions]
        fresh = [mv for mv in new if mv.version not in kept]
        updates = {v: u for v, mv in kept.items() if (u := reloads.instance_update(mv, cfg))}
        if not fresh and not updates and len(kept) == len(old):
            return False            # nothing changed: as Triton, nothing is reloaded
        log.info("loading '%s' (versions %s)%s", identifier(name), [mv.version for mv in fresh],
                 " to replace the loaded one" if old else "")
        with self.registry.loading_now(fresh, self.publish):     # the index shows LOADING
            await self.loader.load_versions(fresh, src)     # one failing releases the rest
            # until the switch, even READY ones show LOADING (publisher._loading)
            failed = await self._settle(name, src.config, old, new, kept, updates, stamps)
        if failed:                  # every failed version's reason (Triton's load status)
            raise invalid_arg(f"load failed for model '{identifier(name)}': "
                              f"{load_status(failed)}\n")
        return True

    async def _settle(self, name: str, cfg, old: list[ModelVersion], new: list[ModelVersion],
                      kept: dict, updates: dict, stamps: dict) -> list[ModelVersion]:
        """After the fresh versions' load: update the kept ones in place and switch to
        ``new``, or keep the old versions serving; the fresh versions that failed."""
        fresh = [mv for mv in new if mv.version not in kept]
        failed = _failed(fresh)
        if refused := next((mv for mv in failed if mv.refused), None):
            if old:                 # Triton unloads an ensemble its dependency graph refuses
                await self.unloader.unload(name)
            ensembles.forget_refused(self.registry, refused, cfg)
            raise invalid_arg(f"load failed for model '{identifier(name)}': {refused.reason}\n")
        if failed and any(mv.state == READY for mv in old):
            self._keep_serving(name, old, fresh)
            self._release(fresh)
            return failed
        status = await reloads.apply_all(kept, updates, self.loader, self.drainer, self.publish)
        if status:          # the load failed: its fresh versions go, the old ones stay
            self._keep_serving(name, old, fresh)         # their rows: "unloaded"
            self._release(fresh)
            raise invalid_arg(f"load failed for model '{identifier(name)}': {status}\n")
        # A fresh version's worker may have died since its load ended (restarts.py
        # failed that version): the load fails, nothing it brought up serves.
        if (failed := _failed(fresh)) and any(mv.state == READY for mv in old):
            self._keep_serving(name, old, fresh)
            self._release(fresh)
            return failed
        if failed:              # a first load: the failed rows are switched in
            self._release(fresh)
        for mv in new:                           # what the next load compares
            mv.stamps = stamps
        await self.unloader.switch(name, old, new)
        return failed

    def _release(self, fresh: list[ModelVersion]) -> None:
        """Release the versions of a failed load that still stand READY (one failed after
        they all became READY: a worker of it died)."""
        if loaded := [mv for mv in fresh if mv.state == READY]:
            self.loader.release(loaded)

    def _keep_serving(self, name: str, old: list[ModelVersion],
                      fresh: list[ModelVersion]) -> None:
        """A failed reload: the old versions keep serving (their workers were never
        replaced; the fresh ones were stopped). As in Triton's model lifecycle, a fresh
        version whose number no READY old one serves takes that number's index row (its
        reason, or "unloaded"); one loaded beside a serving version is dropped."""
        serving = {mv.version for mv in old if mv.state == READY}
        for mv in fresh:
            if mv.version not in serving:
                self.registry.versions[(name, mv.version)] = mv

    async def _load_composing(self, name: str, cfg, visiting: frozenset) -> None:
        """Load the models an ensemble needs that are not loaded yet (as Triton does)."""
        visiting = visiting | {name}
        for dep in [self.names.composing_on_disk(name, n) for n in ensembles.composing(cfg)]:
            if dep in visiting or any(mv.state == READY for mv in self.registry.versions_of(dep)):
                continue                         # a cycle fails the ensemble's own load
            if not self.names.directory(dep):    # the ensemble is refused (Triton's log line)
                log.error("failed to poll model '%s': model not found in any model repository.",
                          identifier(dep))
                continue
            async with self._locks.setdefault(dep, asyncio.Lock()):
                try:
                    if await self._load_model(dep, messages.LoadQuery(0, "", dep), visiting):
                        self._stepped.append(dep)
                except TritonError as exc:
                    # As Triton's graph: the ensemble's own load names what failed. A
                    # config that failed the poll (INTERNAL, logged) makes no graph node.
                    if exc.code == Code.INTERNAL and not self.registry.versions_of(dep):
                        self.registry.unpolled.add(dep)

    def _read_source(self, name: str, config):
        from tritond import repository
        from tritond.repository.modelconfig import from_json
        from tritond.repository.scan import read_config

        places = self.names.directory(name)
        if not places:
            raise overrides.poll_failure(name, "model not found in any model repository.")
        if len(places) > 1:             # (with namespacing a key has one directory)
            repos = ", ".join(f"'{repo}'" for repo, _ in places)
            raise overrides.poll_failure(
                name, f"not unique across all model repositories: {repos}")
        try:
            override = from_json(config) if config is not None else None
        except TritonError as exc:
            raise overrides.poll_failure(name, f"Invalid config override: {exc.message}") from None
        repo, model_dir = places[0]
        if override is None:         # an unreadable config file is a poll failure too
            try:
                read_config(model_dir, model_config_name=self.options.model_config_name,
                            strict=self.options.disable_auto_complete_config)
            except TritonError as exc:
                raise overrides.poll_failure(name, exc.message) from None
        src = repository.load_source(
            model_dir, repo, model_config_name=self.options.model_config_name,
            strict=self.options.disable_auto_complete_config, config=override)
        src.name = name
        return src

    # ------------------------------------------------------------------ poll mode

    async def apply_change(self, key: str, change) -> None:
        """Run a poll's ``change`` of ``key`` under its lock; errors are logged (poll.py)."""
        if self.phase.stopping:
            return
        loaded, refused = False, dict(self.registry.refused)
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                loaded = await change() is True
            except TritonError as exc:
                log.error("poll: %s", exc.message)
            finally:
                await self.publish_and_wait()
        await self._retry_refused(key if loaded else None, refused)

    async def load_key(self, key: str) -> bool:
        return await self._load_model(key, messages.LoadQuery(0, "", key))

    async def forget_key(self, key: str) -> None:
        """Unload ``key`` and forget it: its directory is gone."""
        await self.unloader.unload(key)
        for version in [k for k in self.registry.versions if k[0] == key]:
            del self.registry.versions[version]
        self.registry.known.discard(key)


def _failed(fresh: list[ModelVersion]) -> list[ModelVersion]:
    """The versions of a load that failed (not released with the others)."""
    return [mv for mv in fresh if mv.state != READY and mv.reason != UNLOADED]
