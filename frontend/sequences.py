"""The sequences this frontend has seen start and not end: what a draining server still serves.

On SIGTERM the frontend refuses new inference (UNAVAILABLE), but a sequence that
started before goes on until its END, its idle timeout, or ``--exit-timeout-secs``:
its requests without START are still accepted, and the drain waits for it as for
an in-flight request. Only sequence models' requests with a correlation id are noted.

With ``--frontend-processes N`` a client's connections land on any frontend, so
a sequence may go on through another frontend than the one that saw it start.
Once draining (and only then: serving pays nothing), each frontend sends the
others what it knows (``SequenceNotes``: a snapshot at the Drain, then each
request that continues or ends a sequence), so every frontend accepts the
sequence's next request and none waits for a sequence another one saw end.
"""
from __future__ import annotations

import time

from tritond.messages import SEQUENCE_END, SEQUENCE_START, SequenceNote

PRUNE_AT = 10_000            # entries before idle ones are dropped while serving


class LiveSequences:
    """(model name, correlation id) -> (last request, idle timeout), in ns."""

    __slots__ = ("live", "share")

    def __init__(self) -> None:
        self.live: dict[tuple[str, object], tuple[int, int]] = {}
        self.share = None        # draining with peers: tell(list[SequenceNote])

    def note(self, mv, corrid, flags: int, models=None) -> None:
        """A request of ``mv`` with ``corrid`` and ``flags`` is being sent (``models``, the
        frontend's ``Models``, finds the sequence models an ensemble's steps run)."""
        idle_us = _idle_us(mv, models)
        if idle_us is None:
            return
        key = (mv.name, corrid)
        if flags & SEQUENCE_END:
            if self.live.pop(key, None) is not None and self.share is not None:
                self.share([SequenceNote(mv.name, corrid, 0, 0, True)])
        elif flags & SEQUENCE_START or key in self.live:
            self.live[key] = entry = (time.monotonic_ns(), idle_us * 1000)
            if len(self.live) > PRUNE_AT:
                self.count()
            if self.share is not None:
                self.share([SequenceNote(mv.name, corrid, *entry)])

    def start_sharing(self, tell) -> None:
        """Draining with other frontends: tell them every live sequence, then each change."""
        self.share = tell
        self.count()
        tell([SequenceNote(m, c, t, idle) for (m, c), (t, idle) in self.live.items()])

    def merge(self, notes: list) -> None:
        """Another frontend's notes: its sequences are live here too, until it saw END."""
        live = self.live
        for n in notes:
            key = (n.model, n.corrid)
            if n.ended:
                live.pop(key, None)
            elif key not in live or live[key][0] < n.last_ns:
                live[key] = (n.last_ns, n.idle_ns)

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


def _idle_us(mv, models, depth: int = 0):
    """The idle timeout of ``mv``'s sequences: its own, or for an ensemble the longest of
    the sequence models its steps run (nested ensembles too); None: no sequence model."""
    spec = mv.spec
    if spec.sequence_batching is not None:
        return spec.sequence_batching.max_sequence_idle_us
    if not spec.steps or models is None or depth > 8:
        return None
    found = None
    for step in spec.steps:
        try:
            sub = models.resolve(step.model_name, str(step.model_version)
                                 if step.model_version > 0 else "", by_key=True)
        except Exception:  # noqa: BLE001 - not loaded: the request fails on its own
            continue
        idle = _idle_us(sub, models, depth + 1)
        if idle is not None and (found is None or idle > found):
            found = idle
    return found
