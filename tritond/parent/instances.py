"""The worker of one model instance: started, loaded, stopped.

A member of :class:`tritond.parent.loader.Loader`, which decides what loads and
what a failure means; this part only runs one worker through its start (Hello,
Setup, Load, then Loaded or LoadFailed) and finalizes it.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from tritond import gpus, messages
from tritond.errors import status_text
from tritond.spec import ModelSpec
from .children import Child, ChildError, kill
from .models import Instance, ModelVersion

HELLO_TIMEOUT_S = 120.0
LOAD_TIMEOUT_S = 600.0


class Instances:
    """Starts one instance's worker and waits for its load; stops it."""

    def __init__(self, outbox, start_worker: Callable[[str, str], Child],
                 send_setup: Callable[[Child], None]) -> None:
        self.outbox = outbox
        self.start_worker = start_worker     # spawns a worker process (not yet set up)
        self.send_setup = send_setup
        # Loaded/LoadFailed by (model, version, instance): the versions of a model
        # load at once and their instances have the same names.
        self.pending: dict[tuple[str, int, str], tuple[asyncio.Future, Child]] = {}

    def on_load_result(self, msg) -> None:
        """A worker's Loaded or LoadFailed."""
        entry = self.pending.pop((msg.model, msg.version, msg.instance), None)
        if entry is not None:
            fut, child = entry
            # At once, not when start() resumes: a stop in between must see a loaded
            # worker (to finalize), not one still loading (to kill).
            child.loading = ""
            if not fut.done():
                fut.set_result(msg)

    async def start(self, mv: ModelVersion, inst: Instance, spec: ModelSpec,
                    auto_complete: bool) -> tuple[bool, str]:
        """Spawn and load one instance: (True, final config JSON) or (False, reason)."""
        child = self.start_worker(f"{inst.name} (version {mv.version})",   # its `ps` title
                                  mv.python_env)
        inst.child = child
        try:
            await asyncio.wait_for(child.hello, HELLO_TIMEOUT_S)
        except (ChildError, asyncio.TimeoutError) as exc:
            child.expected_exit = True
            kill(child)
            return False, f"instance {inst.name}: worker failed to start: {exc}"
        self.send_setup(child)
        fut = asyncio.get_running_loop().create_future()
        key = (mv.name, mv.version, inst.name)
        self.pending[key] = (fut, child)
        self.outbox.post(child.boot.address, messages.Load(
            model=mv.name, version=mv.version, instance=inst.name, kind=inst.kind,
            device_id=inst.device_id, spec=spec, model_dir=mv.model_dir,
            repository=mv.repository, auto_complete=auto_complete, gpus=gpus.count(),
            passive=inst.passive))
        exited = asyncio.get_running_loop().create_task(_exited(child))
        # Cleared by its answer (on_load_result) or when the wait ends: a start-up
        # cancelled by a stop leaves it set, so the stop knows the worker is still loading.
        child.loading = f"instance {inst.name}"
        try:
            done, _ = await asyncio.wait([fut, exited], timeout=LOAD_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        child.loading = ""
        if fut.done():
            msg = fut.result()
            if isinstance(msg, messages.Loaded):
                inst.loaded = True
                inst.user_ready = msg.user_ready
                mv.warmup.extend(msg.warmup)
                inst.exit = inst.exit_address = ""
                return True, msg.config
            child.expected_exit = True
            return False, status_text(msg.error.code, msg.error.message)
        self.pending.pop(key, None)
        child.expected_exit = True
        kill(child)
        return False, (f"instance {inst.name}: worker {child.exit_description()} while loading"
                       if done else f"instance {inst.name}: load timed out after {LOAD_TIMEOUT_S:.0f}s")

    def stop(self, inst: Instance, why: str) -> None:
        """Finalize ``inst``'s worker (an expected exit: no restart)."""
        inst.loaded = False
        child = inst.child
        if child is not None and not child.stopped:
            child.expected_exit = True
            if not child.hello.done():
                # Not listening yet (a restart on its way): a Shutdown would be lost
                # and the worker would load and live on. It holds nothing yet.
                kill(child)
                return
            self.outbox.post(child.boot.address, messages.Shutdown(why, linger=True))


async def _exited(child: Child) -> None:
    while not child.stopped:
        await asyncio.sleep(0.05)
