"""Statistics queries that wait for the executions running when they arrived.

A worker writes a request's response one write before it tells the scheduler that
the batch ran (the response first: it is the client's latency). A client that has
its response and asks for statistics at once could be answered before that
``Executed`` is read: one success short, once in a while on a busy host. So a
query waits until every batch that was executing on an instance of the queried
model(s) when it arrived has been reported, or ``WAIT_NS`` has passed (a model
that executes for seconds is answered meanwhile with what is counted so far).
Batches dispatched after the query do not hold it: no response of theirs can
have reached the client before it asked.

An ensemble has no instance: its success is counted when its last step's Executed
comes (scheduler/ensemble_stats.py), after its answer went out (a step's worker may
even answer the client itself: scheduler/direct.py). So a query also waits for the
ensemble requests answered, or being answered by a worker, and not yet counted when
it arrived (``Ensembles.uncounted``), with the same bound.
"""
from __future__ import annotations

WAIT_NS = 200_000_000


class StatsQueries:
    """Pending StatsQuery messages and the batch ids each waits for."""

    def __init__(self) -> None:
        self._pending: list[tuple[object, set[int], int]] = []   # query, batch ids, deadline

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, query, instances: dict, now_ns: int, ensembles=None) -> bool:
        """Queue ``query``; returns whether it waits for running batches."""
        running = _running(instances, query.name, ensembles)
        self._pending.append((query, running, now_ns + WAIT_NS))
        return bool(running)

    def due(self, instances: dict, now_ns: int, ensembles=None) -> list:
        """The queries to answer now, in arrival order; the others stay."""
        ready, keep = [], []
        for query, ids, deadline in self._pending:
            if ids:
                ids &= _running(instances, query.name, ensembles)
            if not ids or now_ns >= deadline:
                ready.append(query)
            else:
                keep.append((query, ids, deadline))
        self._pending = keep
        return ready

    def next_deadline_ns(self) -> int | None:
        """When the oldest waiting query is answered regardless (None: none waits)."""
        return min((d for _, _, d in self._pending), default=None)


def _running(instances: dict, name: str, ensembles=None) -> set:
    """Ids of the batches executing on instances of model ``name`` (every model if
    empty), and the keys of the ensemble requests of ``name`` still to be counted."""
    running = {inst.busy.batch_id for inst in instances.values()
               if inst.busy is not None and (not name or inst.model.stats.name == name)}
    if ensembles is not None:
        running.update(ensembles.uncounted(name))
    return running
