"""The sequences this frontend has seen start and not end: what a draining server still serves.

On SIGTERM the frontend refuses new inference (UNAVAILABLE), but a sequence that
started before goes on until its END, its idle timeout, or ``--exit-timeout-secs``:
its requests without START are still accepted, and the drain waits for it as for
an in-flight request. Only sequence models' requests with a correlation id are noted.
"""
from __future__ import annotations

import time

from tritond.messages import SEQUENCE_END, SEQUENCE_START

PRUNE_AT = 10_000            # entries before idle ones are dropped while serving


class LiveSequences:
    """(model name, correlation id) -> (last request, idle timeout), in ns."""

    __slots__ = ("live",)

    def __init__(self) -> None:
        self.live: dict[tuple[str, object], tuple[int, int]] = {}

    def note(self, mv, corrid, flags: int) -> None:
        """A request of ``mv`` with ``corrid`` and ``flags`` is being sent."""
        seq = mv.spec.sequence_batching
        if seq is None:
            return
        key = (mv.name, corrid)
        if flags & SEQUENCE_END:
            self.live.pop(key, None)
        elif flags & SEQUENCE_START or key in self.live:
            self.live[key] = (time.monotonic_ns(), seq.max_sequence_idle_us * 1000)
            if len(self.live) > PRUNE_AT:
                self.count()

    def continues(self, req) -> bool:
        """Whether ``req`` (an InferRequest) continues a live sequence (no START)."""
        params = req.parameters
        if not params or params.get("sequence_start"):
            return False
        corrid = params.get("sequence_id")
        return bool(corrid) and (req.model, corrid) in self.live

    def count(self) -> int:
        """Live sequences, once the idle ones are dropped."""
        now = time.monotonic_ns()
        live = self.live
        for key in [k for k, (t, idle) in live.items() if idle and now - t >= idle]:
            del live[key]
        return len(live)
