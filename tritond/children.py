"""Spawning and watching child processes (spawn start method)."""
from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
from typing import Callable

from .procutil import Bootstrap

_CTX = multiprocessing.get_context("spawn")

ENTRY = {
    "frontend": "tritond.frontend.proc:main",
    "scheduler": "tritond.scheduler.proc:main",
    "worker": "tritond.workers.main:main",
}


def _entry(boot: Bootstrap) -> None:
    import importlib

    module, _, func = ENTRY[boot.role].partition(":")
    getattr(importlib.import_module(module), func)(boot)


@dataclasses.dataclass
class Child:
    """A running child process and what the parent knows about it."""

    boot: Bootstrap
    process: multiprocessing.process.BaseProcess
    hello: asyncio.Future
    stopped: bool = False      # exited, and the parent has handled it
    expected_exit: bool = False

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
        return f"exit code {code}"


def spawn(boot: Bootstrap, on_exit: Callable[[Child], None]) -> Child:
    """Start a child and call ``on_exit(child)`` on the event loop when it dies."""
    loop = asyncio.get_running_loop()
    proc = _CTX.Process(target=_entry, args=(boot,), name=f"tritond-{boot.name}", daemon=False)
    proc.start()
    child = Child(boot=boot, process=proc, hello=loop.create_future())
    fd = proc.sentinel

    def exited() -> None:
        loop.remove_reader(fd)
        proc.join(0)
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
