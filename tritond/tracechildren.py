"""Child traces: the requests a traced request spawns, as Triton traces them.

Triton gives each request a traced request spawns (an ensemble's step requests,
a Python model's BLS calls made with ``trace=request.trace()``) a child trace of
its own, with ``parent_id`` = the spawning request's trace id, in the same
sampled trace (the parent's setting, level and file; children are never
sampled on their own). In tritond the spawning process (the scheduler for an
ensemble, the worker for BLS) collects each child's timestamps as data
(``messages.TraceChild``) and hands them back in the Response of the request
that spawned them; the frontend that sampled the request gives them trace ids
and writes them (frontend/trace.py, frontend/tracetree.py). A child's own
children come back inside its Response and are renumbered here, so any depth
of nesting arrives flat.
"""
from __future__ import annotations

import itertools

import msgspec

from tritond.messages import Response, TraceChild

# Response.trace, in order (workers/responses.stamps); an ensemble answers
# only its QUEUE_START.
WORKER_STAMPS = ("QUEUE_START", "COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START",
                 "COMPUTE_END")


def stamp_names(stamps: list[int]) -> tuple[str, ...]:
    """The activity names of a ``Response.trace``: all five, or the compute four (the
    request never passed the scheduler's ``add``), or an ensemble's QUEUE_START."""
    if len(stamps) == len(WORKER_STAMPS):
        return WORKER_STAMPS
    return WORKER_STAMPS[:1] if len(stamps) == 1 else WORKER_STAMPS[1:]


def text(value) -> str:
    """A request id as the scheduler may hold it (undecoded msgpack: scheduler/wire.py)."""
    if type(value) is msgspec.Raw:
        value = msgspec.msgpack.decode(value)
    return value if isinstance(value, str) else ""


class Children:
    """The child traces one traced request collects (its ``Response.children``)."""

    __slots__ = ("items", "_refs")

    def __init__(self) -> None:
        self.items: list[TraceChild] = []
        self._refs = itertools.count(1)   # BLS calls may take refs from two threads

    def next(self) -> int:
        """A new child's ``ref`` (what its own ``Request.trace`` carries)."""
        return next(self._refs)

    def add(self, ref: int, model: str, version: int, request_id, start_ns: int,
            resp: Response, end_ns: int) -> None:
        """Child ``ref`` answered ``resp`` (its final one): REQUEST_START when it was sent,
        the scheduler's and worker's stamps, REQUEST_END when it came back; then its own
        children, renumbered under it."""
        stamps = [("REQUEST_START", start_ns), *zip(stamp_names(resp.trace), resp.trace),
                  ("REQUEST_END", end_ns)]
        version = resp.model_version or max(version, 0)     # -1: never resolved
        self.items.append(TraceChild(ref, 0, model, version, text(request_id), stamps))
        if resp.children:
            self.adopt(resp.children, ref)

    def adopt(self, nested: list[TraceChild], parent: int) -> None:
        """Children of child ``parent``: fresh refs, their parent 0 becoming ``parent``."""
        mapping = {c.ref: self.next() for c in nested}
        for c in nested:
            self.items.append(TraceChild(mapping[c.ref], mapping.get(c.parent, parent)
                                         if c.parent else parent, c.model, c.version,
                                         c.request_id, c.stamps))
