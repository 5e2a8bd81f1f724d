"""The start-up sequence, up to systemd's READY=1 and the "tritond ready" line.

A member of :class:`tritond.parent.supervisor.Supervisor`, which owns the
children: it passes in how to start the core processes (scheduler, frontends)
and how to send a child its Setup. Models load while the frontends start; then
the first table, the model table in the log and ``--exit-on-error``.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Awaitable, Callable

from tritond import logline
from tritond.options import Options
from . import readiness
from .children import Child, ChildError
from .instances import HELLO_TIMEOUT_S
from .loader import Loader
from .models import Phase, Registry, format_table
from .poll import Poller, snapshot
from .publisher import Publisher
from .sdnotify import Notifier
from .shmcheck import arena_space_warning

log = logging.getLogger("tritond.supervisor")


class Startup:
    """Starts the core processes and loads the models; says when the server is ready."""

    def __init__(self, options: Options, registry: Registry, phase: Phase, systemd: Notifier,
                 loader: Loader, publisher: Publisher, poller: Poller, *,
                 start_core: Callable[[], Awaitable[None]],
                 frontends: Callable[[], list[Child]], send_setup: Callable[[Child], None],
                 stopped: Callable[[], bool]) -> None:
        self.options = options
        self.registry = registry
        self.phase = phase
        self.systemd = systemd
        self.loader = loader
        self.publisher = publisher
        self.poller = poller
        self.start_core = start_core      # spawns the scheduler and frontends, sets up the scheduler
        self.frontends = frontends
        self.send_setup = send_setup
        self.stopped = stopped            # a core process died meanwhile: no "ready" line

    async def run(self) -> bool:
        """Whether the server serves; False: it must stop with exit code 1."""
        self.systemd.notify("STATUS=starting")
        try:
            await self.start_core()
            self.systemd.notify("STATUS=loading models")
            polling = self.options.model_control_mode == "poll"
            seen = snapshot(self.options.model_repository) if polling else None
            await both(self.loader.load_all(), self._set_up_frontends())
        except Exception as exc:  # noqa: BLE001 - any start-up failure stops the server
            log.error("start-up failed: %s", describe(exc))
            return False
        self.phase.started = True
        if seen is not None:        # changes made while loading are found by the first poll
            self.poller.start_from(seen)
        return await self._ready()

    async def _set_up_frontends(self) -> None:
        # Models load while the frontends start: a frontend's imports take as long as a
        # worker's, and on few cores the two overlapping shortens the start by a second.
        # A frontend gets tables only after its Setup; the first is the current one.
        for child in self.frontends():
            await asyncio.wait_for(child.hello, HELLO_TIMEOUT_S)
            self.send_setup(child)
        self.publisher.publish()

    async def _ready(self) -> bool:
        """After the loads: the first table applied, the log's model table, READY=1."""
        versions = self.registry.versions
        if warning := arena_space_warning(self.options, len(self.frontends()), versions):
            log.warning("%s", warning)
        if self.options.cuda_memory_pool_byte_size:
            log.info("--cuda-memory-pool-byte-size is accepted and not used: tritond copies "
                     "device outputs once to where they go and stages nothing")
        applied = await self.publisher.publish_and_wait()
        text = format_table(list(versions.values()), self.registry.failed)
        if text:                # Triton's LOG_TABLE_INFO: lines of "+" and "|", unescaped
            log.info("%s", "\n" + text + "\n", extra=logline.UNESCAPED)
        else:
            log.info("no models loaded")
        failed = ([m for m in versions.values() if m.state != "READY"] or self.registry.failed
                  or self.registry.unpolled or self.registry.refused)
        if failed and self.options.exit_on_error:
            log.error("exiting: some models failed to load and --exit-on-error is set")
            return False
        self.systemd.notify(f"READY=1\nSTATUS=serving{' (some models failed)' if failed else ''}"
                            f"\nMAINPID={os.getpid()}")
        if not self.stopped():
            log.log(*readiness.startup_line(self.options, self.registry,
                                            self.publisher.server_ready(), applied))
        return True


async def both(*coros) -> None:
    """Run ``coros`` together; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


def describe(exc: BaseException) -> str:
    """An exception as one sentence for the log (a TritonError's message, not its repr)."""
    if isinstance(exc, ChildError):
        return str(exc)
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
