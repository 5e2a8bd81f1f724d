"""A BYTES element as a JSON string holding the element's bytes unchanged.

Triton's JSON writer copies a BYTES element into the string verbatim, escaping
only ``"``, ``\\`` and control characters, and never validates UTF-8: a client
gets back exactly the bytes the model produced (tritonclient then raises on
invalid UTF-8, which is the point - a server never changes a client's data).
Valid UTF-8 stays a Python ``str``; anything else becomes a ``msgspec.Raw``
fragment, which msgspec writes as-is.
"""
from __future__ import annotations

import re

import msgspec

# JSON's mandatory escapes: '"', '\\' and the C0 controls.
_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n",
            0x0D: b"\\r", 0x09: b"\\t"}
_TABLE = [_ESCAPES.get(i, b"\\u%04x" % i if i < 0x20 else bytes([i])) for i in range(256)]


# A byte that a JSON string must escape; none in a whole tensor: one join writes it.
_SPECIAL = re.compile(rb'["\\\x00-\x1f]')
# Below this many elements the per-element path costs no more.
ARRAY_MIN = 32


def json_array(items: list) -> msgspec.Raw | None:
    """``items`` (bytes) as one raw JSON array of strings, each element's bytes copied
    verbatim between quotes, when no element holds a byte JSON must escape (the same
    bytes :func:`json_string` per element would give); else None."""
    if len(items) < ARRAY_MIN or _SPECIAL.search(b"".join(items)):
        return None
    return msgspec.Raw(b'["' + b'","'.join(items) + b'"]')


def json_string(value: bytes) -> str | msgspec.Raw:
    """``value`` as a JSON string element: text when it is UTF-8, raw bytes otherwise."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return msgspec.Raw(b'"' + b"".join(_TABLE[b] for b in value) + b'"')
