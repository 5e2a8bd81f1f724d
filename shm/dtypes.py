"""Protocol datatypes: strings <-> numpy dtypes <-> config enums (BYTES (de)serialisation:
``bytesencoding.py``, ``bytesdecoding.py``, re-exported here).

Every fixed-size type is stored little-endian, row-major, unpadded (as the
KServe v2 protocol says), so the numpy dtypes below carry an explicit ``<``. BF16 has no numpy
type: it is stored and viewed as raw ``<u2`` words. BYTES tensors are always
kept serialised: per element a 4-byte little-endian length, then the bytes.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

from tritond.errors import invalid_arg

# BYTES (de)serialisation lives beside, re-exported here: ``dtypes.serialize_bytes`` etc.
from .bytesdecoding import deserialize_bytes, uniform_elements  # noqa: F401
from .bytesencoding import (_VECTOR_MIN, pack_elements, serialize_bytes,  # noqa: F401
                            serialize_bytes_table, serialized_size)


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
