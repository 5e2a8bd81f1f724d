"""``preserve_ordering: true``: answer a model's requests in arrival order.

Responses travel worker -> frontend directly, and with several instances a
later request can finish first, so the order is restored where the answers
land: the frontend keeps, per model version, a FIFO of the requests it sent
and holds a response back until every earlier one of that model has been
answered. Each frontend process orders its own requests (the requests one
client sends all reach the same frontend process: one connection, one process).

Cost for models without the option: one truthiness check per Response.
"""
from __future__ import annotations

from collections import deque


class Ordering:
    """Per model version, the FIFO of this frontend's requests (a member of FrontendCore).

    Only final Responses are ordered: a request's earlier (non-final)
    responses pass at once, and its final one waits for the finals of the
    requests sent before it.
    """

    def __init__(self) -> None:
        self.of: dict[int, tuple[deque, list]] = {}     # rid -> (model FIFO, item)
        self._fifo: dict[tuple[str, int], deque] = {}

    def track(self, name: str, version: int, rid: int) -> None:
        """Request ``rid`` of an ordered model was sent to the scheduler."""
        fifo = self._fifo.get((name, version))
        if fifo is None:
            fifo = self._fifo[(name, version)] = deque()
        item = [rid, None]
        fifo.append(item)
        self.of[rid] = (fifo, item)

    def release(self, resp) -> list:
        """The final responses that may be delivered now, in order (maybe none: ``resp`` waits)."""
        fifo, item = self.of.pop(resp.rid)
        item[1] = resp
        ready = []
        while fifo and fifo[0][1] is not None:
            ready.append(fifo.popleft()[1])
        return ready
