"""``pb_utils`` request/response classes: InferenceRequest, InferenceResponse,
InferenceResponseSender, TritonError, TritonModelException.

Plain Python objects: the worker builds one InferenceRequest per request from
shared-memory views and reads the model's InferenceResponse back.
"""
from __future__ import annotations

import enum
from typing import Any, Optional

from tritond import tritonjson

from .. import cancel as _cancel
from .request_args import (check_parameters, check_request_args, check_tensors, invoked,
                           refuse_none)
from .sender import TRITONSERVER_RESPONSE_COMPLETE_FINAL, InferenceResponseSender  # noqa: F401
TRITONSERVER_MEMORY_CPU = 0
TRITONSERVER_MEMORY_CPU_PINNED = 1
TRITONSERVER_MEMORY_GPU = 2


class TritonModelException(Exception):
    """Raised by the backend utilities; models may raise it too."""

    def __init__(self, msg: str = "") -> None:
        super().__init__(msg)
        self._msg = msg

    def message(self) -> str:
        return self._msg


class _ErrorCode(enum.IntEnum):
    """python_backend's ``TritonError.__ErrorCode`` (a pybind11 enum): models print it, so it
    prints as that enum does; it compares equal to the plain numbers too."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7

    def __str__(self) -> str:
        return f"__ErrorCode.{self.name}"

    def __repr__(self) -> str:
        return f"<__ErrorCode.{self.name}: {self.value}>"


_ErrorCode.__name__ = _ErrorCode.__qualname__ = "__ErrorCode"   # type(code).__name__


class TritonError:
    """A per-response error: ``TritonError(message, code=TritonError.INTERNAL)``."""

    UNKNOWN = _ErrorCode.UNKNOWN
    INTERNAL = _ErrorCode.INTERNAL
    NOT_FOUND = _ErrorCode.NOT_FOUND
    INVALID_ARG = _ErrorCode.INVALID_ARG
    UNAVAILABLE = _ErrorCode.UNAVAILABLE
    UNSUPPORTED = _ErrorCode.UNSUPPORTED
    ALREADY_EXISTS = _ErrorCode.ALREADY_EXISTS
    CANCELLED = _ErrorCode.CANCELLED

    def __init__(self, *args, **kwargs) -> None:
        self._msg, self._code = _error_args(args, kwargs)

    @staticmethod
    def code_of(value: int) -> _ErrorCode:
        """A TRITONSERVER_Error_Code number from tritond's messages as the model sees it."""
        return _ErrorCode(value)

    def code(self) -> int:
        return self._code

    def message(self) -> str:
        return self._msg

    def __str__(self) -> str:
        return self._msg

    def __repr__(self) -> str:
        return f"TritonError({self._msg!r}, code={self._code})"


_ERROR_SIGNATURE = (
    "__init__(): incompatible constructor arguments. The following argument types are "
    "supported:\n    1. c_python_backend_utils.TritonError(message: str, code: "
    "c_python_backend_utils.TritonError.__ErrorCode = <__ErrorCode.INTERNAL: 1>)\n\n"
    "Invoked with: ")


def _error_args(args: tuple, kwargs: dict) -> tuple[str, _ErrorCode]:
    """``TritonError(message, code=INTERNAL)`` checked as its pybind11 constructor checks
    it: the code must be one of ``TritonError``'s codes (a plain int, None or a number
    outside them is a TypeError), the message a str (bytes decode, as pybind11's does)."""
    bound = dict(zip(("message", "code"), args))
    fits = len(args) <= 2 and not (set(kwargs) - {"message", "code"}) \
        and not (set(kwargs) & set(bound))
    bound.update(kwargs)
    message, code = bound.get("message"), bound.get("code", _ErrorCode.INTERNAL)
    if isinstance(message, bytes):
        try:
            message = message.decode()
        except UnicodeDecodeError:
            message = None
    if not fits or not isinstance(message, str) or type(code) is not _ErrorCode:
        raise TypeError(_ERROR_SIGNATURE + invoked(args, kwargs))
    return message, code


_OMITTED = ()     # an argument left out (tritond lets inputs etc. default to empty)


class InferenceResponse:
    """``InferenceResponse(output_tensors=[], error=None, parameters=None)``."""

    def __init__(self, output_tensors=_OMITTED, error: Optional[TritonError] = None,
                 parameters=None) -> None:
        if output_tensors is _OMITTED:
            output_tensors = []
        elif output_tensors is None:      # pybind11: None is no list of Tensor
            raise TypeError("InferenceResponse: 'output_tensors' must be a list of Tensor, "
                            "not None")
        if not isinstance(output_tensors, list):
            raise TritonModelException('"output_tensors" must be a list.')
        if None in output_tensors:
            raise TritonModelException(
                "Output tensor for inference response should not be empty.")
        if error is not None and not isinstance(error, TritonError):
            # pybind11 refuses it constructing the response (was met sending it)
            raise TypeError(f"InferenceResponse: 'error' must be a TritonError, "
                            f"not {type(error).__name__}")
        self._outputs = output_tensors
        self._error = error
        self._parameters = check_parameters(parameters)

    def output_tensors(self) -> list:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> Optional[TritonError]:
        return self._error

    # A BLS response Triton made without reading any parameters: an error response, or the
    # empty final one of a decoupled call (python_backend's request_executor.cc passes "")
    _unread = False

    def parameters(self) -> str:
        if self._unread:
            return ""
        return tritonjson.dumps(self._parameters)   # TritonJson's compact form


class InferenceTrace:
    """``request.trace()``: pass it to a BLS ``InferenceRequest(trace=...)`` to trace that
    call as a child of the request (workers/python/blstrace.py). ``get_context()`` is
    None: no OpenTelemetry context is handed to models."""

    def __init__(self, context: Optional[str] = None) -> None:
        self._context = context
        self._children = None       # a traced request's tritond.tracechildren.Children

    def get_context(self) -> Optional[str]:
        return self._context


class PreferredMemory:
    def __init__(self, preferred_memory_type: int = TRITONSERVER_MEMORY_CPU,
                 preferred_device_id: int = 0) -> None:
        self.preferred_memory_type = preferred_memory_type
        self.preferred_device_id = preferred_device_id



class InferenceRequest:
    """A request handed to ``TritonPythonModel.execute`` (or built for BLS)."""

    def __init__(self, request_id: str = "", correlation_id: Any = 0, inputs=_OMITTED,
                 requested_output_names=_OMITTED, model_name: str = "",
                 model_version: int = -1, flags: int = 0, timeout: int = 0,
                 preferred_memory=_OMITTED, trace=_OMITTED, parameters=None) -> None:
        refuse_none(inputs=inputs,
                     requested_output_names=requested_output_names,
                     preferred_memory=preferred_memory, trace=trace)
        inputs = list(inputs or [])            # once: a generator is read here only
        requested_output_names = list(requested_output_names or []) \
            if not isinstance(requested_output_names, str) else requested_output_names
        model_version, flags, timeout = check_request_args(
            request_id, correlation_id, inputs, requested_output_names, model_name,
            model_version, flags, timeout)
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._inputs = inputs
        self._requested = list(requested_output_names)
        self.model_name = model_name
        self.model_version = model_version
        self._flags = flags
        self._timeout = timeout
        self._preferred_memory = preferred_memory or PreferredMemory()
        self._trace = trace or InferenceTrace()
        check_tensors(inputs, request_id, model_name)
        self._parameters = check_parameters(parameters)
        self._release_flags = 1  # TRITONSERVER_REQUEST_RELEASE_ALL
        self._sender: Optional[InferenceResponseSender] = None
        self._decoupled = False
        self._cancel_key: Optional[tuple[str, int]] = None   # (frontend, rid), set by the worker

    @classmethod
    def _received(cls, request_id: str, correlation_id, inputs: list, requested: list,
                  model_name: str, model_version: int, flags: int, timeout: int, trace,
                  parameters: dict, cancel_key) -> "InferenceRequest":
        """A request the worker hands to ``execute`` (workers/python/backend.py): the
        same object as ``__init__`` makes, without its checks and copies, since every
        field was checked upstream and ``inputs``/``requested`` are the request's own
        lists (a sequence batch builds 32 of these per step, not-ready rows included)."""
        pb = cls.__new__(cls)
        pb._request_id = request_id
        pb._correlation_id = correlation_id
        pb._inputs = inputs
        pb._requested = requested
        pb.model_name = model_name
        pb.model_version = model_version
        pb._flags = flags
        pb._timeout = timeout
        pb._preferred_memory = PreferredMemory()
        pb._trace = trace or InferenceTrace()
        pb._parameters = parameters
        pb._release_flags = 1  # TRITONSERVER_REQUEST_RELEASE_ALL
        pb._sender = None
        pb._decoupled = False
        pb._cancel_key = cancel_key
        return pb

    def inputs(self) -> list:
        return self._inputs

    def request_id(self) -> str:
        return self._request_id

    def correlation_id(self):
        return self._correlation_id

    def flags(self) -> int:
        return self._flags

    def set_flags(self, flags: int) -> None:
        self._flags = flags

    def timeout(self) -> int:
        return self._timeout

    def parameters(self) -> str:
        return tritonjson.dumps(self._parameters)   # TritonJson's compact form

    def trace(self) -> InferenceTrace:
        return self._trace

    def requested_output_names(self) -> set:
        return set(self._requested)         # python_backend's binding returns a set

    def get_response_sender(self) -> InferenceResponseSender:
        if self._sender is None:
            self._sender = InferenceResponseSender(self._decoupled, self.is_cancelled)
        return self._sender

    def is_cancelled(self) -> bool:
        """True once the client cancelled (disconnect, gRPC cancel or deadline).

        Polls the worker's inbox without blocking (``workers/cancel.py``); a
        request built by the model itself (BLS) has no key and is never cancelled.
        """
        key = self._cancel_key
        return key is not None and _cancel.is_cancelled(key)

    def set_release_flags(self, flags: int) -> None:
        self._release_flags = flags

    def exec(self, decoupled: bool = False):
        """BLS: run this request on ``model_name`` and wait (workers/python/bls_call.py)."""
        from . import bls_call
        return bls_call.execute(self, decoupled)

    async def async_exec(self, decoupled: bool = False):
        """BLS without blocking the model's event loop; many may be in flight."""
        from . import bls_async_call
        return await bls_async_call.execute_async(self, decoupled)
