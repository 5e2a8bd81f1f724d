"""The trace of one traced ensemble request (scheduler/ensembles.py hooks in here).

As in Triton's ensemble scheduler, every step request of a traced ensemble
request gets a child trace (``parent_id`` = the ensemble's trace id) carrying
the ensemble's request id: REQUEST_START when the step is submitted, the
composing model's QUEUE_START and COMPUTE_* (its Response.trace), REQUEST_END
when its final Response comes back. The ensemble's own trace has no COMPUTE_*
stamps: the frontend's REQUEST_START/REQUEST_END and the QUEUE_START taken here
when the scheduler starts it. A traced request never takes the direct-answer
path (its final step's Response has to come back here to be recorded).
An untraced request's run holds ``UNTRACED``, whose hooks do nothing (one call
each instead of a test at every hook in ensembles.py).
"""
from __future__ import annotations

from tritond import messages
from tritond.tracechildren import Children


class RunTrace:
    """The ensemble's QUEUE_START and its steps' child traces."""

    __slots__ = ("queue_start", "children", "steps")

    def __init__(self, now_ns: int) -> None:
        self.queue_start = now_ns
        self.children = Children()
        self.steps: dict[int, tuple] = {}       # step rid -> (ref, model, version, id, start)

    def submit(self, sub: messages.Request, now_ns: int) -> None:
        """A step request is sent: traced as a child (the core appends its QUEUE_START)."""
        ref = self.children.next()
        sub.trace = [ref]
        self.steps[sub.rid] = (ref, sub.model, sub.version, sub.request_id, now_ns)

    def answered(self, resp: messages.Response, now_ns: int) -> None:
        """A step's Response: its final one ends the child (REQUEST_END)."""
        if not resp.final:
            return
        item = self.steps.pop(resp.rid, None)
        if item is not None:
            ref, model, version, request_id, start = item
            self.children.add(ref, model, version, request_id, start, resp, now_ns)

    def attach(self, resp: messages.Response) -> None:
        """The ensemble's final Response carries its QUEUE_START and every child."""
        resp.trace = [self.queue_start]
        resp.children = self.children.items


class _Untraced:
    """The hooks of an untraced run: nothing to record."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def submit(self, sub, now_ns: int) -> None:
        pass

    def answered(self, resp, now_ns: int) -> None:
        pass

    def attach(self, resp) -> None:
        pass


UNTRACED = _Untraced()
