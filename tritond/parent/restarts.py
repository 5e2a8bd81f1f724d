"""Restarts of dead workers, for :class:`tritond.parent.loader.Loader` (``loader``).

Restart policy: when a loaded worker dies, its instance is restarted in place
after a backoff (0.1 s doubling per recent crash, at most 5 s). A restart that
fails to load counts as a crash too. After ``RESTART_LIMIT`` crashes of a
version's instances within ``RESTART_WINDOW_S`` the version becomes
UNAVAILABLE (reason in the repository index), its other instances are stopped
and the scheduler fails what was queued for it; then every
``--model-retry-interval`` seconds all its instances are started again until
they load (requests can crash a worker: a model is never given up for good).
A worker killed by SIGBUS (a client region shrunk under it) is restarted
without counting. Nothing restarts once the server is stopping. A worker of a version
that has not served yet is not restarted: one whose load is still running (LOADING)
fails when the load ends; one that loaded but waits for the other versions of its load
(LOADED), or that the load API has not switched in yet, fails its load (loadsets.py,
control.py), and the load's other new versions are released.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time

from .children import Child
from .models import LOADED, READY, UNAVAILABLE, Instance, ModelVersion

log = logging.getLogger("tritond.supervisor")


def on_worker_death(loader, child: Child) -> None:
    """A worker died on its own: publish at once (the scheduler fails only what it
    was executing), then restart it unless the server is stopping.

    The versions the load API is loading (``registry.loading``) are searched too: a
    worker of one of them that dies before the switch fails that version's load."""
    found = _owner(loader, child)
    if found is None:
        return
    mv, inst, served = found
    was_loaded = inst.loaded
    what = inst.died(child)
    log.error("model '%s' version %d: %s", mv.identifier, mv.version, what)
    if was_loaded and served and mv.state == READY:
        if not loader.phase.stopping:
            _schedule_restart(loader, mv, inst, what)  # may make mv UNAVAILABLE
    elif was_loaded and mv.state in (LOADED, READY):
        # never served: its load fails (and releases its siblings: loadsets.py at
        # start-up, ModelControl._settle for the load API)
        loader._fail(mv, what)
    # LOADING: the end of its load sees the dead instance (Loader._load_workers); a
    # worker that died while loading is handled by Instances.start
    if loader.phase.started:
        loader.publish()


def _owner(loader, child: Child) -> tuple[ModelVersion, Instance, bool] | None:
    """The version and instance ``child`` serves, and whether that version is in the
    served table (not one the load API has yet to switch in)."""
    reg = loader.registry
    for versions, served in ((reg.versions, True), (reg.loading, False)):
        for mv in list(versions.values()):
            if not served and reg.versions.get((mv.name, mv.version)) is mv:
                continue            # switched in: found above
            for inst in mv.instances:
                if inst.child is child:
                    return mv, inst, served
    return None


def _schedule_restart(loader, mv: ModelVersion, inst: Instance, why: str) -> None:
    code = inst.child.process.exitcode if inst.child is not None else None
    delay = mv.record_crash(time.monotonic(), counted=code != -signal.SIGBUS)
    if delay is None:
        retry = loader.options.model_retry_interval
        loader._fail(mv, mv.crash_reason(why, retry))
        return _later(retry, _retry(loader, mv))
    log.info("restarting instance %s of '%s' in %.1fs", inst.name, mv.identifier, delay)
    _later(delay, _respawn(loader, mv, inst))


def _later(delay: float, coro) -> None:
    loop = asyncio.get_running_loop()
    loop.call_later(delay, lambda: loop.create_task(coro))


async def _retry(loader, mv: ModelVersion) -> None:
    """Start every instance of ``mv`` again after its crash limit (while it is current)."""
    if not _current(loader, mv) or mv.state != UNAVAILABLE:
        return
    log.info("reloading '%s' version %d after its crashes", mv.identifier, mv.version)
    results = await asyncio.gather(*(loader.start_instance(mv, inst, mv.spec)
                                     for inst in mv.instances))
    errors = [text for ok, text in results if not ok]
    if errors or not _current(loader, mv):      # unloaded or replaced meanwhile: stop them
        retry = loader.options.model_retry_interval
        reason = mv.reason if not _current(loader, mv) else mv.crash_reason(errors[0], retry)
        loader._fail(mv, reason)
        if _current(loader, mv):
            _later(retry, _retry(loader, mv))
        return
    mv.state, mv.reason = READY, ""
    mv.crashes.clear()
    log.info("model '%s' version %d is READY again", mv.identifier, mv.version)
    loader.publish()


def _current(loader, mv: ModelVersion) -> bool:
    return not loader.phase.stopping \
        and loader.registry.versions.get((mv.name, mv.version)) is mv and mv.reason != "unloaded"


async def _respawn(loader, mv: ModelVersion, inst: Instance) -> None:
    if not _current(loader, mv) or mv.state != READY:
        return
    ok, result = await loader.start_instance(mv, inst, mv.spec)
    if loader.phase.stopping:
        return
    if not _current(loader, mv):        # unloaded or replaced while it started
        log.info("instance %s of '%s' version %d was restarting when the version was "
                 "unloaded or replaced: stopped", inst.name, mv.identifier, mv.version)
        loader.stop_instance(inst, "unloaded")
        return
    if ok:
        log.info("restarted instance %s of '%s' version %d", inst.name, mv.identifier,
                 mv.version)
    else:
        log.error("restarting instance %s of '%s' failed: %s", inst.name, mv.identifier, result)
        inst.exit = f"instance '{inst.name}' failed to restart: {result}"
        if mv.state == READY:
            _schedule_restart(loader, mv, inst, inst.exit)
    loader.publish()
