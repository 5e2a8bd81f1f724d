"""Workers that left the model table while they were still answering requests.

A decoupled model (or any response sender) answers after its ``execute`` returned, when
the scheduler has already let the request go; the caller (a frontend's, the scheduler's
ensembles', a BLS channel's ``InferClient``) keeps ``answering``: rid -> that worker. When
a ``ModelTable`` no longer lists the worker, those requests end with UNAVAILABLE. A
retiring worker is still alive: it finishes what it answers before it goes.
"""
from __future__ import annotations

from tritond import messages
from tritond.errors import Code


def live_workers(table: messages.ModelTable) -> set[str]:
    """The addresses of the workers ``table`` lists, retiring ones included."""
    live = {i.address for e in table.models for i in e.instances}
    live.update(table.retiring)
    return live


def exit_reasons(table: messages.ModelTable) -> dict[str, str]:
    """Address -> how it died, for the instances ``table`` reports dead."""
    return {a: how for e in table.models if e.exited for a, how in e.exited.items()}


def gone(answering: dict[int, str], live: set, how: dict) -> list[tuple[int, messages.ErrorInfo]]:
    """The requests of ``answering`` whose worker is not in ``live``, each with the error its
    caller gets; they leave ``answering``."""
    out = []
    for rid, instance in list(answering.items()):
        if instance in live:
            continue
        del answering[rid]
        reason = how.get(instance) or "the model instance became unavailable"
        out.append((rid, messages.ErrorInfo(
            int(Code.UNAVAILABLE), f"{reason} while sending the responses of the request")))
    return out
