"""Model-ready queries of a Python model that defines ``is_ready()``.

Triton's ModelIsReady asks every instance of the version in turn
(``TRITONBACKEND_ModelInstanceReady``); python_backend calls the model's ``is_ready()``
and waits for it at most ``WAIT_NS``. The model is ready only when every instance said
True: a False, an exception, a non-bool answer or a timeout makes it not ready (the
query itself succeeds). Here the instances are asked at once and the first "no" answers
the query; the workers answer on a thread beside ``execute``
(workers/python/readiness.py). Models without ``is_ready()`` never come here: the
frontend answers from its table.
"""
from __future__ import annotations

from tritond import messages
from tritond.framing import READY_SUFFIX

WAIT_NS = 5_000_000_000      # python_backend's kUserModelReadinessTimeoutMs


class UserReadiness:
    """Pending queries: scheduler check id -> (query, instances still to answer, deadline)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._pending: dict[int, tuple[messages.UserReadyQuery, set[str], int]] = {}
        self._next = 1

    def __bool__(self) -> bool:
        return bool(self._pending)

    def ask(self, query: messages.UserReadyQuery, instances: list[str],
            now_ns: int) -> list[tuple[str, object]]:
        """What to post for ``query`` given its version's live instance names (none: not
        ready, answered at once)."""
        if not instances:
            return [(query.frontend, messages.Answer(query.qid, ready=False))]
        qid = self._next
        self._next = qid + 1
        self._pending[qid] = (query, set(instances), now_ns + WAIT_NS)
        check = messages.UserReadyCheck(qid, self.address)
        return [(address + READY_SUFFIX, check) for address in instances]

    def reply(self, msg: messages.UserReadyReply) -> list[tuple[str, object]]:
        """An instance answered: the query's answer once it is decided (a late reply of an
        answered query is dropped)."""
        pending = self._pending.get(msg.qid)
        if pending is None:
            return []
        query, waiting, _ = pending
        waiting.discard(msg.instance)
        if msg.ready and msg.error is None and waiting:
            return []
        del self._pending[msg.qid]
        return [(query.frontend, messages.Answer(query.qid, ready=msg.ready and msg.error is None))]

    def due(self, now_ns: int) -> list[tuple[str, object]]:
        """Queries whose bound passed with an instance still silent: not ready."""
        late = [qid for qid, (_, _, deadline) in self._pending.items() if now_ns >= deadline]
        out = []
        for qid in late:
            query = self._pending.pop(qid)[0]
            out.append((query.frontend, messages.Answer(query.qid, ready=False)))
        return out

    def next_deadline_ns(self) -> int | None:
        return min((d for _, _, d in self._pending.values()), default=None)
