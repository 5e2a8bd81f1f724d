"""What a non-decoupled Python model's ``execute`` returned, as the worker's results.

python_backend's rules and texts for the returned list (one ``InferenceResponse`` or None
per request, None for a request answered through its response sender), and a failure
that names the instance as Triton's stub does. ``backend`` is the
:class:`~tritond.workers.python.backend.PythonBackend` that ran ``execute``.
"""
from __future__ import annotations

from functools import partial

from tritond.errors import Code

from ..backend import WorkRequest, WorkResult
from . import pb_utils


def results(backend, requests, pb_requests, responses) -> list[WorkResult]:
    """Check the model's return value (python_backend's rules and texts) and convert
    it. None, or None in the list, for a request answered through its sender."""
    if responses is None:
        responses = [None] * len(pb_requests)
    elif not isinstance(responses, list):       # a tuple too, as the stub checks it
        return all_failed(backend, pb_requests, "Expected a list in the execute return, "
                          f"found type '{type(responses)}'.")
    if len(responses) != len(pb_requests):
        return all_failed(
            backend, pb_requests,
            "Number of InferenceResponse objects do not match the number of "
            f"InferenceRequest objects. InferenceRequest(s) size is:{len(pb_requests)}, "
            f"and InferenceResponse(s) size is:{len(responses)}\n")
    through_senders = False
    for pb, resp in zip(pb_requests, responses):
        if resp is None:
            through_senders = True
        elif not isinstance(resp, pb_utils.InferenceResponse):
            return all_failed(backend, pb_requests, "Expected an 'InferenceResponse' object "
                              "in the execute function return list, found type "
                              f"'{type(resp)}'.")
        elif pb._sender is not None and pb._sender.sent:
            # python_backend sends a returned response through the sender: a second one
            return all_failed(backend, pb_requests, "Unable to send response. Non-decoupled "
                              "model cannot send more than one response.")
    if not through_senders:
        return [result(r) for r in responses]
    out = []
    for w, pb, resp in zip(requests, pb_requests, responses):
        res = result(resp) if resp is not None else _sent(backend, w, pb)
        if res is None:           # run in-process, without the worker's hub
            return all_failed(backend, pb_requests, "execute returned None for a request "
                              "that did not send its response through the response sender")
        out.append(res)
    return out


def keep_sent(pb_requests, out: list[WorkResult]) -> list[WorkResult]:
    """A response a request's sender already sent during ``execute`` reached its client
    in Triton, whatever ``execute`` then returned or raised: it stays the answer (the
    sender closes, as python_backend closes them after a failed execute)."""
    for i, pb in enumerate(pb_requests):
        sender = pb._sender
        if sender is not None and sender.response is not None and not out[i].streamed:
            sender.closed = True
            out[i] = result(sender.response)
    return out


def _sent(backend, w: WorkRequest, pb) -> WorkResult | None:
    """The result of a request answered through its sender (None: not answered).

    Sent and closed inside execute: converted here. Still open: its one
    response comes later, from a model thread, through the worker's hub.
    """
    sender = pb._sender
    hub = backend.streams
    if sender is None:
        if hub is None:
            return None
        sender = pb.get_response_sender()   # a model thread may take it later (Triton)
    if sender.closed:
        return result(sender.response)
    if hub is None:
        return None
    stream = hub.open(w.request, w.outputs)
    if sender.attach(partial(hub.submit, stream), if_open=True):
        return WorkResult(streamed=True)
    hub.streams.pop(stream.key, None)     # closed by a model thread meanwhile
    return result(sender.response)


def all_failed(backend, pb_requests, message: str) -> list[WorkResult]:
    return [WorkResult.failed(Code.INTERNAL, failure(backend, message)) for _ in pb_requests]


def failure(backend, message: str) -> str:
    # Triton's stub names the instance ("add_sub_0_0"), not the model.
    return (f"Failed to process the request(s) for model '{backend.ctx.instance}', "
            f"message: {message}")


def result(resp) -> WorkResult:
    if not isinstance(resp, pb_utils.InferenceResponse):
        return WorkResult.failed(Code.INTERNAL, f"execute returned a {type(resp).__name__}, "
                                                f"expected pb_utils.InferenceResponse")
    if resp.has_error():
        err = resp.error()
        return WorkResult.failed(err.code(), err.message())
    outputs = {t._name: t._array for t in resp.output_tensors()}   # numpy or cupy
    # _parameters was checked (str -> bool/int/str) when the response was built:
    # no JSON round trip through parameters() per response.
    return WorkResult(outputs=outputs, parameters=resp._parameters)
