"""BYTES length tables: a serialised BYTES tensor split with no Python step per element.

The frontend walks every BYTES input's 4-byte length prefixes when it checks the
request (``frontend.validate.check_bytes``). Walking them a second time in the
worker, one Python step per element, was the largest per-element cost of a
BYTES request (~100 µs per 1,000 elements). So the frontend keeps the lengths it
read as a *length table* (one little-endian ``uint32`` per element) and writes it
into the same arena slot, after the payload (``TensorRef.lengths_at``).

The worker then splits the payload with one ``struct`` format built from the
table (``<I{n0}sI{n1}s...``): one C call makes every element, and it reads each
length prefix back too. The table is only a hint: :func:`split` accepts it only
when the format consumes the payload exactly and every prefix it read equals the
table's length, i.e. exactly what the sequential walk would have produced. Any
other table (stale, short, corrupted) gives None and the caller's checked walk
decides, so a wrong table can never change what a model sees.

:func:`short_table` finds the table with numpy instead of a walk when every element
is 1 to 255 bytes long (the frontend's check and a parse that got no table try it).
"""
from __future__ import annotations

import array
import struct
from typing import Optional, Sequence

import numpy as np

# Below this many elements the per-element walk is as cheap as building a format.
MIN_ELEMENTS = 32
# Format pieces for elements under 1 KiB (~60 KiB of strings); longer ones are formatted
# with % (~3x slower, but then copying the elements costs more than the format).
_SHORT = 1024
# short_table scans a buffer this many bytes at a time (its masks take ~4 bytes per byte).
_SHORT_SCAN = 4 << 20
# Elements per struct format: its compiled codes take ~64 bytes per element.
_CHUNK = 4096
_PIECES = np.array([f"I{n}s" for n in range(_SHORT)], dtype=object)


def table(lengths: list[int]) -> bytes:
    """The length table of ``lengths`` (each < 2**32: it was read from a prefix)."""
    t = array.array("I", lengths)          # C loop; numpy's conversion costs 3x more
    if t.itemsize != 4 or not np.little_endian:
        return np.asarray(lengths, "<u4").tobytes()
    return t.tobytes()


def short_table(buf, count: int) -> Optional[bytes]:
    """The length table of ``buf`` (serialised BYTES, ``count`` elements) found with numpy,
    when every element is 1 to 255 bytes long (words, tokens, labels, ids); None when the
    buffer is not exactly that (some element empty or longer, or malformed): the caller's
    walk decides then.

    A prefix of such an element is a non-zero byte and three zero bytes. Every position
    that looks like one is taken as a prefix, and the result is accepted only if those
    positions are exactly the walk's chain: the first is 0, each one's length leads to the
    next, the last ends the buffer, and there are ``count`` of them. By induction from 0
    that *is* the walk, so a false look-alike (three zero bytes inside an element) can only
    make it refuse, never accept a wrong split.
    """
    b = np.frombuffer(buf, np.uint8)
    end = b.size
    if end < 4 or not b[0] or b[1] or b[2] or b[3]:
        return None
    # Scanned a slice at a time so that the masks stay small whatever the buffer's size
    # (a 10M-element tensor is ~100 MiB); each slice overlaps the next by 3 bytes.
    found = []
    total = 0
    for lo in range(0, end - 3, _SHORT_SCAN):
        hi = min(lo + _SHORT_SCAN, end - 3)
        pos = _looks(b[lo:hi + 3])
        total += pos.size
        if total > count:
            return None
        found.append(pos + lo if lo else pos)
    pos = found[0] if len(found) == 1 else np.concatenate(found)
    if pos.size != count:
        return None
    sizes = b[pos]                      # the other three bytes of each prefix are zero
    nxt = pos + 4
    nxt += sizes
    if nxt[-1] != end or not (nxt[:-1] == pos[1:]).all():
        return None
    return sizes.astype("<u4").tobytes()


def starts(data, count: int, tab) -> Optional[np.ndarray]:
    """Where each of the ``count`` elements of ``data`` (serialised BYTES) begins (its
    prefix), computed from the length table ``tab``; None unless the table describes
    ``data`` exactly (the same test as :func:`split`, made with numpy)."""
    b = np.frombuffer(data, np.uint8)
    if count == 0 or len(tab) != 4 * count:
        return None
    sizes = np.frombuffer(tab, "<u4", count)
    ends = np.cumsum(sizes, dtype=np.int64)
    ends += np.arange(4, 4 * count + 1, 4)
    if ends[-1] != b.size:
        return None
    at = ends - sizes
    at -= 4
    read = b[at].astype(np.uint32)          # each prefix's four bytes, little-endian
    for shift in (8, 16, 24):
        at += 1
        byte = b[at].astype(np.uint32)
        byte <<= shift
        read |= byte
    at -= 3
    return at if (read == sizes).all() else None


def _looks(b: np.ndarray) -> np.ndarray:
    """Positions ``p`` of ``b`` (up to ``b.size - 4``) where a non-zero byte is followed
    by three zero bytes: every prefix of a 1 to 255 byte element, and look-alikes."""
    zero = b == 0
    look = zero[1:-2] & zero[2:-1]
    look &= zero[3:]
    np.greater(look, zero[:-3], out=look)     # and a non-zero byte first (bools: a > b)
    return look.nonzero()[0]


def split(data: bytes, count: int, tab) -> Optional[Sequence[bytes]]:
    """The ``count`` elements of ``data`` (serialised BYTES) as a sequence of ``bytes``,
    using the length table ``tab``; None unless the table describes ``data`` exactly."""
    if count == 0 or len(tab) != 4 * count:
        return None
    # A private copy (none for bytes): the format and the check below must use the
    # very same numbers.
    lengths = np.frombuffer(tab if type(tab) is bytes else bytes(tab), "<u4", count)
    if count <= _CHUNK:
        values = _unpack(data, 0, lengths, len(data))
        return None if values is None else values[1::2]
    items: list = []
    pos = 0
    for start in range(0, count, _CHUNK):
        part = lengths[start:start + _CHUNK]
        end = pos + 4 * len(part) + int(part.sum(dtype=np.int64))
        values = _unpack(data, pos, part, end)
        if values is None:
            return None
        items += values[1::2]
        pos = end
    return items if pos == len(data) else None


def _unpack(data: bytes, pos: int, lengths: np.ndarray, end: int) -> Optional[tuple]:
    """(prefix, element, prefix, element, ...) of ``data[pos:end]`` split as ``lengths``
    says; None unless it consumes exactly that span and every prefix read agrees."""
    if end > len(data):
        return None
    try:        # (cheaper than asking lengths.max() first: numpy's reduction costs ~4 µs)
        fmt = "<" + "".join(_PIECES[lengths].tolist())
    except IndexError:                      # an element of _SHORT bytes or more
        fmt = "<" + ("I%ds" * len(lengths)) % tuple(lengths.tolist())
    # A fresh Struct, not struct's cache (it would keep big formats alive).
    st = struct.Struct(fmt)
    if st.size != end - pos:
        return None
    values = st.unpack_from(data, pos)
    if values[0::2] != tuple(lengths.tolist()):    # every prefix read is the table's
        return None
    return values
