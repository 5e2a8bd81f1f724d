"""BYTES parsing: a serialised buffer (per element a 4-byte little-endian length, then
the bytes) -> a 1-D object array of ``bytes``, checked, with fast paths for well-formed
buffers (uniform widths, the frontend's length tables)."""
from __future__ import annotations

import struct
from typing import Optional

import numpy as np

from tritond.errors import invalid_arg

from . import lengths, parsed
from .bytesencoding import _LEN, _VECTOR_MIN


def uniform_elements(buf, count: int) -> Optional[np.ndarray]:
    """``buf`` as records (``n``: length, ``b``: bytes) when its ``count`` elements all
    have the first one's length (fixed-width strings: ids, hashes, padded text), else None.

    One vectorised check instead of a Python step per element.
    """
    end = len(buf) if not isinstance(buf, memoryview) else buf.nbytes
    if count < _VECTOR_MIN or end < 4:
        return None
    (n,) = _LEN.unpack_from(buf, 0)
    if end != count * (4 + n):
        return None
    rec = np.frombuffer(buf, np.dtype([("n", "<u4"), ("b", f"V{n}")]) if n else "<u4")
    sizes = rec["n"] if n else rec
    return rec if (sizes == n).all() else None


def deserialize_bytes(buf, count: Optional[int] = None, table=None) -> np.ndarray:
    """Parse a serialised BYTES buffer into a 1-D object array of ``bytes``.

    With ``count`` exactly that many elements must be present. Raises
    INVALID_ARG when a length runs past the end, bytes are left over, or the
    element count differs from ``count``. ``table``: the frontend's length table
    of ``buf`` (``shm.lengths``), a hint used only when it matches ``buf`` exactly.
    """
    # One memcpy of the whole buffer lets each element be a plain bytes slice
    # (one allocation) instead of a memoryview slice plus tobytes() (two).
    data = buf if isinstance(buf, bytes) else memoryview(buf).cast("B").tobytes()
    end = len(data)
    if count is not None:
        out, table, items = _parse_fast(data, count, table)
        if out is not None:
            if count >= parsed.MIN_ELEMENTS:
                parsed.remember(out, data, table, items)
            return out
    unpack = _LEN.unpack_from
    items = []
    append = items.append
    pos = 0
    limit = count if count is not None else -1
    found = 0
    while pos < end and found != limit:
        if end - pos < 4:
            raise invalid_arg(
                f"element {found} of BYTES tensor needs a 4-byte length but only "
                f"{end - pos} bytes remain")
        (n,) = unpack(data, pos)
        pos += 4
        nxt = pos + n
        if nxt > end:
            raise invalid_arg(
                f"element {found} of BYTES tensor claims {n} bytes but only {end - pos} remain")
        append(data[pos:nxt])
        pos = nxt
        found += 1
    _check_end(len(items), count, end - pos)
    return _objects(items)


def _parse_fast(data: bytes, count: int, table) -> tuple:
    """The ``count`` elements of a well-formed buffer as an object array, with the
    length table that split it (None: no table did) and the sequence of elements it was
    made from; (None, None, None) when the buffer is not well formed (the checked walk
    then names the problem)."""
    if table is None and count >= lengths.MIN_ELEMENTS:
        table = lengths.short_table(data, count)     # short elements: found with numpy
    if table is not None:
        table = bytes(table)            # kept with the parsed array (parsed.remember)
        items = lengths.split(data, count, table)
        if items is not None:
            return _objects(items), table, items
    items = _fast_elements(data, count)
    return (None, None, None) if items is None else (_objects(items), None, items)


def _objects(items) -> np.ndarray:
    """A 1-D object array of ``items`` (bytes): ``fromiter`` stores each as it is, ~25 %
    cheaper than assigning the sequence to an empty array."""
    return np.fromiter(items, dtype=object, count=len(items))


def _fast_elements(data: bytes, count: int) -> Optional[list]:
    """The ``count`` elements of a well-formed buffer, without per-element checks;
    None when it is not well formed (the checked walk then names the problem)."""
    rec = uniform_elements(data, count)
    if rec is not None:
        return rec["b"].tolist() if rec.dtype.names else [b""] * count
    unpack = _LEN.unpack_from
    items = [None] * count
    pos = 0
    try:
        for i in range(count):
            start = pos + 4
            pos = start + unpack(data, pos)[0]
            items[i] = data[start:pos]
    except struct.error:          # a length prefix ran past the end
        return None
    # Offsets only grow: ending exactly at the end means no slice was cut short.
    return items if pos == len(data) else None


def _check_end(found: int, count: Optional[int], left: int) -> None:
    if count is not None and found != count:
        raise invalid_arg(f"BYTES tensor holds {found} elements, expected {count}")
    if left:
        raise invalid_arg(f"BYTES tensor of {found} elements has {left} unexpected trailing bytes")
