"""Helpers shared by every child process: bootstrap, parent-death, signals, titles, logging."""
from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import signal

from . import loglevels, logline, peers

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
    title: str = ""    # what ``ps`` shows after "tritond: <role>" (a worker: its instance)
    log_file: str = ""          # --log-file ("" = stderr)
    log_format: str = "default"  # --log-format: default | iso8601
    log_info: bool = True       # --log-info/--log-warning/--log-error, as changed live
    log_warning: bool = True
    log_error: bool = True
    python_env: str = ""        # a worker's execution environment root (tritond/execenv.py)


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


def setup_logging(name: str, verbose: int = 0, log_file: str = "",
                  log_format: str = "default", info: bool = True, warning: bool = True,
                  error: bool = True) -> logging.Logger:
    """One log line for every process: Triton's (``tritond.logline``), on stdout/stderr
    or appended to ``log_file``."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logline.LineSink(log_file)
        handler.setFormatter(logline.LineFormat(log_format))
        root.addHandler(handler)
    loglevels.apply(info, warning, error, verbose)
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


GROUP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_fork_hook = []         # registered once per process


def _ignore(signum, frame) -> None:
    """The parent's Shutdown, not a signal, ends a child."""


def _default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def ignore_group_signals() -> None:
    """Let SIGTERM/SIGINT sent to the whole process group pass by; unblock them.

    Ctrl-C, ``timeout``, systemd's default KillMode and ``kill -TERM -<pgid>``
    signal every process of the group at once: the parent drains and sends
    each child ``Shutdown`` in order, so a child that died of the signal
    would only be a "died unexpectedly" error and a restart. A no-op handler
    (Triton's Python stub does the same), not SIG_IGN: an ignored signal
    would stay ignored in every program a model starts (exec resets handlers,
    not SIG_IGN); forked Python children get the defaults back. The parent
    spawns children with the signals blocked (:func:`spawning_blocked`), so
    none is lost before this runs.
    """
    for sig in GROUP_SIGNALS:
        signal.signal(sig, _ignore)
    if not _fork_hook:
        os.register_at_fork(after_in_child=_default_signals)
        _fork_hook.append(_default_signals)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)


class spawning_blocked:
    """Block SIGTERM/SIGINT while a child is started (the child inherits the mask,
    so a group signal in its first milliseconds waits for its no-op handler)."""

    def __enter__(self) -> None:
        self._old = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)

    def __exit__(self, *exc) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old)


def role_title(boot: Bootstrap) -> str:
    """What ``ps`` shows for a child: "tritond: worker simple_0_0 (version 1)",
    "tritond: scheduler", "tritond: frontend 0"."""
    if boot.role == "worker":
        return f"tritond: worker {boot.title or boot.name}"
    if boot.role == "frontend":
        return f"tritond: frontend {boot.name.rpartition('-')[2]}"
    return f"tritond: {boot.role}"


def set_title(title: str) -> None:
    """Rename this process in ``ps``/``top`` (argv and the kernel's comm)."""
    try:
        import setproctitle
    except ImportError:     # a cosmetic aid: never a reason for a child not to start
        return
    setproctitle.setproctitle(title)


def set_name(name: str) -> None:
    """Set only the kernel's short name (``top``, ``pgrep -x``), not the command line."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setthreadtitle(name)    # the main thread's name is the process's


def child_start(boot: Bootstrap) -> logging.Logger:
    """Common start of every child: parent-death signal, signals, title, logging."""
    die_with_parent(boot.parent_pid)
    peers.set_server_pid(boot.parent_pid)     # who may connect to our channel
    ignore_group_signals()
    set_title(role_title(boot))
    return setup_logging(boot.name, boot.log_verbose, boot.log_file, boot.log_format,
                         boot.log_info, boot.log_warning, boot.log_error)
