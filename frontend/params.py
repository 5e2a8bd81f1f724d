"""Request-level parameters -> ``messages.Request`` fields."""
from __future__ import annotations

from tritond.errors import invalid_arg, unsupported
from tritond.messages import SEQUENCE_END, SEQUENCE_START
# Consumed by a transport, never forwarded to the model.
_TRANSPORT_KEYS = frozenset({"binary_data_output", "headers"})


def request_fields(params: dict) -> tuple[int, int, object, int, dict]:
    """(priority, timeout_us, correlation_id, flags, custom parameters) from ``params``.

    Reserved keys map to Request fields; ``triton_*`` keys are dropped here (HTTP
    rejects them in its codec, gRPC accepts only its streaming opt-in); the rest
    pass through to the model.
    """
    priority = timeout = flags = 0
    corr: object = 0
    custom = {}
    for key, value in params.items():
        if key == "priority":
            priority = _uint(key, value)
        elif key == "timeout":
            timeout = _uint(key, value)
        elif key == "sequence_id":
            if type(value) is int and 0 <= value < 1 << 64 or type(value) is str:
                corr = value
            else:
                raise invalid_arg(f"Unable to parse 'sequence_id': {json_reason(str)}")
            if type(value) is str and len(value) > 128:
                raise unsupported("string correlation ID cannot be longer than 128 characters")
        elif key == "sequence_start":
            flags |= SEQUENCE_START if _bool(key, value) else 0
        elif key == "sequence_end":
            flags |= SEQUENCE_END if _bool(key, value) else 0
        elif key in _TRANSPORT_KEYS or key.startswith("triton_"):
            continue
        elif type(value) is int:
            # Triton keeps an int64 as an int parameter, any other number as a double
            # (and msgpack could not carry a Python int beyond 64 bits to the model).
            custom[key] = value if _INT64_MIN <= value <= _INT64_MAX else float(value)
        elif type(value) in (str, bool, float):
            custom[key] = value
        else:
            raise invalid_arg(f"parameter '{key}' has invalid type. It should be either "
                              "'int', 'bool', or 'string'.")
    return priority, timeout, corr, flags, custom


# TritonJson's reasons, which Triton appends to its "Unable to parse '<key>'" texts
_JSON_KINDS = {str: "string as string", bool: "boolean as boolean", list: "array as array",
               "uint": "unsigned-integer as unsigned-integer"}


def json_reason(kind, missing: str = "") -> str:
    """TritonJson's words for a member that is absent (``missing``) or not of ``kind``."""
    if missing:
        return f"attempt to access non-existing object member '{missing}'"
    return f"attempt to access JSON non-{_JSON_KINDS[kind]}"


_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1


def _uint(key: str, value) -> int:
    if type(value) is not int or not 0 <= value <= _UINT64_MAX:   # Triton's MemberAsUInt
        raise invalid_arg(f"Unable to parse '{key}': {json_reason('uint')}")
    return value


def _bool(key: str, value) -> bool:
    if type(value) is not bool:
        raise invalid_arg(f"Unable to parse '{key}': {json_reason(bool)}")
    return value
