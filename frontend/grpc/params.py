"""gRPC ``InferParameter`` maps <-> Python values, with Triton's type rules.

Request-level keys follow ``SetInferenceRequestMetadata`` in Triton's
grpc/infer_handler.cc; tensor-level shared-memory and
classification keys follow ``ParseSharedMemoryParams`` and
``ParseClassificationParams``. Every message below is Triton's,
word for word, because clients and tests match on them.
"""
from __future__ import annotations

from tritond.errors import invalid_arg, unsupported
from tritond.frontend.types import ShmRef
from tritond.protos import grpc_service_pb2 as pb

_ALLOWED_TRITON_KEYS = ("triton_enable_empty_final_response",)
_RESERVED_MSG = (
    "parameter keys starting with 'triton_' are reserved for Triton usage. Only the "
    "following keys starting with 'triton_' are allowed: " + " ".join(_ALLOWED_TRITON_KEYS))
_UINT64_MASK = (1 << 64) - 1
_SHM_KEYS = ("shared_memory_region", "shared_memory_offset", "shared_memory_byte_size")


def value(param) -> object:
    """The Python value held by an ``InferParameter`` (None when no field is set)."""
    which = param.WhichOneof("parameter_choice")
    return None if which is None else getattr(param, which)


def plain(params) -> dict:
    """Every entry of a parameter map as a Python value, without type rules."""
    return {k: value(p) for k, p in params.items()}


def _expect(param, which: str, key: str, expected: str):
    if param.WhichOneof("parameter_choice") != which:
        raise invalid_arg(f"invalid value type for '{key}' parameter, expected {expected}.")
    return getattr(param, which)


def _sequence_id(p):
    which = p.WhichOneof("parameter_choice")
    if which not in ("int64_param", "string_param"):
        raise invalid_arg("invalid value type for 'sequence_id' parameter, expected "
                          "int64_param or string_param.")
    if which == "int64_param":
        # Triton passes it to SetCorrelationId(uint64): a negative int64 is how a client
        # sends an id of 2**63 or more.
        return p.int64_param & _UINT64_MASK
    return p.string_param


def _timeout(p) -> int:
    # Triton passes it to SetTimeoutMicroseconds(uint64): a negative int64 wraps (-1 is
    # 2**64 - 1 us, a timeout that never passes) instead of failing the request.
    return _expect(p, "int64_param", "timeout", "int64_param") & _UINT64_MASK


def _priority(p):
    which = p.WhichOneof("parameter_choice")
    if which == "int64_param":
        if p.int64_param < 0:
            raise invalid_arg("invalid value for 'priority', expected value >= 0.")
        return p.int64_param
    if which == "uint64_param":
        return p.uint64_param
    raise invalid_arg("invalid value type for 'priority' parameter, expected "
                      "int64_param or uint64_param.")


_RESERVED = {
    "sequence_id": _sequence_id,
    "sequence_start": lambda p: _expect(p, "bool_param", "sequence_start", "bool_param"),
    "sequence_end": lambda p: _expect(p, "bool_param", "sequence_end", "bool_param"),
    "priority": _priority,
    "timeout": _timeout,
    "triton_enable_empty_final_response": lambda p: _expect(
        p, "bool_param", "triton_enable_empty_final_response", "bool_param"),
}
_CUSTOM_KINDS = ("int64_param", "bool_param", "string_param", "double_param")


def request_params(params) -> dict:
    """Request-level parameters as Python values, INVALID_ARG on a wrong oneof.

    Reserved keys keep their Triton meaning (sequence_id int or str, priority
    from int64 >= 0 or uint64, timeout int64 only, taken as uint64); custom keys may be int64,
    bool, string or double, never uint64.
    """
    out = {}
    for key, p in params.items():
        check = _RESERVED.get(key)
        if check is not None:
            out[key] = check(p)
        elif key.startswith("triton_"):
            raise invalid_arg(_RESERVED_MSG)
        else:
            which = p.WhichOneof("parameter_choice")
            if which not in _CUSTOM_KINDS:
                raise invalid_arg(f"invalid value type for '{key}' parameter, expected "
                                  "int64_param, bool_param, or string_param.")
            out[key] = getattr(p, which)
    return out


def shm_ref(params, tensor: str) -> ShmRef | None:
    """The client shared-memory reference named by a tensor's parameters, if any."""
    region = params.get("shared_memory_region")
    offset = params.get("shared_memory_offset")
    size = params.get("shared_memory_byte_size")
    if region is not None:
        if region.WhichOneof("parameter_choice") != "string_param":
            raise invalid_arg("invalid value type for 'shared_memory_region' parameter for "
                              f"tensor '{tensor}', expected string_param.")
    for key, p in (("shared_memory_offset", offset), ("shared_memory_byte_size", size)):
        if p is None:
            continue
        if region is None:
            raise invalid_arg(f"'{key}' can not be specified without 'shared_memory_region' "
                              f"parameter for tensor '{tensor}'")
        if p.WhichOneof("parameter_choice") != "int64_param":
            raise invalid_arg(f"invalid value type for '{key}' parameter for tensor "
                              f"'{tensor}', expected int64_param.")
    if region is None:
        return None
    if size is None:
        raise invalid_arg("'shared_memory_byte_size' must be specified along with "
                          f"'shared_memory_region' parameter for tensor '{tensor}'")
    return ShmRef(region.string_param, offset.int64_param if offset is not None else 0,
                  size.int64_param)


def tensor_params(params) -> dict:
    """A tensor's parameters minus the shared-memory keys, as Python values."""
    return {k: value(p) for k, p in params.items() if k not in _SHM_KEYS}


def classification(params) -> int:
    """The requested top-k of the classification extension (0 when absent)."""
    p = params.get("classification")
    if p is None:
        return 0
    if p.WhichOneof("parameter_choice") != "int64_param":
        raise invalid_arg("invalid value type for 'classification' parameter, expected "
                          "int64_param")
    if p.int64_param <= 0:
        raise invalid_arg("invalid value for 'classification' parameter, expected >= 0")
    return p.int64_param


def to_proto(val, param) -> None:
    """Store a Python value into an ``InferParameter`` (response parameters).

    bool is tested before int because bool is a subclass of int; bytes give
    UNSUPPORTED as Triton's ``TRITONSERVER_PARAMETER_BYTES`` does.
    """
    if isinstance(val, bool):
        param.bool_param = val
    elif isinstance(val, int):
        param.int64_param = val
    elif isinstance(val, str):
        param.string_param = val
    elif isinstance(val, float):
        param.double_param = val
    else:
        raise unsupported(f"response parameter of type '{type(val).__name__}' is not "
                          "supported by the gRPC protocol")


def fill(params: dict, proto_map) -> None:
    """Copy a dict of Python values into a ``map<string, InferParameter>``."""
    for key, val in params.items():
        to_proto(val, proto_map[key])


def make(val) -> pb.InferParameter:
    """A new ``InferParameter`` holding ``val``."""
    p = pb.InferParameter()
    to_proto(val, p)
    return p
