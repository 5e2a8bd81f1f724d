"""``request.get_response_sender()``: Triton's InferenceResponseSender and its rules.

Decoupled models send 0..N responses and then the FINAL flag, from any thread,
during or after ``execute``; a non-decoupled model may answer through it too
(exactly one response, and the FINAL flag). Misuse raises Triton's messages
(python_backend's response_sender.cc) as ``TritonModelException``.

Where a response goes is the worker's business: once ``attach(sink)`` was
called every send is handed to ``sink(response, final)`` (the worker's
``StreamHub``); before that (a non-decoupled model answering inside
``execute``, or a model run in-process by a test) responses are kept here.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
_SIGNATURE = (
    "send(): incompatible function arguments. The following argument types are supported:\n"
    "    1. (self: c_python_backend_utils.InferenceResponseSender, response: "
    "c_python_backend_utils.InferenceResponse = None, flags: int = 0) -> None\n\n"
    "Invoked with: a %s, a %s")


class InferenceResponseSender:
    """One request's response sender."""

    def __init__(self, decoupled: bool = False, cancelled=None) -> None:
        self._decoupled = decoupled
        self._cancelled = cancelled
        self._lock = threading.Lock()
        self._sink: Optional[Callable] = None
        self.response = None             # non-decoupled: the one response, until FINAL
        self.responses: list = []        # decoupled without a sink (in-process tests)
        self.closed = False
        self.sent = 0

    def attach(self, sink: Callable, if_open: bool = False) -> bool:
        """From now on responses go to ``sink(response, final)`` (``if_open``: only
        if the FINAL flag was not sent yet; returns whether it was attached)."""
        with self._lock:
            if if_open and self.closed:
                return False
            self._sink = sink
            return True

    def send(self, response=None, flags: int = 0) -> None:
        from .inference import InferenceResponse, TritonModelException
        if not (response is None or isinstance(response, InferenceResponse)) \
                or not hasattr(type(flags), "__index__"):
            # python_backend's send is a pybind method: wrong types never reach the sender
            raise TypeError(_SIGNATURE % (type(response).__name__, type(flags).__name__))
        if flags not in (0, TRITONSERVER_RESPONSE_COMPLETE_FINAL):
            raise TritonModelException("Unable to send response. Unsupported flag provided.")
        if flags == 0 and response is None:
            raise TritonModelException("Inference Response object must be provided when the "
                                       "response flags is set to zero.")
        final = flags == TRITONSERVER_RESPONSE_COMPLETE_FINAL
        with self._lock:
            if not self._decoupled:
                if response is not None and self.sent > 0:
                    raise TritonModelException("Unable to send response. Non-decoupled model "
                                               "cannot send more than one response.")
                if response is None and final and self.sent == 0:
                    raise TritonModelException("Unable to send response. Non-decoupled model "
                                               "cannot send complete final before sending a "
                                               "response.")
            if self.closed:
                raise TritonModelException(
                    "Unable to send response. Response sender has been closed.")
            if final:
                self.closed = True
            self.sent += 1
            self._deliver(response, final)

    def _deliver(self, response, final: bool) -> None:
        sink = self._sink
        if not self._decoupled:
            if response is not None:
                self.response = response
            if sink is not None and final:      # one response, the final one
                sink(self.response, True)
        elif sink is not None:
            sink(response, final)
        elif response is not None:
            self.responses.append(response)

    def is_cancelled(self) -> bool:
        return self._cancelled is not None and self._cancelled()
