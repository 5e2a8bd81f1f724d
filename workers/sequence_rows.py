"""The executor's steps for the rows of a sequence model's Execute (``Execute.slots``):
control and state inputs in, state outputs kept, not-ready rows never answered."""
from __future__ import annotations

from tritond.errors import Code
from tritond.messages import ErrorInfo, Executed

from .backend import WorkRequest


def map_inputs(executor, ex, errors: dict) -> dict:
    """The rows' WorkRequests with the control (and state) inputs of each row's slot.

    A not-ready row carries the inputs of a ready row of the batch (scheduler's
    ``null_row``): it reuses that row's mapped views instead of mapping them again."""
    ready = [req for req, slot in zip(ex.requests, ex.slots) if slot.ready]
    mapped = executor._map_inputs(ready, errors)
    spare = next(iter(mapped.values()), None)
    if spare is not None:        # before the control inputs are added to it
        spare_req, spare_inputs, spare_outputs = spare.request, dict(spare.inputs), spare.outputs
    seq = executor.seq
    extra = seq.state_outputs
    add_inputs = seq.add_inputs
    work = {}
    for req, slot in zip(ex.requests, ex.slots):
        if slot.ready:
            w = mapped.get(req.rid)
        elif spare is not None and _same_inputs(req, spare_req):
            w = WorkRequest(req, dict(spare_inputs), spare_outputs)
        else:
            w = executor._map_inputs([req], errors).get(req.rid)
            if w is not None and not slot.ready:
                w.dests = {}     # never into the client region of the row it copies
        if w is None:
            continue
        work[req.rid] = w
        add_inputs(w.inputs, req, slot)
        if extra:
            w.outputs = [*w.outputs, *(n for n in extra if n not in w.outputs)]
            if seq.buffers is not None:
                w.dests.update(seq.dests(slot))    # ONNX Runtime writes the next state there
    return work


def _same_inputs(a, b) -> bool:
    """Whether two rows name the same tensors (a not-ready row and the row it copies)."""
    ia, ib = a.inputs, b.inputs
    if ia == ib:       # a not-ready row is an exact copy (scheduler's null_row): one C compare
        return True
    return len(ia) == len(ib) and all(
        x.name == y.name and x.region == y.region and x.offset == y.offset and x.gen == y.gen
        and x.kind == y.kind and x.shape == y.shape and x.dtype == y.dtype
        for x, y in zip(ia, ib))


def keep_states(seq, ex, work: dict, results: dict, share_type, io) -> None:
    """Each row's state outputs become its slot's next state; a fused batch's are
    split by row. The client gets a state output only where it is also one of the
    request's outputs (a config output, named or by default): Triton QA's
    ``*_sequence_int32_output`` models; ``map_inputs`` added the others."""
    if not seq.state_outputs:
        return
    fused: dict[int, dict] = {}
    for req, slot in zip(ex.requests, ex.slots):
        res = results.get(req.rid)
        if res is None:
            continue
        shown = io.requested([o.name for o in req.outputs])
        w = work.get(req.rid)
        if w is not None:
            w.outputs = shown
        if isinstance(res, share_type):
            whole = res.result
            states = fused.get(id(whole))
            if states is None:
                states = fused[id(whole)] = {n: whole.outputs[n] for n in seq.state_outputs
                                             if n in whole.outputs}
            i = res.index
            seq.keep(slot, req.flags, {n: a[i:i + 1] for n, a in states.items()})
        else:
            seq.keep(slot, req.flags, res.outputs if res.error is None else {}, shown)


NOT_READY = ErrorInfo(int(Code.UNAVAILABLE), "not-ready sequence slot")


def skip_not_ready(ex, errors: dict) -> set:
    """Not-ready rows' outputs are never written: they count as failed rows (they name
    no frontend, so no statistics). Returns their rids: the executor makes no Response
    for them (``Responses.build``'s ``quiet``)."""
    quiet = set()
    for req, slot in zip(ex.requests, ex.slots):
        if not slot.ready:
            errors[req.rid] = NOT_READY
            quiet.add(req.rid)
    return quiet


def answered(writer, responses: list, slots) -> list:
    """The responses of the ready rows; a not-ready row's outputs go back to the arena
    (an Execute with slots for a model the worker runs without ``SequenceIO``)."""
    out = []
    for item, slot in zip(responses, slots):
        if slot.ready:
            out.append(item)
        else:
            writer.discard(item[1].outputs)
    return out


def executed(instance: str, ex, stats, errors: dict, results: dict) -> Executed:
    """The batch's Executed: its failed rows (statistics) and, for an iterative
    sequence model, the requests the model rescheduled (scheduler/iterative.py)."""
    failed = [r.rid for r in ex.requests if r.rid in errors and r.frontend]
    if not ex.slots:
        return Executed(instance, ex.batch_id, stats, failed)
    again = [(r.frontend, r.rid) for r in ex.requests
             if r.frontend and getattr(results.get(r.rid), "rescheduled", False)]
    return Executed(instance, ex.batch_id, stats, failed, again)
