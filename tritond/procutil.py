"""Helpers shared by every child process: bootstrap, parent-death, logging."""
from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import signal
import sys

from . import peers

PR_SET_PDEATHSIG = 1


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """All a child gets at spawn time: who it is and where the parent listens.

    Everything else (options, peer addresses, models) arrives in the typed
    ``Setup``/``Load``/``ModelTable`` messages after the child says ``Hello``.
    """

    role: str          # "frontend" | "scheduler" | "worker"
    name: str          # e.g. "frontend-0", "scheduler", "w3"
    address: str       # this child's own listening address
    parent: str        # parent's address
    server_id: str
    parent_pid: int
    log_verbose: int = 0


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us when the parent dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass
    # The parent may have died before prctl took effect.
    if os.getppid() != parent_pid:
        os._exit(1)


def setup_logging(name: str, verbose: int = 0) -> logging.Logger:
    """One log format for every process: Triton-like 'I1121 ...' lines on stderr."""
    level = logging.DEBUG if verbose > 0 else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            f"%(levelname).1s%(asctime)s.%(msecs)03d {os.getpid()} {name}] %(message)s",
            datefmt="%m%d %H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)
    return logging.getLogger(f"tritond.{name}")


def quiet_gc() -> None:
    """Move start-up objects out of the collector's sight and collect young objects rarely.

    A data-path process allocates a few short-lived cycles per request
    (futures, tasks, frames); with the default thresholds the collector also
    walks every long-lived object (modules, configs, protobuf descriptors) now
    and then, a pause that shows up as the p99 of every request in flight.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def child_start(boot: Bootstrap) -> logging.Logger:
    """Common start of every child: parent-death signal, signals, logging."""
    die_with_parent(boot.parent_pid)
    peers.set_server_pid(boot.parent_pid)     # who may connect to our channel
    # The parent drives shutdown; a Ctrl-C in the terminal reaches the whole
    # process group, so children ignore SIGINT and wait for the parent's word.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return setup_logging(boot.name, boot.log_verbose)
