"""BYTES serialisation: numpy arrays -> per element a 4-byte little-endian length, then the
bytes (the KServe v2 layout), in C order; C loops wherever the elements allow."""
from __future__ import annotations

import operator
import struct
from typing import Optional

import numpy as np

from tritond.errors import invalid_arg

from . import lengths, parsed

_LEN = struct.Struct("<I")
_MAX_ELEMENT = 0xFFFFFFFF


def _encode(e) -> bytes:
    if isinstance(e, bytes):           # includes np.bytes_
        return e
    if isinstance(e, str):             # includes np.str_
        return e.encode("utf-8")
    if isinstance(e, (bytearray, memoryview)):
        return bytes(e)
    return str(e).encode("utf-8")


def _elements(arr: np.ndarray) -> list[bytes]:
    # ravel(order="C") gives C order for any layout (copies only the pointers
    # of a non-contiguous object array); tolist() turns S/U arrays into bytes/str.
    flat = np.asarray(arr).ravel(order="C")
    items = flat.tolist() if flat.dtype.kind in "SU" else list(flat)
    types = set(map(type, items))
    if types <= {bytes}:               # the common cases skip a call per element
        out = items
    elif types <= {str}:
        out = list(map(str.encode, items))            # UTF-8; one C loop
    else:
        out = [_encode(e) for e in items]
    if out and max(map(len, out)) > _MAX_ELEMENT:
        raise invalid_arg("an element of BYTES tensor is more than 4 GiB")
    return out


# Below this many elements a Python loop beats numpy's fixed costs.
_VECTOR_MIN = 32
# The 4-byte prefix of each length under 1 KiB, made once.
_PREFIXES = [struct.pack("<I", n) for n in range(1024)]


def serialize_bytes(arr: np.ndarray) -> bytes:
    """Serialise an array as BYTES: a 4-byte LE length then the bytes, per element in C order."""
    return _serialize(arr, False)[0]


def serialize_bytes_table(arr: np.ndarray) -> tuple[bytes, Optional[bytes]]:
    """:func:`serialize_bytes` plus the result's length table (``shm.lengths``) when it
    has many elements (None otherwise): a worker stages it after an output for whoever
    parses the output next (a JSON answer, an ensemble's next step)."""
    return _serialize(arr, True)


def _serialize(arr: np.ndarray, table: bool) -> tuple[bytes, Optional[bytes]]:
    flat = np.asarray(arr).ravel(order="C")
    if flat.dtype == object and flat.size >= _VECTOR_MIN:
        found = parsed.find(flat)            # the very elements of a parsed input: its bytes
        if found is not None:
            return found if table else (found[0], None)
        items = flat.tolist()
        vector = pack_elements(items)
        if vector is not None:
            data, lens = vector
            return data, (lengths.table(lens) if table and len(lens) >= lengths.MIN_ELEMENTS
                          else None)
    els = _elements(flat)
    if len(els) >= _VECTOR_MIN:      # str elements: encoded above, then packed in C loops
        data, lens = pack_elements(els)
        return data, (lengths.table(lens) if table else None)
    pack = _LEN.pack
    return b"".join([part for b in els for part in (pack(len(b)), b)]), None


# Elements serialised per join: the interleaved list of a whole 10M-element tensor would
# not fit in the CPU's caches (3x slower per element than joining 16k at a time).
_JOIN_CHUNK = 16384


def pack_elements(items: list) -> Optional[tuple[bytes, list]]:
    """Bytes-like ``items`` serialised as BYTES with C loops only, with their lengths
    (None: some element is not bytes-like, e.g. a str, and needs the per-element path)."""
    n = len(items)
    if n < _VECTOR_MIN:
        try:
            lens = list(map(len, items))
            data = b"".join([p for b, k in zip(items, lens) for p in (_LEN.pack(k), b)])
        except (TypeError, struct.error):
            return None
        return (data, lens) if len(data) == 4 * n + sum(lens) else None
    if n <= _JOIN_CHUNK:
        return _serialize_vector(items)
    parts, lens = [], []
    for start in range(0, n, _JOIN_CHUNK):
        packed = _serialize_vector(items[start:start + _JOIN_CHUNK])
        if packed is None:
            return None
        parts.append(packed[0])
        lens += packed[1]
    return b"".join(parts), lens


def _serialize_vector(items: list) -> Optional[tuple[bytes, list]]:
    """:func:`pack_elements` of one chunk.

    The packed lengths and the elements are interleaved in one list and joined once
    (``b"".join`` raises on a non bytes-like element): each byte is copied once.
    """
    n = len(items)
    try:
        lens = list(map(len, items))
    except TypeError:                       # an int or another element without len()
        return None
    parts = [None] * (2 * n)
    try:            # the prefixes of short elements: one C call picks them from a table
        parts[::2] = operator.itemgetter(*lens)(_PREFIXES)
    except IndexError:                      # some element of 1 KiB or more: packed
        try:
            parts[::2] = map(_LEN.pack, lens)
        except struct.error:                # > 4 GiB, or a len() that is no byte count:
            return None                     # the per-element path tells them apart
    parts[1::2] = items
    try:
        data = b"".join(parts)
    except TypeError:
        return None
    if len(data) != 4 * n + sum(lens):      # a memoryview of wider items: len() is not bytes
        return None
    return data, lens


def serialized_size(arr: np.ndarray) -> int:
    """Bytes that :func:`serialize_bytes` would produce for ``arr``."""
    els = _elements(arr)
    return 4 * len(els) + sum(map(len, els))
