"""Spawning and watching child processes (spawn start method)."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import signal
import time
from typing import Callable

from tritond.procutil import Bootstrap, ignore_group_signals, role_title, set_title, spawning_blocked

_CTX = multiprocessing.get_context("spawn")
log = logging.getLogger("tritond.supervisor")

ENTRY = {
    "frontend": "tritond.frontend.proc:main",
    "scheduler": "tritond.scheduler.proc:main",
    "worker": "tritond.workers.main:main",
}


def _entry(boot: Bootstrap) -> None:
    import importlib

    # First, before the role's imports take their second: a group SIGTERM
    # (blocked since the spawn) must find the handler, `ps` the role.
    ignore_group_signals()
    set_title(role_title(boot))
    if boot.python_env:      # before the worker's imports: its numpy is the environment's
        from tritond import execenv
        execenv.activate(boot.python_env)
    module, _, func = ENTRY[boot.role].partition(":")
    getattr(importlib.import_module(module), func)(boot)


@dataclasses.dataclass
class Child:
    """A running child process and what the parent knows about it."""

    boot: Bootstrap
    process: multiprocessing.process.BaseProcess
    hello: asyncio.Future
    stopped: bool = False      # exited, and the parent has handled it
    set_up: bool = False       # sent its Setup: it may be sent model tables
    expected_exit: bool = False
    loading: str = ""          # the instance it is loading (Load sent, no answer yet)

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def exit_description(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with code {code}"


# BLAS/OpenMP pools default to one thread per core and spin while they wait.
# With one process per model instance next to a frontend and a scheduler, that
# oversubscribes the host: a 256-wide MLP batch took 14 ms instead of 1 ms on
# 2 cores. Children default to one thread; a value the user exported wins.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def child_environment_defaults(environ=os.environ) -> None:
    """Set the thread-pool defaults children inherit (spawned children copy os.environ)."""
    for name in THREAD_ENV:
        environ.setdefault(name, "1")


def spawn(boot: Bootstrap, on_exit: Callable[[Child], None]) -> Child:
    """Start a child and call ``on_exit(child)`` on the event loop when it dies."""
    child_environment_defaults()
    loop = asyncio.get_running_loop()
    proc = _CTX.Process(target=_entry, args=(boot,), name=f"tritond-{boot.name}", daemon=False)
    with spawning_blocked():
        proc.start()
    child = Child(boot=boot, process=proc, hello=loop.create_future())
    fd = proc.sentinel

    def exited() -> None:
        loop.remove_reader(fd)
        # The sentinel closes a moment before the child becomes a zombie; a
        # join with a timeout does a blocking waitpid (microseconds here),
        # where join(0) could miss the exit code.
        proc.join(1.0)
        if not child.hello.done():
            child.hello.set_exception(ChildError(f"{boot.name} {child.exit_description()} before saying hello"))
        on_exit(child)

    loop.add_reader(fd, exited)
    return child


class ChildError(RuntimeError):
    pass


def kill(child: Child, sig: int = signal.SIGKILL) -> None:
    if child.process.exitcode is None and child.pid:
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            pass


async def stop_group(children: list[Child], timeout: float) -> None:
    """Wait for ``children`` (already told to Shutdown) to exit; SIGKILL what is left."""
    for child in children:
        child.expected_exit = True
    end = time.monotonic() + timeout
    while any(not c.stopped for c in children) and time.monotonic() < end:
        await asyncio.sleep(0.02)
    for child in children:
        if not child.stopped:
            log.warning("%s did not stop within %.0fs: killing it", child.boot.name, timeout)
            kill(child)
            child.process.join(2)


def unlink_segments(server_id: str, pid: int | None = None) -> None:
    """Unlink the server's /dev/shm segments (only those of ``pid`` when given)."""
    from tritond.shm import region

    for name in region.list_segments(server_id):
        if pid is None or f"-{pid}-" in name:   # /tritond-<server_id>-<pid>-<tag>
            region.unlink(name)
