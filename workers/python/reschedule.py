"""``request.set_release_flags(TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)``: python_backend's rules.

A model reschedules a request to run it again later with the same inputs
(iterative sequences: scheduler/iterative.py). Read once ``execute`` returned
(a decoupled model must set the flag before returning, as in Triton):

- non-decoupled: the rescheduled request's place in the returned list must be
  None; anything else fails the whole batch with python_backend's message (its
  typo included), and an ``execute`` that raised reschedules nothing;
- decoupled: the request's response sender stays open (its stream in the
  worker's hub carries on at the next step); one that already sent FINAL is done;
- a model without ``iterative_sequence`` gets Triton core's INVALID_ARG for that
  request (Triton logs it and drops the request; we answer the client);
- a request the client cancelled meanwhile is rescheduled all the same (python_backend
  does not look): the scheduler knows the cancel, queues it as a cancelled request, and
  its sequence ends when its slot reaches it (Triton core's way: scheduler/iterative.py).
"""
from __future__ import annotations

from functools import partial

from tritond.errors import RESCHEDULE_NOT_CONFIGURED, Code

from ..backend import WorkResult
from . import returns

RESCHEDULE = 2      # TRITONSERVER_REQUEST_RELEASE_RESCHEDULE


def wanted(pb_requests) -> bool:
    """Whether ``execute`` asked to reschedule any request (python_backend compares ==)."""
    for pb in pb_requests:
        if pb._release_flags == RESCHEDULE:
            return True
    return False


def _again(spec) -> bool:
    seq = spec.sequence_batching if spec is not None else None
    return seq is not None and seq.iterative


def results(backend, requests, pb_requests, responses) -> list[WorkResult]:
    """The results of a non-decoupled ``execute`` that returned ``responses``
    (``returns.results`` when it rescheduled nothing)."""
    if not wanted(pb_requests):
        return returns.results(backend, requests, pb_requests, responses)
    if isinstance(responses, (list, tuple)) and len(responses) == len(pb_requests):
        for pb, resp in zip(pb_requests, responses):
            if pb._release_flags == RESCHEDULE and resp is not None:
                return returns.all_failed(
                    backend, pb_requests,
                    "Expected a None object in the execute function return list "
                    f"for reschduled request, found type '{type(resp)}'.")
    keep = [i for i, pb in enumerate(pb_requests) if pb._release_flags != RESCHEDULE]
    if isinstance(responses, (list, tuple)) and len(responses) == len(pb_requests):
        rest = returns.results(backend, [requests[i] for i in keep],
                               [pb_requests[i] for i in keep], [responses[i] for i in keep])
    elif responses is None:
        rest = returns.results(backend, [requests[i] for i in keep],
                               [pb_requests[i] for i in keep], None)
    else:                        # not a list of the right length: results says so
        return returns.results(backend, requests, pb_requests, responses)
    out: list = [None] * len(pb_requests)
    for i, res in zip(keep, rest):
        out[i] = res
    iterative = _again(backend.spec)
    for i, pb in enumerate(pb_requests):
        if out[i] is None:
            if not iterative:
                out[i] = WorkResult.failed(Code.INVALID_ARG, RESCHEDULE_NOT_CONFIGURED)
            else:
                out[i] = WorkResult(streamed=True, rescheduled=True)
    return out


def decoupled(backend, pb_requests, out: list[WorkResult]) -> list[WorkResult]:
    """``out`` of a decoupled ``execute``, with the requests it rescheduled marked."""
    if not wanted(pb_requests):
        return out
    from . import pb_utils
    iterative = _again(backend.spec)
    for i, pb in enumerate(pb_requests):
        if pb._release_flags != RESCHEDULE:
            continue
        sender = pb.get_response_sender()
        if sender.closed:
            continue             # it sent FINAL: nothing left to run
        if iterative:
            out[i] = WorkResult(streamed=True, rescheduled=True)
            park(backend.streams, pb._cancel_key)
            continue
        error = pb_utils.TritonError(RESCHEDULE_NOT_CONFIGURED, pb_utils.TritonError.INVALID_ARG)
        try:
            sender.send(pb_utils.InferenceResponse(error=error),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        except pb_utils.TritonModelException:
            pass                 # closed by a model thread meanwhile
    return out


def sink(hub, req, outputs):
    """Where ``req``'s response sender sends: its stream in the worker's hub. A
    rescheduled request keeps the stream it had (its responses go on in order, and
    its frontend already knows this worker answers it). A sequence batch's not-ready
    row answers nobody: what the model sends for it is dropped."""
    if not req.frontend:
        return _drop
    stream = hub.streams.get((req.frontend, req.rid))
    if stream is None or stream.closed:
        stream = hub.open(req, outputs)
    stream.parked = False
    return partial(hub.submit, stream)


def park(hub, key) -> None:
    """``key``'s stream waits for its next step in the scheduler. A cancel meanwhile only
    flags it (the scheduler holds a cancelled step and answers it CANCELLED when its
    slot reaches it); once the frontend got the request's final answer from elsewhere
    (the scheduler answered the cancel or refused the reschedule) it says so
    (CancelRunning ANSWERED) and the stream is dropped."""
    stream = hub.streams.get(key) if hub is not None else None
    if stream is not None:
        stream.parked = True


def _drop(response, final: bool) -> None:
    """The sink of a not-ready row (scheduler's null_row)."""
