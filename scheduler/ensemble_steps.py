"""An ensemble's step requests: ``submit`` builds the Request of one step of a run
(its inputs renamed, its version resolved, the requester's sequence and parameters
carried) and hands it to the composing model's policy in process (``core.add``),
or backlogs it behind ``max_inflight_requests`` (scheduler/ensembles.py)."""
from __future__ import annotations

import msgspec

from tritond import messages
from tritond.errors import Code

from .ensemble import Run, Step
from .inputcheck import input_error
from .outputs import Reply

_replace = msgspec.structs.replace


def submit(ens, run: Run, step: Step, it: int, now_ns: int, out: list) -> None:
    """Submit ``step`` of ``run`` (iteration ``it``) to its model's policy (``core.add``), or
    backlog it behind ``max_inflight_requests``; its refusals go to ``out``. ``ens``: the
    core's Ensembles (its step rid counter and latest versions are read and kept here)."""
    if not run.limiter.admit(step.index):
        run.limiter.backlog[step.index].append((run, step, it))
        run.waiting += 1
        return
    core = ens.core
    # -1: no ready version (a model's only version may be 0, as in Triton)
    version = step.version if step.version > 0 else ens._latest.get(step.model, -1)
    inputs = [_replace(item[0], name=name) for name, tensor in step.inputs
              if (item := run.tensors.get((tensor, it))) is not None]
    target = core._models.get((step.model, version))   # noqa: SLF001 - our core
    batch = 0
    if target is not None and target.cfg.max_batch_size > 0:
        batch = inputs[0].shape[0] if inputs and inputs[0].shape else 1
    ens._rid += 1
    rid = ens._rid
    req = run.req
    corrid, flags = req.correlation_id, req.flags
    if run.seq:                        # a step's response overrode them (Triton's)
        corrid, flags = run.sequence([tensor for _, tensor in step.inputs], it)
        if run.stepseq is None:
            run.stepseq = {}
        run.stepseq[rid] = (corrid, flags)
    sub = messages.Request(
        rid, core.address, step.model, version, inputs,
        [messages.OutputSpec(o, run.dests.get(t)) for o, t in step.outputs.items()]
        if run.dests else step.specs,
        batch, req.request_id, req.priority, req.timeout_us, corrid, flags,
        req.parameters, now_ns)
    run.trace.submit(sub, now_ns)      # traced: a child trace per step (enstrace.py)
    decoupled = target is not None and target.cfg.spec.decoupled
    sub.cache = target is not None and target.cached   # its worker looks it up
    run.submitted += 1
    if version >= 0 and ens.answers.eligible(run, step, it, target, core.address):
        ens.answers.mark(run, step, sub)
    run.pending[rid] = (step, it, decoupled)
    ens.steps[rid] = run
    if version < 0:
        out.append(Reply(core.address, messages.Response(rid, error=messages.ErrorInfo(
            int(Code.UNAVAILABLE), f"Request for unknown model: '{step.model}' has no "
            "available versions"))))
        return
    if target is not None:             # the model's own input check, as Triton's step has
        wrong = input_error(target.cfg.rules, inputs, sub.request_id)
        if wrong is not None:
            out.append(Reply(core.address, messages.Response(rid, error=wrong)))
            return
    out.extend(core.add(sub, now_ns))
