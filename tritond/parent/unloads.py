"""Versions leaving service: an unload, and the old versions a reload replaces.

A member of :class:`tritond.parent.control.ModelControl`. Both drain before they
swap (``drain.py``): the versions stop taking new requests, what was accepted
still runs, and their workers are finalized only once idle.
"""
from __future__ import annotations

import logging
from typing import Callable

from tritond.namespaces import identifier
from .drain import Drainer, instance_key, model_key
from .loader import Loader
from .models import READY, UNAVAILABLE, UNLOADED, UNLOADING, ModelVersion, Registry

log = logging.getLogger("tritond.supervisor")


class Unloader:
    """Takes versions out of the table: drained, then their workers retired."""

    def __init__(self, registry: Registry, loader: Loader, drainer: Drainer,
                 publish: Callable[[], int]) -> None:
        self.registry = registry
        self.loader = loader
        self.drainer = drainer
        self.publish = publish

    async def unload(self, name: str) -> None:
        """Drain ``name``'s serving versions, then finalize every worker of it."""
        versions = self.registry.versions_of(name)
        self.registry.refused.pop(name, None)        # no longer waits for its models
        if not versions and name not in self.registry.failed:
            return              # never loaded or unknown: nothing to do (as Triton: OK)
        self.registry.failed.pop(name, None)
        serving = [mv for mv in versions if mv.state == READY and not mv.ensemble]
        for mv in versions:
            mv.state, mv.reason = (UNLOADING if mv in serving else UNAVAILABLE), UNLOADED
        keys = [model_key(mv.name, mv.version) for mv in serving]
        waits = self.drainer.expect(keys)
        self.publish()      # new requests are refused; the queued ones still run
        await self.drainer.wait(keys, waits, f"unloading '{identifier(name)}'")
        await self.retire(versions, f"unloading '{identifier(name)}'")   # still UNLOADING meanwhile
        for mv in serving:
            mv.state = UNAVAILABLE
        for mv in versions:
            self.loader.stop_instances(mv, UNLOADED)
        log.info("unloaded '%s'", identifier(name))

    async def retire(self, versions: list[ModelVersion], what: str) -> None:
        """Publish the table without ``versions``' workers; wait until they are idle."""
        addresses = self.drainer.live_addresses(versions)
        waits = self.drainer.retire(addresses)
        self.publish()
        try:
            await self.drainer.wait([instance_key(a) for a in addresses], waits, what)
        finally:
            # A drained worker stays listed until it exits (Drainer.lost): a decoupled
            # model's threads may still be answering requests its frontends keep open.
            self.drainer.retired([a for a, fut in zip(addresses, waits) if not fut.done()])

    async def switch(self, name: str, old: list[ModelVersion], new: list[ModelVersion]) -> None:
        """Publish ``new`` in place of ``old``; finalize the old workers once idle.

        A served version the new version policy no longer wants drains like an unloaded
        one: UNLOADING (no new requests, its queue still runs on its own workers) until
        the scheduler says it is empty, then its workers retire."""
        self.registry.failed.pop(name, None)
        self.registry.refused.pop(name, None)
        self.registry.unpolled.discard(name)
        kept = {mv.version for mv in new}
        replaced = [mv for mv in old if mv.version in kept and all(mv is not n for n in new)]
        dropped = [mv for mv in old if mv.version not in kept]
        draining = [mv for mv in dropped if mv.state == READY and not mv.ensemble]
        for mv in old:
            del self.registry.versions[(name, mv.version)]
        for mv in new:
            self.registry.versions[(name, mv.version)] = mv
        for mv in dropped:                       # versions the new policy dropped
            mv.state, mv.reason = (UNLOADING if mv in draining else UNAVAILABLE), UNLOADED
            self.registry.versions[(name, mv.version)] = mv
        keys = [model_key(name, mv.version) for mv in draining]
        waits = self.drainer.expect(keys)
        await self.retire(replaced, f"reloading '{identifier(name)}'")  # routed to the new instances now
        for mv in replaced:
            self.loader.stop_instances(mv, "reloaded")
        if dropped:
            await self.drainer.wait(keys, waits, f"reloading '{identifier(name)}'")
            await self.retire(dropped, f"reloading '{identifier(name)}'")
            for mv in dropped:
                mv.state = UNAVAILABLE
                self.loader.stop_instances(mv, UNLOADED)

    def dependents(self, name: str) -> list[str]:
        """Loaded ensembles that use ``name``, transitively (unload_dependents)."""
        found: list[str] = []
        todo = [name]
        while todo:
            target = todo.pop()
            for (ens, _), mv in list(self.registry.versions.items()):
                if mv.ensemble and mv.reason != UNLOADED and ens not in found and \
                        any(s.model_name == target for s in mv.spec.steps):
                    found.append(ens)
                    todo.append(ens)
        return found
