"""Publishing the model table to the scheduler and the frontends.

A member of :class:`tritond.parent.supervisor.Supervisor`: every change of a
model's state ends in :meth:`Publisher.publish` (the full table, numbered);
start-up and model control wait for every frontend to have *applied* it
(``TableApplied``) so that readiness and the next request see the change.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from tritond import messages
from . import ensembles
from .children import Child
from .models import LOADED, LOADING, READY, UNAVAILABLE, UNLOADED, Phase, Registry

log = logging.getLogger("tritond.supervisor")

APPLY_TIMEOUT_S = 10.0      # frontends applying a table before we go on anyway


class Publisher:
    """Sends ``ModelTable``s and tracks which one each frontend applied."""

    def __init__(self, options, registry: Registry, phase: Phase, outbox,
                 readers: Callable[[], list[Child]],
                 frontends: Callable[[], list[Child]],
                 scheduler: Callable[[], Child | None] = lambda: None) -> None:
        self.options = options
        self.registry = registry
        self.phase = phase
        self.outbox = outbox
        self.readers = readers            # the scheduler and every frontend
        self.frontends = frontends
        self.scheduler = scheduler
        self.applied: dict[str, int] = {}     # frontend address -> last table seq
        self._seq = 0

    def on_applied(self, msg: messages.TableApplied) -> None:
        self.applied[msg.address] = max(msg.seq, self.applied.get(msg.address, 0))

    def publish(self) -> int:
        """Send the full table to the scheduler and every frontend; returns its seq."""
        reg = self.registry
        loading = self._loading()
        shown = {**reg.versions, **loading}
        entries = [ensembles.entry(m, reg) if m.ensemble else m.entry()
                   for m in shown.values()]
        for e in entries:
            if (e.name, e.version) in loading:
                e.state = LOADING       # not served before the switch (control.py)
        if reg.retiring:        # leaving workers get nothing new (parent/drain.py)
            for e in entries:
                e.instances = [i for i in e.instances if i.address not in reg.retiring]
        busy = {name for name, _ in loading}
        entries += [messages.ModelEntry(name, 0, UNAVAILABLE, reason)
                    for name, reason in reg.failed.items() if name not in busy]
        listed = {name for name, _ in shown} | set(reg.failed)
        entries += [messages.ModelEntry(name, -1, "UNKNOWN")    # never loaded: name-only row
                    for name in sorted((reg.known | set(reg.refused)) - listed)]
        self._seq += 1
        table = messages.ModelTable(entries, self.server_ready(), self._seq,
                                    sorted(reg.retiring))
        for child in self.readers():
            if not child.stopped:
                self.outbox.post(child.boot.address, table)
        self._warmups()
        return self._seq

    def _warmups(self) -> None:
        """The warmup runs of versions this table serves, to the scheduler's statistics
        (after the table: the scheduler knows the version by then)."""
        scheduler = self.scheduler()
        for mv in self.registry.versions.values():
            if mv.warmup and mv.state == READY:
                if scheduler is not None and not scheduler.stopped:
                    self.outbox.post(scheduler.boot.address,
                                     messages.WarmupStats(mv.name, mv.version, mv.warmup))
                mv.warmup = []

    def _loading(self) -> dict:
        """Versions the load API is loading where no READY version of that number serves
        (a reload of a served version stays READY until the switch, as in Triton). They
        show LOADING until the switch, even once READY: Triton makes them READY at the
        end of the load (OnLoadFinal), which for tritond ends with the in-place instance
        updates (reloads.apply_all) and may still release them."""
        reg = self.registry
        return {key: mv for key, mv in reg.loading.items() if mv.state in (LOADING, LOADED, READY)
                and (key not in reg.versions or reg.versions[key].state != READY)}

    async def publish_and_wait(self) -> bool:
        """Publish, then wait until every frontend applied it: READY=1 must not come
        before /v2/health/ready (and inference) really answer from this table.
        False when some frontend did not apply it in time."""
        seq = self.publish()
        end = time.monotonic() + APPLY_TIMEOUT_S
        while time.monotonic() < end:
            if all(self.applied.get(f.boot.address, 0) >= seq for f in self.frontends()
                   if not f.stopped):
                return True
            await asyncio.sleep(0.005)
        log.warning("frontends did not apply the model table within %.0fs", APPLY_TIMEOUT_S)
        return False

    def server_ready(self) -> bool:
        """--strict-readiness: every model asked to load READY and live; else: started."""
        if not self.phase.started or self.phase.stopping:
            return False
        if not self.options.strict_readiness:
            return True
        return not self.registry.failed and all(
            m.ready or m.reason == UNLOADED for m in self.registry.versions.values())
