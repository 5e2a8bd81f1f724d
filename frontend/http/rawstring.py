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
import numpy as np

# JSON's mandatory escapes: '"', '\\' and the C0 controls.
_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n",
            0x0D: b"\\r", 0x09: b"\\t"}
_TABLE = [_ESCAPES.get(i, b"\\u%04X" % i if i < 0x20 else bytes([i])) for i in range(256)]


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


_MUST_ESCAPE = np.zeros(256, bool)
_MUST_ESCAPE[list(range(0x20)) + [0x22, 0x5C]] = True
# Each byte's escape as (bytes inserted before it, the byte that replaces it): '"' -> '\\' and
# '"', 0x01 -> '\\u000' and '1'.
_LAST = np.array([t[-1] for t in _TABLE], np.uint8)
_INSERTED = np.array([len(t) - 1 for t in _TABLE], np.int64)
_HEAD = np.zeros((256, 5), np.uint8)
for _b, _t in enumerate(_TABLE):
    _HEAD[_b, :len(_t) - 1] = list(_t[:-1])
_QUOTE_COMMA_QUOTE = np.frombuffer(b'","', np.uint8)


def json_array_of(data, starts: np.ndarray) -> msgspec.Raw | None:
    """The elements of serialised BYTES ``data`` whose prefixes begin at ``starts``
    (``shm.lengths.starts``) as one raw JSON array of strings, the bytes :func:`json_string`
    per element would give (msgspec escapes a str's characters as ``_TABLE`` does their
    bytes), made with numpy passes over the bytes instead of a ``bytes`` object per element:
    each 4-byte prefix becomes ``","`` (the first one ``"``), and each byte JSON must
    escape gets its escape's head inserted before it and its last character in its place."""
    n = starts.size
    if n < ARRAY_MIN:
        return None
    b = np.frombuffer(data, np.uint8)
    keep = np.ones(b.size, bool)
    keep[starts] = False                            # one byte less per prefix...
    out = b[keep]
    at = starts - np.arange(n)
    special = _MUST_ESCAPE[out]
    for k in range(3):                              # ...and '","' in the other three
        out[at + k] = _QUOTE_COMMA_QUOTE[k]
        special[at + k] = False
    where = special.nonzero()[0]
    if where.size:
        found = out[where]
        out[where] = _LAST[found]
        count = _INSERTED[found]
        heads = _HEAD[found][np.arange(5) < count[:, None]]       # row by row: in order
        out = np.insert(out, np.repeat(where, count), heads)
    return msgspec.Raw(b"[" + out[2:].tobytes() + b'"]')


def json_string(value: bytes) -> str | msgspec.Raw:
    """``value`` as a JSON string element: text when it is UTF-8, raw bytes otherwise."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return msgspec.Raw(b'"' + b"".join(_TABLE[b] for b in value) + b'"')
