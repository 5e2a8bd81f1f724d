"""The parent's side of the client shared-memory registry (a member of the Supervisor).

Frontends check a registration (key rules, shm_open + fstat, bounds) and send
it here; the registry (``tritond/shmtable.py``) names and numbers it, every
frontend gets the new ``ShmTable``, and the asking frontend gets its ``Answer``
only once all of them applied it: the client's next request may arrive on any
frontend. An unregistered region stays in the table (awaiting) until every
frontend sent ``ShmIdle`` for it. The channel's SO_PEERCRED admission (``tritond/peers.py``) means only
the server's own processes can send these queries.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from tritond import messages
from tritond.shmtable import ShmRegistry

from .children import Child

log = logging.getLogger("tritond.supervisor")

APPLY_TIMEOUT_S = 10.0


class ClientShmRegistry:
    """Applies register/unregister queries in arrival order and publishes the table."""

    def __init__(self, outbox, frontends: Callable[[], list[Child]]) -> None:
        self.outbox = outbox
        self.frontends = frontends
        self.registry = ShmRegistry()
        self.applied: dict[str, int] = {}      # frontend address -> last ShmTable seq
        # (seq, query, give-up time, its timer) not answered yet; the timer is cancelled
        # with the answer, else register/unregister churn kept thousands of them alive
        self.pending: list[tuple] = []

    def on_applied(self, msg: messages.ShmApplied) -> None:
        self.applied[msg.address] = max(msg.seq, self.applied.get(msg.address, 0))
        self._answer_ready()

    def on_query(self, msg) -> None:
        if type(msg) is messages.ShmRegisterQuery:
            error = self.registry.register(msg.region)
        else:
            self.registry.unregister(msg.kind, msg.name)
            error = None
        if error is not None:
            self.outbox.post(msg.frontend, messages.Answer(msg.qid, error))
            return
        table = self._publish()
        timer = asyncio.get_running_loop().call_later(APPLY_TIMEOUT_S, self._answer_ready)
        self.pending.append((table.seq, msg, time.monotonic() + APPLY_TIMEOUT_S, timer))

    def on_idle(self, msg: messages.ShmIdle) -> None:
        """A frontend is done with an awaiting registration; the last one drops it."""
        if self.registry.idle(msg.gen, msg.address, self._live()):
            self._publish()

    def _live(self) -> list[str]:
        return [f.boot.address for f in self.frontends() if not f.stopped]

    def _publish(self) -> messages.ShmTable:
        table = self.registry.table()
        for address in self._live():
            self.outbox.post(address, table)
        return table

    def _answer_ready(self) -> None:
        """Answer every query whose table all live frontends applied (or that waited
        APPLY_TIMEOUT_S: a frontend that stopped answering is being stopped anyway)."""
        now, keep = time.monotonic(), []
        live = self._live()
        for entry in self.pending:
            seq, msg, end, timer = entry
            if all(self.applied.get(a, 0) >= seq for a in live):
                self.outbox.post(msg.frontend, messages.Answer(msg.qid))
            elif now >= end:
                log.warning("frontends did not apply the client shm table within %.0fs",
                            APPLY_TIMEOUT_S)
                self.outbox.post(msg.frontend, messages.Answer(msg.qid))
            else:
                keep.append(entry)
                continue
            timer.cancel()
        self.pending = keep
