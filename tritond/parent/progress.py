"""Loading progress in the log: one line per model still loading, every 5 s.

A model whose ``initialize`` downloads weights or compiles for a minute would
otherwise leave the log silent between "loading" and "successfully loaded";
the line names the instances not loaded yet and their pids, so a stuck one
can be looked at (``py-spy dump --pid``). :meth:`LoadProgress.lines` is pure
(given the clock); :meth:`LoadProgress.run` is the supervisor's ticking task.
"""
from __future__ import annotations

import asyncio
import logging
import time

from tritond.namespaces import identifier
from .models import LOADED, LOADING, ModelVersion, Registry

log = logging.getLogger("tritond.supervisor")

EVERY_S = 5.0
TICK_S = 0.5


class LoadProgress:
    """Says which models are still loading, once per ``EVERY_S`` per model."""

    def __init__(self, registry: Registry, every_s: float = EVERY_S) -> None:
        self.registry = registry
        self.every_s = every_s
        self._said: dict[tuple[str, float], int] = {}   # (model, load start) -> lines said

    def loading(self) -> dict[str, list[ModelVersion]]:
        """The versions still loading (LOADING or LOADED), by model name."""
        out: dict[str, list[ModelVersion]] = {}
        seen: set[int] = set()
        reg = self.registry
        for mv in [*reg.versions.values(), *reg.loading.values()]:
            if mv.state in (LOADING, LOADED) and id(mv) not in seen:
                seen.add(id(mv))
                out.setdefault(mv.name, []).append(mv)
        return out

    def lines(self, now: float) -> list[str]:
        """The log lines due at ``now`` (each model: at 5 s, 10 s, ... of its load)."""
        due, said = [], {}
        for name, versions in sorted(self.loading().items()):
            start = min(mv.load_started for mv in versions)
            key = (name, start)
            count = self._said.get(key, 0)
            ticks = int((now - start) // self.every_s)
            if ticks > count:
                due.append(self.describe(name, versions, ticks * self.every_s))
                count = ticks
            said[key] = count
        self._said = said           # a finished load is forgotten; a reload starts over
        return due

    @staticmethod
    def describe(name: str, versions: list[ModelVersion], seconds: float) -> str:
        parts = []
        for mv in sorted(versions, key=lambda v: v.version):
            waiting = [f"{i.name} (pid {i.child.pid})" if i.child is not None else i.name
                       for i in mv.instances if not i.loaded]
            parts.append(f"version {mv.version}" + (
                f": waiting for instance{'s' if len(waiting) > 1 else ''} {', '.join(waiting)}"
                if waiting else ""))
        return f"model '{identifier(name)}' is still loading after {seconds:.0f}s ({'; '.join(parts)})"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for line in self.lines(time.monotonic()):
                log.info("%s", line)
