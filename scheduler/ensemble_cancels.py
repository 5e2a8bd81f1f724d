"""Cancelling an ensemble request, and failing one: its steps in flight are told
(scheduler/ensembles.py)."""
from __future__ import annotations

from tritond import messages
from tritond.errors import REQUEST_CANCELLED, Code

from .ensemble import Run

CANCELLED = messages.ErrorInfo(int(Code.CANCELLED), REQUEST_CANCELLED)


def cancel(ens, frontend: str, rid: int, now_ns: int):
    """Cancel an ensemble request (None: ``rid`` is not one).

    Triton checks a cancel between steps: a request with a step still to start
    fails CANCELLED; once every step was submitted, their answers stand (a model
    that ignores the cancel and succeeds: its outputs). The steps in flight are
    told either way (queued: dropped; running: ``is_cancelled()``).
    """
    run = ens.clients.get((frontend, rid))
    if run is None:
        return None
    out: list = []
    if run.error is not None or run.cancelled:
        return out
    run.cancelled = True
    if run.waiting or run.model.policy.decoupled or run.submitted < len(run.graph.steps):
        fail(ens, run, CANCELLED, now_ns, out)
        if not run.pending:            # every step was still in the backlog
            ens._finish(run, now_ns, out)
        return out
    core = ens.core
    for step_rid in list(run.pending):
        out.extend(core.cancel(core.address, step_rid, now_ns))
    return out


def fail(ens, run: Run, error, now_ns: int, out: list) -> None:
    """``run`` fails with ``error``: its backlogged steps are dropped, its steps in flight
    cancelled (their answers end it)."""
    run.error = error
    run.limiter.purge(run)
    core = ens.core
    for rid in list(run.pending):
        out.extend(core.cancel(core.address, rid, now_ns))
