"""Drain, then swap: the parent's half of scheduler/drain.py.

A reload or an unload never loses an accepted request. The leaving workers
are listed in ``Registry.retiring`` when the table that removes them is
published; the scheduler sends nothing new to them, lets them finish what
they hold and answers ``Drained("instance:<address>")``; only then are they
shut down. An unloaded version is first published UNLOADING (no new
requests; its queue is dispatched) until the scheduler answers
``Drained("model:<name>:<version>")``. Each wait is bounded by
``--exit-timeout-secs`` (a wedged model must not block model control for
ever); at the bound the version goes anyway, as at server shutdown.
"""
from __future__ import annotations

import asyncio
import logging

from .models import ModelVersion, Registry

log = logging.getLogger("tritond.supervisor")


class Drainer:
    """Waits for the scheduler's Drained notices (futures in the supervisor's map)."""

    def __init__(self, options, registry: Registry, waiting: dict[str, asyncio.Future]) -> None:
        self.options = options
        self.registry = registry
        self.waiting = waiting       # Supervisor.drained: Drained.name -> future

    def expect(self, names: list[str]) -> list[asyncio.Future]:
        """Futures for ``names``; call before publishing the table that triggers them."""
        loop = asyncio.get_running_loop()
        futs = []
        for name in names:
            fut = self.waiting[name] = loop.create_future()
            futs.append(fut)
        return futs

    async def wait(self, names: list[str], futs: list[asyncio.Future], what: str) -> None:
        if not futs:
            return
        timeout = float(self.options.exit_timeout_secs)
        done, pending = await asyncio.wait(futs, timeout=timeout or None)
        for name in names:
            self.waiting.pop(name, None)
        if pending:
            log.warning("%s: %d worker(s) or version(s) still busy after %ss; going on",
                        what, len(pending), timeout)

    def live_addresses(self, versions: list[ModelVersion]) -> list[str]:
        """Workers of ``versions`` that are alive and loaded (they may hold requests; a
        passive one never does: the scheduler never knew it, so no Drained would come)."""
        return [inst.address for mv in versions for inst in mv.instances
                if inst.live and inst.address and not inst.passive]

    def retire(self, addresses: list[str]) -> list[asyncio.Future]:
        """List ``addresses`` as retiring (the next table says so) and expect their Drained."""
        self.registry.retiring.update(addresses)
        return self.expect([instance_key(a) for a in addresses])

    def retired(self, addresses: list[str]) -> None:
        self.registry.retiring.difference_update(addresses)

    def lost(self, address: str) -> bool:
        """A retiring worker exited (died, or stopped after its Shutdown: a drained one
        stays listed until then, see ModelControl._retire): stop waiting for it; True when
        the table must be published (the scheduler, the frontends fail what it held)."""
        if address not in self.registry.retiring:
            return False
        self.registry.retiring.discard(address)
        fut = self.waiting.get(instance_key(address))
        if fut is not None and not fut.done():
            fut.set_result(None)
        return True


def instance_key(address: str) -> str:
    return f"instance:{address}"        # as scheduler/drain.py names it


def model_key(name: str, version: int) -> str:
    return f"model:{name}:{version}"
