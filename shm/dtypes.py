"""Protocol datatypes: strings <-> numpy dtypes <-> config enums, and BYTES (de)serialisation.

Every fixed-size type is stored little-endian, row-major, unpadded (as the
KServe v2 protocol says), so the numpy dtypes below carry an explicit ``<``. BF16 has no numpy
type: it is stored and viewed as raw ``<u2`` words. BYTES tensors are always
kept serialised: per element a 4-byte little-endian length, then the bytes.
"""
from __future__ import annotations

import math
import operator
import struct
from typing import NamedTuple, Optional, Sequence

import numpy as np

from tritond.errors import invalid_arg

from . import lengths, parsed


class DType(NamedTuple):
    """One protocol datatype and everything the server needs to know about it."""

    name: str                    # protocol string, e.g. "FP32"
    numpy: np.dtype              # storage dtype (explicit little-endian)
    size: Optional[int]          # bytes per element; None for BYTES
    config: str                  # model_config enum name, e.g. "TYPE_FP32"
    enum: int                    # model_config enum number


def _d(name: str, np_type, size, config: str, enum: int) -> DType:
    return DType(name, np.dtype(np_type), size, config, enum)


DTYPES: dict[str, DType] = {d.name: d for d in (
    _d("BOOL", "?", 1, "TYPE_BOOL", 1),
    _d("UINT8", "u1", 1, "TYPE_UINT8", 2),
    _d("UINT16", "<u2", 2, "TYPE_UINT16", 3),
    _d("UINT32", "<u4", 4, "TYPE_UINT32", 4),
    _d("UINT64", "<u8", 8, "TYPE_UINT64", 5),
    _d("INT8", "i1", 1, "TYPE_INT8", 6),
    _d("INT16", "<i2", 2, "TYPE_INT16", 7),
    _d("INT32", "<i4", 4, "TYPE_INT32", 8),
    _d("INT64", "<i8", 8, "TYPE_INT64", 9),
    _d("FP16", "<f2", 2, "TYPE_FP16", 10),
    _d("FP32", "<f4", 4, "TYPE_FP32", 11),
    _d("FP64", "<f8", 8, "TYPE_FP64", 12),
    _d("BYTES", object, None, "TYPE_STRING", 13),
    _d("BF16", "<u2", 2, "TYPE_BF16", 14),
)}

_BY_CONFIG = {d.config: d.name for d in DTYPES.values()}
# numpy -> protocol; BF16 is deliberately absent (its storage dtype is UINT16's).
_BY_NUMPY = {d.numpy: d.name for d in DTYPES.values() if d.name not in ("BF16", "BYTES")}
# Hot-path lookups: plain dicts, no attribute access.
_NP = {k: d.numpy for k, d in DTYPES.items()}
_SIZE = {k: d.size for k, d in DTYPES.items()}

_LEN = struct.Struct("<I")
_MAX_ELEMENT = 0xFFFFFFFF


def _lookup(table: dict, datatype: str):
    try:
        return table[datatype]
    except (KeyError, TypeError):
        raise invalid_arg(f"invalid datatype '{datatype}'") from None


def np_dtype(datatype: str) -> np.dtype:
    """The numpy storage dtype of a protocol datatype (INVALID_ARG if unknown)."""
    return _lookup(_NP, datatype)


def element_size(datatype: str) -> Optional[int]:
    """Bytes per element, or None for BYTES (INVALID_ARG if unknown)."""
    return _lookup(_SIZE, datatype)


def is_valid(datatype: str) -> bool:
    return datatype in _NP if isinstance(datatype, str) else False


def from_numpy(dtype) -> str:
    """The protocol datatype of a numpy dtype; object and bytes/str arrays are BYTES."""
    dt = np.dtype(dtype)
    if dt.kind in "OSU":
        return "BYTES"
    name = _BY_NUMPY.get(dt.newbyteorder("<") if dt.byteorder == ">" else dt)
    if name is None:
        raise invalid_arg(f"numpy dtype '{dt}' has no protocol datatype")
    return name


def config_to_protocol(config_type: str) -> str:
    """``"TYPE_FP32"`` -> ``"FP32"``; ``"TYPE_STRING"`` -> ``"BYTES"``."""
    return _lookup(_BY_CONFIG, config_type)


def protocol_to_config(datatype: str) -> str:
    """``"FP32"`` -> ``"TYPE_FP32"``; ``"BYTES"`` -> ``"TYPE_STRING"``."""
    return _lookup(DTYPES, datatype).config


def num_elements(shape: Sequence[int]) -> int:
    """Element count of a shape; a negative dimension is INVALID_ARG."""
    for d in shape:
        if d < 0:
            raise invalid_arg(f"shape {list(shape)} has a negative dimension")
    return math.prod(shape)


def byte_size(datatype: str, shape: Sequence[int]) -> Optional[int]:
    """Bytes of a fixed-size tensor, or None for BYTES (its size depends on the data)."""
    size = element_size(datatype)
    return None if size is None else size * num_elements(shape)


# ------------------------------------------------------------------ BYTES


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


def serialized_size(arr: np.ndarray) -> int:
    """Bytes that :func:`serialize_bytes` would produce for ``arr``."""
    els = _elements(arr)
    return 4 * len(els) + sum(map(len, els))


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
