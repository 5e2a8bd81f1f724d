"""SIGTERM and SIGINT in the parent: the first drains, a second forces exit.

The children ignore group signals (``procutil.ignore_group_signals``): only
the parent's shutdown sequence stops them, in order.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Callable

from tritond.options import Options

from .children import kill

log = logging.getLogger("tritond.supervisor")


class StopSignals:
    """Sets ``stop`` on the first signal; on a second one kills every child in
    ``children`` (the supervisor's table), unlinks the segments and exits 1."""

    def __init__(self, options: Options, stop: asyncio.Event, children: dict,
                 unlink_segments: Callable[[], None]) -> None:
        self.options = options
        self.stop = stop
        self.children = children
        self.unlink_segments = unlink_segments
        self.count = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_signal, sig)

    def on_signal(self, sig: int) -> None:
        self.count += 1
        if self.count > 1:
            log.warning("second %s: forcing exit", signal.Signals(sig).name)
            for child in list(self.children.values()):
                kill(child)
            for child in list(self.children.values()):
                child.process.join(2)
            self.unlink_segments()
            os._exit(1)
        log.info("received %s: draining (up to --exit-timeout-secs=%s; a second signal forces "
                 "exit)", signal.Signals(sig).name, self.options.exit_timeout_secs)
        log.info("Waiting for in-flight requests to complete.")     # Triton's words
        self.stop.set()
