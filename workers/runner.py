"""The worker's data path for one loaded model: an ``Execute`` in, its answers out.

:class:`~workers.executor.Executor` runs a batch and returns its Responses; the
:class:`BatchRunner` around it applies the cancellations that came first (a
request cancelled while it waited is never run), routes each Response (to its
frontend, or straight to an ensemble's caller, ``workers/answers.py``) and tells
the scheduler with ``Executed``. The process shell (``workers/main.py``) feeds it.
"""
from __future__ import annotations

import logging
from typing import Callable

from tritond import loglevels, messages
from tritond.errors import REQUEST_CANCELLED, Code

from .answers import EnsembleAnswers
from .cancel import CancelWatch
from .executor import Executor
from .python.bls import held_releases
from .streams import StreamHub

_VERBOSE1 = loglevels.verbose(1)


class BatchRunner:
    """Runs Execute batches of one backend instance and posts what they answer."""

    def __init__(self, executor: Executor, hub: StreamHub, watch: CancelWatch,
                 answers: EnsembleAnswers, post: Callable[[str, object], None],
                 scheduler: str, address: str, title: str, log: logging.Logger) -> None:
        self.executor = executor
        self.hub = hub
        self.watch = watch
        self.answers = answers
        self._post = post
        self.scheduler = scheduler
        self.address = address
        self.title = title
        self.log = log

    def run(self, ex: messages.Execute, cancels: list) -> None:
        """Run ``ex`` (``cancels``: CancelRunning messages that arrived with it)."""
        watch = self.watch
        for msg in cancels:
            watch.note(msg)
        early = watch.start(ex.batch_id)
        direct = self.answers.note(ex.requests)
        skipped = []
        if early:        # cancelled while it waited behind the previous batch: never run
            ex, skipped = _without(ex, early)
        if self.log.isEnabledFor(_VERBOSE1):      # --log-verbose=1, Triton's backend line
            self.log.log(_VERBOSE1, "TRITONBACKEND_ModelInstanceExecute: instance %s, "
                         "executing %d requests", self.title, len(ex.requests))
        try:
            responses, executed = self.executor.run(ex) if ex.requests else ([], None)
        finally:
            watch.stop()
            self.hub.drain()
            self.hub.after_execute()
        if executed is None:
            executed = messages.Executed(self.address, ex.batch_id,
                                         messages.ExecStats(0, 0, 0, 0, 0, 0), [])
        if skipped:
            executed.failed.extend(r.rid for r in skipped)
        if direct:
            # Queued before the caller's answer (the scheduler's frame leaves first when it
            # is the first this turn): the ensemble's statistics are counted by then. No
            # flush of its own: quick batches still share one frame per peer.
            self._executed(executed)
        post = self.answers.post
        for frontend, response in responses:
            post(frontend, response)
        for req in skipped:
            post(req.frontend, messages.Response(
                req.rid, error=messages.ErrorInfo(int(Code.CANCELLED), REQUEST_CANCELLED),
                instance=self.address))
        if not direct:
            self._executed(executed)

    def _executed(self, executed: messages.Executed) -> None:
        for release in held_releases():     # BLS outputs dropped in execute: same frame
            self._post(self.scheduler, release)
        self._post(self.scheduler, executed)


def _without(ex: messages.Execute, early: set) -> tuple[messages.Execute, list]:
    """``ex`` less the requests cancelled before it ran, and those requests."""
    skipped = [r for r in ex.requests if (r.frontend, r.rid) in early]
    if ex.slots:     # a sequence batch keeps its rows (row i is slot i): run them not ready
        ex.slots = [messages.SequenceSlot(s.slot, False) if (r.frontend, r.rid) in early
                    else s for r, s in zip(ex.requests, ex.slots)]
    else:
        ex = messages.Execute(ex.batch_id, [r for r in ex.requests
                                            if (r.frontend, r.rid) not in early],
                              ex.releases)
    return ex, skipped
