"""Starting children: their bootstraps (names, addresses, log settings) and the
response cache segment every frontend maps.

A member of :class:`tritond.parent.supervisor.Supervisor`, which keeps the
roles (which child is the scheduler, which are frontends) and sends Setup.
"""
from __future__ import annotations

import os
from typing import Callable

from tritond import channel
from tritond.options import Options
from tritond.procutil import Bootstrap

from .children import Child, spawn
from .levels import LogLevelRelay


class Spawner:
    """Spawns children into ``children`` (the supervisor's table, by address, shared)."""

    def __init__(self, options: Options, server_id: str, parent: str, children: dict,
                 levels: LogLevelRelay, on_exit: Callable[[Child], None]) -> None:
        self.options = options
        self.server_id = server_id
        self.parent = parent
        self.children = children
        self.levels = levels
        self.on_exit = on_exit
        self.cache_segment = ""                       # the shared response cache (shm/lru.py)
        self._worker_seq = 0

    def boot(self, role: str, name: str, title: str = "", python_env: str = "") -> Bootstrap:
        # Log levels as they are now: a child started after a logging API change follows it.
        levels = self.levels.current
        return Bootstrap(role=role, name=name, address=channel.address(self.server_id, name),
                         parent=self.parent, server_id=self.server_id, parent_pid=os.getpid(),
                         log_verbose=levels.verbose, title=title,
                         log_file=self.options.log_file,
                         log_format=levels.format or self.options.log_format,
                         log_info=levels.info, log_warning=levels.warning,
                         log_error=levels.error, python_env=python_env)

    def spawn(self, role: str, name: str, title: str = "", python_env: str = "") -> Child:
        child = spawn(self.boot(role, name, title, python_env), self.on_exit)
        self.children[child.boot.address] = child
        return child

    def worker(self, title: str = "", python_env: str = "") -> Child:
        """A new worker (``w1``, ``w2``, ...: names are never reused, nor their segments),
        in the execution environment rooted at ``python_env`` if any."""
        self._worker_seq += 1
        return self.spawn("worker", f"w{self._worker_seq}", title, python_env)

    def create_cache(self) -> None:
        """The response cache every frontend maps (tritond.shm.lru), before they start;
        unlinked with the server's other segments at shutdown."""
        from tritond.options import cache_bytes
        from tritond.shm import lru, region

        self.cache_segment = ""
        if size := cache_bytes(self.options.cache_config):
            name = region.segment_name(self.server_id, "cache")
            lru.create(name, size).close()
            self.cache_segment = name
