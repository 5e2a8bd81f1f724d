"""The child traces a worker's traced requests collect until their Response is built.

A Python model's BLS calls made with ``trace=request.trace()`` are child traces
of that request (workers/python/blstrace.py). Each traced request being
executed has a ``Children`` here, keyed by (requester, rid); the executor moves
it into the request's ``Response.children`` (``attach``) and forgets the batch's
keys, so a call still answering later records into a detached object, never a
leak. Empty (one falsy test per batch) unless a traced request runs here.
"""
from __future__ import annotations

from tritond.tracechildren import Children

OPEN: dict[tuple[str, int], Children] = {}


def open_for(frontend: str, rid: int) -> Children:
    kids = OPEN[(frontend, rid)] = Children()
    return kids


def attach(requests, responses) -> None:
    """Put each request's children into its Response; forget every key of the batch (a
    decoupled model's response senders answer later: their children are not sent)."""
    for to, resp in responses:
        kids = OPEN.get((to, resp.rid))
        if kids is not None and kids.items:
            resp.children = kids.items
    for req in requests:
        OPEN.pop((req.frontend, req.rid), None)
