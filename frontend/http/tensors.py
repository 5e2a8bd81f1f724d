"""JSON ``data`` <-> raw tensor bytes, with Triton's JSON typing rules.

Integers must be JSON integers (``1.0`` is rejected), BOOL must be true/false,
FP16/BF16 are refused in JSON both ways, BYTES elements are strings.
"""
from __future__ import annotations

import math
import struct
import sys
from array import array

import msgspec
import numpy as np

from tritond.errors import dims_str, internal, invalid_arg
from tritond.shm import dtypes, lengths

from .rawstring import json_array, json_array_of, json_string

_LEN = struct.Struct("<I")
_VECTOR_MIN = 32
_INTS = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
_INT_KINDS = frozenset({int})
_BOOL_KINDS = frozenset({bool})
_NUMBER_KINDS = frozenset({int, float})
_INT64_MAX = (1 << 63) - 1
# Triton's reader (TritonJson) names what it wanted in these words; ours add the value.
_UNSIGNED = "attempt to access JSON non-unsigned-integer as unsigned-integer"
_SIGNED = "attempt to access JSON non-signed-integer as signed-integer"
_BOOLEAN = "attempt to access JSON non-boolean as boolean"
_DOUBLE = "attempt to access JSON non-number as double"
_STRING = "attempt to access JSON non-string as string"
# Triton sizes a BYTES input's JSON data first (JsonBytesArrayByteSize, infer and generate):
# a non-string element fails there, with this text and no element named.
_NOT_STRING = f"Unable to parse JSON bytes array: {_STRING}"
_SHAPE_ERR = "Unable to parse 'data': Shape does not match true shape of 'data' field"
_SHORT_ERR = "Failed to parse 'data' field: shape does not match true shape"




def _codes(table: dict) -> dict:
    """Datatype -> ``array``/``memoryview`` format of the same little-endian layout, where
    this host has one: for small tensors they convert lists 2-4x faster than numpy."""
    if sys.byteorder != "little":
        return {}
    return {dt: code for dt, code in table.items()
            if array(code.replace("?", "B")).itemsize == dtypes.np_dtype(dt).itemsize}


_NUM = {"INT8": "b", "UINT8": "B", "INT16": "h", "UINT16": "H", "INT32": "i", "UINT32": "I",
        "INT64": "q", "UINT64": "Q", "FP32": "f", "FP64": "d"}
_TO_BYTES = _codes({**_NUM, "BOOL": "B"})
_TO_JSON = _codes({**_NUM, "BOOL": "?"})


MAX_NESTING = 100      # Triton's HTTP_MAX_JSON_NESTING_DEPTH
NESTING = f"JSON nesting depth exceeds maximum allowed limit ({MAX_NESTING})"


# Any JSON body nested deeper than this is refused with NESTING. Triton limits only
# ``data`` (MAX_NESTING, in ``flatten``) and leaves the rest to rapidjson's recursion; on
# Python 3.11 msgspec's recursion limit stopped such a body near 1000, from 3.12 it does
# not, so the bound is explicit and the same on every Python.
MAX_DOC_NESTING = 500


def too_deep(doc) -> bool:
    """Whether ``doc`` nests arrays and objects more than MAX_DOC_NESTING deep.

    Level by level, and a level's values are looked at by type in one C loop, so a
    flat ``data`` array costs one pass."""
    level = [doc] if type(doc) in (list, dict) else []
    for _ in range(MAX_DOC_NESTING):
        below = []
        for node in level:
            values = node.values() if type(node) is dict else node
            kinds = set(map(type, values))
            if list in kinds or dict in kinds:
                below.extend(v for v in values if type(v) is list or type(v) is dict)
        if not below:
            return False
        level = below
    return True


def flatten(data: list) -> list:
    """Row-major flattening of nested lists (ragged nesting is counted, like Triton)."""
    if not data or type(data[0]) is not list:
        if list not in set(map(type, data)):       # flat already (one C loop)
            return data
    out: list = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if type(x) is list:
                if len(stack) >= MAX_NESTING:
                    raise invalid_arg(NESTING)
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out


def json_to_bytes(name: str, datatype: str, shape: list[int], data) -> bytes:
    """Raw little-endian bytes (BYTES serialised) for one input's JSON ``data``."""
    if datatype in ("FP16", "BF16"):
        raise invalid_arg(f"receiving {datatype} data via JSON is not supported. Please use the "
                          f"binary data format for input {name}")
    if not dtypes.is_valid(datatype):
        raise invalid_arg(f"invalid datatype for input {name}")
    count = element_count(name, datatype, shape)
    if count == 0:
        return b""
    if type(data) is not list:
        raise invalid_arg("Unable to parse 'data'")
    flat = flatten(data)
    if len(flat) != count:         # Triton's two texts: it overran, or it fell short
        raise invalid_arg(_SHAPE_ERR if len(flat) > count else _SHORT_ERR)
    if datatype == "BYTES":
        return _strings(flat)
    # One C-level pass over the element types (bool is not int here: type() is exact).
    kinds = set(map(type, flat))
    if datatype in _INTS:
        if not kinds <= _INT_KINDS:
            _check_all(flat, lambda x: type(x) is int, "an integer",
                       _UNSIGNED if datatype[0] == "U" else _SIGNED)
    elif datatype == "BOOL":
        if not kinds <= _BOOL_KINDS:
            _check_all(flat, lambda x: type(x) is bool, "a boolean", _BOOLEAN)
    elif not kinds <= _NUMBER_KINDS:
        _check_all(flat, lambda x: type(x) is float or type(x) is int, "a number", _DOUBLE)
    code = _TO_BYTES.get(datatype)
    if code is not None:
        try:
            return array(code, flat).tobytes()
        except OverflowError:
            pass                 # out of range: numpy's message below names the type
    try:
        return np.array(flat, dtype=dtypes.np_dtype(datatype)).tobytes()
    except (OverflowError, ValueError) as e:
        raise invalid_arg(f"Unable to parse 'data': {e}") from None


def element_count(name: str, datatype: str, shape: list[int]) -> int:
    """The element count of a JSON input's shape, refused as Triton's GetElementCount and
    byte-size check refuse it (dims read as int64, dim by dim: a negative one, a count past
    INT64_MAX), and its byte size past INT64_MAX."""
    dims = [d - (1 << 64) if d > _INT64_MAX else d for d in shape]   # Triton's int64 view
    count = 1
    for d in dims:
        if d < 0:
            raise invalid_arg(f"invalid shape for input '{name}': shape {dims_str(dims)} contains "
                              f"one or more invalid dimensions")
        if d == 0:
            return 0
        if count > _INT64_MAX // d:
            raise invalid_arg(f"invalid shape for input '{name}': shape {dims_str(dims)} causes "
                              f"total element count to exceed maximum size of {_INT64_MAX}")
        count *= d
    size = 1 if datatype == "BYTES" else dtypes.np_dtype(datatype).itemsize
    if size > 1 and count > _INT64_MAX // size:
        raise invalid_arg(f"byte size overflow for input '{name}': element count ({count}) * "
                          f"data type size ({size}) exceeds maximum allowed size ({_INT64_MAX})")
    return count




def _check_all(flat: list, ok, what: str, reason: str) -> None:
    if not all(map(ok, flat)):
        bad = next(x for x in flat if not ok(x))
        raise invalid_arg(f"Unable to parse 'data': expected {what}, got {bad!r}: {reason}")


def _strings(flat: list) -> bytes:
    """JSON strings as serialised BYTES (UTF-8); many in C loops: ``str.encode`` refuses any
    element that is not a str, and then the loop below names it."""
    if len(flat) < _VECTOR_MIN:        # a loop costs less than the vector path's set-up
        pack = _LEN.pack
        parts = []
        for s in flat:
            if type(s) is not str:
                raise invalid_arg(_NOT_STRING)
            b = s.encode()
            parts.append(pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    try:
        items = list(map(str.encode, flat))
    except TypeError:
        for s in flat:
            if type(s) is not str:
                raise invalid_arg(_NOT_STRING) from None
        raise
    return dtypes.pack_elements(items)[0]


def bytes_to_json(name: str, datatype: str, shape: list[int], data,
                  table=None) -> list | msgspec.Raw:
    """A flat JSON list for one output (FP32 becomes doubles, BYTES strings; many BYTES
    elements without escapes, or 4,096 and more: the whole array as one ``msgspec.Raw``).
    ``table``: a BYTES output's length table from the worker (``shm.lengths``), a hint."""
    if datatype in ("FP16", "BF16"):
        raise invalid_arg(f"sending {datatype} data via JSON is not supported. Please use the "
                          "binary data format for output")
    count = math.prod(shape)
    if datatype == "BYTES":
        whole = _bytes_array(data, count, table)
        if whole is not None:
            return whole
        try:
            items = dtypes.deserialize_bytes(data, count, table)
        except Exception:  # noqa: BLE001 - a malformed worker output is a server error
            raise internal(f"output tensor shape does not match size of output for '{name}'")
        # Triton copies the bytes verbatim into the JSON string, UTF-8 or not.
        flat = items.tolist()
        whole = json_array(flat)         # one join, not a decode per element
        return whole if whole is not None else [json_string(b) for b in flat]
    dt = dtypes.np_dtype(datatype)
    if len(data) != count * dt.itemsize:
        raise internal(f"output tensor shape does not match size of output for '{name}'")
    code = _TO_JSON.get(datatype)
    values = None
    if code is not None:
        try:
            values = memoryview(data).cast("B").cast(code).tolist()
        except TypeError:
            pass                 # a view memoryview cannot recast: numpy reads it
    if values is None:
        values = np.frombuffer(data, dtype=dt).tolist()
    return float_values(values) if datatype in _FLOATS else values


def float_values(values: list) -> list | msgspec.Raw:
    """``values`` (floats) as a JSON array: itself, or with a NaN or an infinity the array
    written as Triton's JSON writer writes it (msgspec would write null)."""
    # A NaN or infinity makes the sum non-finite (one C pass).
    if not math.isfinite(sum(values)):
        return msgspec.Raw(b"[" + b",".join(map(_float_token, values)) + b"]")
    return values


_NUMPY_ARRAY_MIN = 4096


def _bytes_array(data, count: int, table) -> msgspec.Raw | None:
    """Many BYTES elements as one raw JSON array, made from the serialised bytes with numpy
    (``rawstring.json_array_of``: no ``bytes`` per element); None: the per-element path
    decides (below a few thousand elements it costs less: numpy's passes have fixed costs)."""
    if count < _NUMPY_ARRAY_MIN:
        return None
    if table is None:
        table = lengths.short_table(data, count)
    at = None if table is None else lengths.starts(data, count, table)
    return None if at is None else json_array_of(data, at)


def float_value(x: float) -> float | msgspec.Raw:
    """One double as Triton's JSON writer writes it."""
    return x if math.isfinite(x) else msgspec.Raw(_float_token(x))


_FLOATS = frozenset({"FP32", "FP64"})
_encode = msgspec.json.encode
_NON_FINITE = {math.inf: b"Infinity", -math.inf: b"-Infinity"}


def _float_token(x: float) -> bytes:
    """Triton's JSON writer's token (rapidjson kWriteNanAndInfFlag) for one double."""
    if x != x:
        return b"NaN"
    return _NON_FINITE.get(x) or _encode(x)
