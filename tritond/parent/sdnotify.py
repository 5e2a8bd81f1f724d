"""systemd's notify protocol without a systemd dependency: one datagram to $NOTIFY_SOCKET.

See sd_notify(3): the service manager passes the socket in ``$NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace) and, with ``WatchdogSec=``,
the period in ``$WATCHDOG_USEC`` (and the pid it expects pings from in
``$WATCHDOG_PID``). Each state is a newline-separated ``KEY=value`` text.
"""
from __future__ import annotations

import asyncio
import os
import socket

_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Where to notify, read once from the environment.

    ``unset=True`` removes the variables from ``os.environ`` so that the child
    processes (spawned with a copy of it) and the models they run cannot talk
    to systemd in our name: with NotifyAccess=main systemd would log and drop
    their messages, and a library that honours $NOTIFY_SOCKET in a worker could
    otherwise send READY=1 before the server is ready.
    """

    def __init__(self, environ: dict[str, str] | None = None, unset: bool = False) -> None:
        env = os.environ if environ is None else environ
        self.path = env.get("NOTIFY_SOCKET", "")
        self.watchdog_s = watchdog_interval_s(env)
        if unset:
            for var in _VARS:
                os.environ.pop(var, None)

    def notify(self, state: str) -> bool:
        """Send e.g. "READY=1"; False when not under Type=notify or the socket is gone."""
        if not self.path:
            return False
        path = "\0" + self.path[1:] if self.path.startswith("@") else self.path
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(path)
                sock.sendall(state.encode())
            except OSError:
                return False
        return True

    def start_watchdog(self) -> None:
        """Send WATCHDOG=1 every ``watchdog_s`` from the running loop (if WatchdogSec= is on).

        On the control loop on purpose: a stuck loop stops the pings and
        systemd's WatchdogSec= then restarts the service.
        """
        interval = self.watchdog_s
        if not interval:
            return
        loop = asyncio.get_running_loop()

        def beat() -> None:
            self.notify("WATCHDOG=1")
            loop.call_later(interval, beat)
        beat()


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """One-shot :meth:`Notifier.notify` with the current (or given) environment."""
    return Notifier(environ).notify(state)


def watchdog_interval_s(environ: dict[str, str] | None = None) -> float | None:
    """Half of WatchdogSec (as sd_watchdog_enabled(3) recommends), if the watchdog is on for us."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None
