"""One error vocabulary for every process and transport.

Errors cross process boundaries as data (:class:`ErrorInfo` in
``tritond.messages``); only the transports turn them into HTTP or gRPC
statuses, each through exactly one table below.
"""
from __future__ import annotations

import enum

import msgspec


class Code(enum.IntEnum):
    """TRITONSERVER_Error_Code values (pb_utils.TritonError uses the same)."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7


HTTP_STATUS = {
    Code.INTERNAL: 500,
    Code.NOT_FOUND: 404,
    Code.UNAVAILABLE: 503,
    Code.UNSUPPORTED: 501,
}
"""Triton's HttpCodeFromError; everything else is 400."""

# grpc.StatusCode names, kept as strings so this module never imports grpc.
GRPC_STATUS = {
    Code.UNKNOWN: "UNKNOWN",
    Code.INTERNAL: "INTERNAL",
    Code.NOT_FOUND: "NOT_FOUND",
    Code.INVALID_ARG: "INVALID_ARGUMENT",
    Code.UNAVAILABLE: "UNAVAILABLE",
    Code.UNSUPPORTED: "UNIMPLEMENTED",
    Code.ALREADY_EXISTS: "ALREADY_EXISTS",
    Code.CANCELLED: "CANCELLED",
}


CODE_TEXT = {
    Code.UNKNOWN: "Unknown",
    Code.INTERNAL: "Internal",
    Code.NOT_FOUND: "Not found",
    Code.INVALID_ARG: "Invalid argument",
    Code.UNAVAILABLE: "Unavailable",
    Code.UNSUPPORTED: "Unsupported",
    Code.ALREADY_EXISTS: "Already exists",
    Code.CANCELLED: "Cancelled",
}
"""Triton's Status code names (core's Status::CodeString)."""


def status_text(code: int, message: str) -> str:
    """A failed model version's reason as Triton writes it (Status::AsString): the code's
    name first, as in "Invalid argument: unknown source input name ..."."""
    return f"{CODE_TEXT.get(Code(code), 'Unknown')}: {message}"


def http_status(code: int) -> int:
    return HTTP_STATUS.get(Code(code), 400)


def grpc_status_name(code: int) -> str:
    return GRPC_STATUS.get(Code(code), "UNKNOWN")


class TritonError(Exception):
    """An error with a Triton code; raised inside a process, sent as data."""

    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    def __repr__(self) -> str:
        return f"TritonError({self.code.name}, {self.message!r})"


def invalid_arg(msg: str) -> TritonError:
    return TritonError(Code.INVALID_ARG, msg)


def not_found(msg: str) -> TritonError:
    return TritonError(Code.NOT_FOUND, msg)


def unavailable(msg: str) -> TritonError:
    return TritonError(Code.UNAVAILABLE, msg)


def unsupported(msg: str) -> TritonError:
    return TritonError(Code.UNSUPPORTED, msg)


def internal(msg: str) -> TritonError:
    return TritonError(Code.INTERNAL, msg)


def already_exists(msg: str) -> TritonError:
    return TritonError(Code.ALREADY_EXISTS, msg)


def cancelled(msg: str) -> TritonError:
    return TritonError(Code.CANCELLED, msg)


# What a cancelled request is answered (CANCELLED): the scheduler's queues, the worker's
# skipped requests, ensemble steps. Triton's own text is empty (docs/compatibility.md).
REQUEST_CANCELLED = "Request was cancelled"

# Triton core's error for a request released with TRITONSERVER_REQUEST_RELEASE_RESCHEDULE
# that nothing may reschedule (infer_request.cc's outermost release callback): used by
# the Python backend's worker and by the scheduler's iterative sequences.
RESCHEDULE_NOT_CONFIGURED = (
    "Request is released with TRITONSERVER_REQUEST_RELEASE_RESCHEDULE, while the model is "
    "not configured to handle such a flag.")


def request_tag(request_id) -> str:
    """Triton core's ``InferenceRequest::LogRequest()``: the prefix of the errors its core
    gives a request it holds (validation, queueing), ``[request id: <id>] `` or, for a
    request without one, ``[request id: <id_unknown>] ``. An ensemble's step request
    carries the ensemble request's id, so its errors show that one. The scheduler holds
    ids undecoded (msgpack, scheduler/wire.py): decoded here, on the error path only."""
    if type(request_id) is msgspec.Raw:
        request_id = msgspec.msgpack.decode(request_id)
    return f"[request id: {request_id or '<id_unknown>'}] "


# Texts Triton's core builds into request errors; the frontend's checks of client requests
# and the scheduler's checks of ensemble steps and BLS calls both use them.
BATCH_NOTE = (
    "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be "
    "prepended to each input shape. If you want to specify the full shape including the batch dim "
    "in your input dims config, try setting max_batch_size to zero. See the model configuration "
    "docs for more info on max_batch_size.")


def dims_str(dims) -> str:
    """Triton's DimsListToString / ShapeToString: ``[-1,16]``."""
    return "[" + ",".join(map(str, dims)) + "]"


def names_str(names) -> str:
    """A list of tensor names as Triton's input-count error writes it: ``['A','B']``."""
    return "[" + ",".join(f"'{n}'" for n in names) + "]"
