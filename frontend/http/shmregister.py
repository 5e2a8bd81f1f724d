"""The body of an HTTP shared-memory register request, read as Triton's HTTP server reads it.

Triton looks each field up in the body (an empty body or one that is not an object has
none): a missing field is its INVALID_ARG "Shared memory register request has no '<f>'
field" (``offset`` may be left out); a value of the wrong JSON type is TritonJson's reason,
which Triton answers 500 and tritond, a client's mistake, 400 with the field named first.
gRPC has no such cases (its message always has every field).
"""
from __future__ import annotations

from tritond.errors import invalid_arg

_UINT = "attempt to access JSON non-unsigned-integer as unsigned-integer"
_STRING = "attempt to access JSON non-string as string"


def _missing(field: str):
    return invalid_arg(f"Shared memory register request has no '{field}' field")


def _uint(doc: dict, field: str) -> int:
    value = doc[field]
    if type(value) is not int or value < 0:
        raise invalid_arg(f"Unable to parse '{field}': {_UINT}")
    return value


def system_fields(doc) -> tuple[str, int, int]:
    """(key, offset, byte_size) in Triton's order of checks."""
    doc = doc if isinstance(doc, dict) else {}
    if "key" not in doc:
        raise _missing("key")
    if type(doc["key"]) is not str:
        raise invalid_arg(f"Unable to parse 'key': {_STRING}")
    offset = _uint(doc, "offset") if "offset" in doc else 0
    if "byte_size" not in doc:
        raise _missing("byte_size")
    return doc["key"], offset, _uint(doc, "byte_size")


def cuda_fields(doc) -> tuple[str, int, int]:
    """(base64 handle, device_id, byte_size) in Triton's order of checks."""
    doc = doc if isinstance(doc, dict) else {}
    if "raw_handle" not in doc:
        raise _missing("raw_handle")
    raw = doc["raw_handle"]
    if not isinstance(raw, dict) or "b64" not in raw:
        raise invalid_arg("Unable to parse 'raw_handle': attempt to access non-existing "
                          "object member 'b64'")
    if type(raw["b64"]) is not str:
        raise invalid_arg(f"Unable to parse 'raw_handle': {_STRING}")
    for field in ("byte_size", "device_id"):
        if field not in doc:
            raise invalid_arg(f"Unable to parse '{field}': attempt to access non-existing "
                              f"object member '{field}'")
    return raw["b64"], _uint(doc, "device_id"), _uint(doc, "byte_size")
