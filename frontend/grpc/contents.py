"""Typed ``InferTensorContents`` -> raw little-endian bytes.

Clients that do not use ``raw_input_contents`` send values in the repeated
field matching the datatype (``fp32_contents`` for FP32, ``int_contents`` for
INT8/16/32, ...). Triton accepts exactly one field, whose type must match the
declared datatype, so FP16 and BF16 (no typed field) can only come raw.
Narrow integer types are truncated from their 32-bit carrier the way Triton
does (it copies the low bytes of each int32/uint32).
"""
from __future__ import annotations

import math
import struct

import numpy as np

from tritond.errors import invalid_arg, request_tag
from tritond.shm import dtypes

# field -> (the datatype Triton reports for it, {datatype: numpy storage dtype})
_FIELDS = (
    ("bool_contents", "BOOL", {"BOOL": np.dtype("?")}),
    ("int_contents", "INT32", {"INT8": np.dtype("i1"), "INT16": np.dtype("<i2"),
                               "INT32": np.dtype("<i4")}),
    ("int64_contents", "INT64", {"INT64": np.dtype("<i8")}),
    ("uint_contents", "UINT32", {"UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"),
                                 "UINT32": np.dtype("<u4")}),
    ("uint64_contents", "UINT64", {"UINT64": np.dtype("<u8")}),
    ("fp32_contents", "FP32", {"FP32": np.dtype("<f4")}),
    ("fp64_contents", "FP64", {"FP64": np.dtype("<f8")}),
    ("bytes_contents", "BYTES", {"BYTES": None}),
)
# The carrier dtype of each repeated field: numpy reads the proto values into
# it first, then narrows (wrapping like Triton's byte copy).
_CARRIER = {"int_contents": np.dtype("<i4"), "uint_contents": np.dtype("<u4")}
_LEN = struct.Struct("<I").pack
_VECTOR_MIN = 32


def to_bytes(tensor, model: str, request_id: str = "") -> bytes:
    """Raw bytes of one input tensor's typed ``contents``, checked against its shape.

    INVALID_ARG, with Triton's messages, when a field does not match the
    datatype, when two fields are set, or when the element count differs from
    the shape's (the core's check: its words start with the request's id).
    """
    contents = tensor.contents
    name, datatype = tensor.name, tensor.datatype
    data = None
    for field, field_type, targets in _FIELDS:
        values = getattr(contents, field)
        if not values:
            continue
        if data:
            raise invalid_arg(f"unexpected explicit tensor data for input tensor '{name}' for "
                              f"model '{model}', binary data was already supplied.")
        if datatype not in targets:
            raise invalid_arg(f"unexpected explicit tensor data for input tensor '{name}' for "
                              f"model '{model}' of type '{field_type}', expected datatype "
                              f"'{datatype}'")
        dtype = targets[datatype]
        data = _bytes(values) if dtype is None else _fixed(values, field, dtype)
        count = len(values)
    if data is None:
        return b""
    _check_count(tensor, model, count, len(data), request_id)
    return data


def _fixed(values, field: str, dtype: np.dtype) -> bytes:
    carrier = _CARRIER.get(field)
    if carrier is None:
        return np.array(values, dtype=dtype).tobytes()
    return np.array(values, dtype=carrier).astype(dtype).tobytes()


def _bytes(values) -> bytes:
    """BYTES elements serialised as a 4-byte little-endian length then the bytes (C loops
    only: a 10M-element tensor is sent this way too)."""
    if len(values) < _VECTOR_MIN:       # a loop costs less than the vector path's set-up
        return b"".join([p for v in values for p in (_LEN(len(v)), v)])
    return dtypes.pack_elements(list(values))[0]       # protobuf's elements are bytes


def _check_count(tensor, model: str, count: int, nbytes: int, request_id: str) -> None:
    shape = tensor.shape
    if any(d < 0 for d in shape):
        return  # the core reports the unspecified dimension itself
    expected = math.prod(shape)
    if count == expected:
        return
    tag = request_tag(request_id)
    if tensor.datatype == "BYTES":       # the core's words (validate._check_walk)
        if count > expected:
            raise invalid_arg(f"{tag}unexpected number of string elements {expected + 1} for "
                              f"inference input '{tensor.name}' for model '{model}', "
                              f"expecting {expected}")
        raise invalid_arg(f"{tag}expected {expected} string elements for inference input "
                          f"'{tensor.name}' for model '{model}', got {count}")
    size = nbytes // count
    raise invalid_arg(f"{tag}input byte size mismatch for input '{tensor.name}' for model "
                      f"'{model}'. Expected {expected * size}, got {nbytes}")
