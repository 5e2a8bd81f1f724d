"""The Responses an ensemble request answers with (forwarded through the scheduler).

Outputs go by reference: ``owners`` names each output's worker when they differ
(the requester releases each to its owner).
"""
from __future__ import annotations

from tritond import messages
from tritond.sequenceparams import response_parameters

from .ensemble import Run
from .outputs import Reply


def iteration(run: Run, it: int) -> Reply:
    """A decoupled ensemble's response for iteration ``it`` (not the final one)."""
    seq = run.sequence(run.wanted, it)
    refs, owners = run.take_outputs(it)
    req = run.req
    instance = next((o for o in owners if o), "")
    return Reply(req.frontend, messages.Response(
        req.rid, outputs=refs, instance=instance, model_version=run.model.version,
        final=False, owners=owners if any(o != instance for o in owners) else [],
        parameters=response_parameters(*seq) if refs else {}))


def final(run: Run, out: list, decoupled: bool) -> messages.Response:
    """The final Response: outputs, the last answer made final, or a bare final flag."""
    req = run.req
    if decoupled:
        if out and type(out[-1]) is Reply and out[-1].response.rid == req.rid \
                and out[-1].frontend == req.frontend and not out[-1].response.final:
            resp = out.pop().response      # answered in this same turn: it is the last
            resp.final = True
            return resp
        return messages.Response(req.rid, model_version=run.model.version, empty=True)
    seq = run.sequence(run.wanted, 0)
    refs, owners = run.take_outputs(0)
    instance = next((o for o in owners if o), "")
    return messages.Response(req.rid, outputs=refs, instance=instance,
                             model_version=run.model.version,
                             owners=owners if any(o != instance for o in owners) else [],
                             parameters=response_parameters(*seq) if refs else {})
