"""The executor's steps for the rows of a sequence model's Execute (``Execute.slots``):
control and state inputs in, state outputs kept, not-ready rows never answered."""
from __future__ import annotations

from tritond.errors import Code
from tritond.messages import ErrorInfo

from .backend import WorkRequest


def map_inputs(executor, ex, errors: dict) -> dict:
    """The rows' WorkRequests with the control (and state) inputs of each row's slot."""
    work = executor._map_inputs(ex.requests, errors)
    seq = executor.seq
    extra = seq.state_outputs
    for req, slot in zip(ex.requests, ex.slots):
        w: WorkRequest | None = work.get(req.rid)
        if w is None:
            continue
        w.inputs.update(seq.inputs(req, slot))
        if extra:
            w.outputs = [*w.outputs, *(n for n in extra if n not in w.outputs)]
            if seq.buffers is not None:
                w.dests.update(seq.dests(slot))    # ONNX Runtime writes the next state there
    return work


def keep_states(seq, ex, results: dict, share_type) -> None:
    """Each row's state outputs become its slot's next state (taken out of the
    outputs the client gets); a fused batch's are split by row."""
    fused: dict[int, dict] = {}
    for req, slot in zip(ex.requests, ex.slots):
        res = results.get(req.rid)
        if res is None:
            continue
        if isinstance(res, share_type):
            whole = res.result
            states = fused.get(id(whole))
            if states is None:
                states = fused[id(whole)] = {n: whole.outputs.pop(n) for n in seq.state_outputs
                                             if n in whole.outputs}
            i = res.index
            seq.keep(slot, req.flags, {n: a[i:i + 1] for n, a in states.items()})
        else:
            seq.keep(slot, req.flags, res.outputs if res.error is None else {})


NOT_READY = ErrorInfo(int(Code.UNAVAILABLE), "not-ready sequence slot")


def skip_not_ready(ex, errors: dict) -> None:
    """Not-ready rows' outputs are never written: they count as failed rows (their
    error Responses are dropped by ``answered``; they name no frontend, so no statistics)."""
    for req, slot in zip(ex.requests, ex.slots):
        if not slot.ready:
            errors[req.rid] = NOT_READY


def answered(writer, responses: list, slots) -> list:
    """The responses of the ready rows; a not-ready row's outputs go back to the arena."""
    out = []
    for item, slot in zip(responses, slots):
        if slot.ready:
            out.append(item)
        else:
            writer.discard(item[1].outputs)
    return out
