"""A retired worker's last duty: the requests its decoupled model still answers.

The scheduler reports a worker drained once its ``execute`` calls returned, but a
decoupled model may still be answering from its own threads (Triton's decoupled
examples do). Triton unloads a model only once its response senders are done, so a
worker told ``Shutdown(linger=True)`` (unload, reload) first lets those streams send
their final flag, bounded by ``--exit-timeout-secs``, reading the readers' Releases
(credits a blocked ``send`` waits for) and cancels meanwhile.
"""
from __future__ import annotations

import time
from typing import Callable

from tritond import messages


def finish_streams(hub, ep, within: float, release: Callable[[list], None],
                   forget: Callable[[str, int], None],
                   reject: Callable[[messages.Execute, str], None], log) -> None:
    """Serve ``hub``'s open streams (workers/streams.py) until each sent its final
    response or ``within`` seconds passed; ``ep`` is the worker's endpoint."""
    end = time.monotonic() + within
    while any(not s.closed and not s.parked for s in hub.streams.values()):
        left = end - time.monotonic()
        if left <= 0:
            log.warning("%d request(s) still being answered after %gs: stopping",
                        sum(not s.closed for s in hub.streams.values()), within)
            break
        for msg in ep.recv(min(left, 0.05)):
            kind = type(msg)
            if kind is messages.Release:
                release(msg.slots)
            elif kind is messages.CancelRunning:
                hub.cancel(msg.requests, msg.batch_id == messages.ANSWERED)
            elif kind is messages.Forget:
                for region, gen in msg.regions:
                    forget(region, gen)
            elif kind is messages.Execute:     # not expected once retiring: never lost
                reject(msg, "the model instance is shutting down")
        hub.drain()
        ep.flush()
    hub.drain()
    ep.flush()
