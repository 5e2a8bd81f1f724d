"""The common infer request body decoded by msgspec's typed decoder (issue 15).

``codec.decode_request`` walks the JSON document as dicts: a ``get`` and a type
check per field in Python, then each input's ``data`` flattened and its element
types collected before they are packed. For the usual body (inputs with flat
JSON ``data`` of a numeric or BOOL type, or ``binary_data_size``; outputs with at
most ``binary_data``) msgspec's C decoder checks all of that against the
structs below. A body whose ``data`` arrays hold only numbers is decoded in one
pass (``_NUMBERS``: each array a list of ints and floats, packed by ``struct``,
which checks each element's type and range); any other (BOOL's true/false) is
decoded again with each ``data`` left raw, then decoded into a list of the
tensor's element type.

Anything else (BYTES, nested ``data``, shared memory, classification, a field of
the wrong type, a bad value) is not this module's: ``decode`` answers None and
the dict walk decodes the body again, so every error keeps its one wording.
"""
from __future__ import annotations

import math
import struct
from array import array
from functools import lru_cache
from typing import Annotated, Optional, Union

import msgspec
from msgspec import UNSET, UnsetType

from ..types import InferRequest, InputTensor, RequestedOutput
from .tensors import _TO_BYTES

_Dim = Annotated[int, msgspec.Meta(ge=0)]
_NO_DATA = msgspec.Raw()


class _Input(msgspec.Struct):
    name: str
    datatype: str
    shape: list[_Dim]
    data: msgspec.Raw = _NO_DATA
    parameters: Optional[dict] = None


class _NumberInput(msgspec.Struct):
    name: str
    datatype: str
    shape: list[_Dim]
    # int | float keeps what the JSON wrote (1 vs 1.0): struct refuses a float for an
    # integer type, as the dict walk does. UNSET: no data (null is not a list: declined).
    data: Union[list[Union[int, float]], UnsetType] = UNSET
    parameters: Optional[dict] = None


class _Output(msgspec.Struct):
    name: str
    parameters: Optional[dict] = None


class _Request(msgspec.Struct):
    inputs: list[_Input]
    id: Optional[str] = None
    parameters: Optional[dict] = None
    outputs: Optional[list[_Output]] = None


class _NumberRequest(msgspec.Struct):
    inputs: list[_NumberInput]
    id: Optional[str] = None
    parameters: Optional[dict] = None
    outputs: Optional[list[_Output]] = None


_REQUEST = msgspec.json.Decoder(_Request)
_NUMBERS = msgspec.json.Decoder(_NumberRequest)
_PACK_MAX = 1 << 16     # elements: a bigger tensor is converted by ``array`` (no huge arg tuple)
_ELEMENTS = {bool: msgspec.json.Decoder(list[bool]), int: msgspec.json.Decoder(list[int]),
             float: msgspec.json.Decoder(list[float])}
# datatype -> (decoder of its flat data, array code); JSON integers only for integer
# types and true/false only for BOOL, as tensors.json_to_bytes requires.
_DATA = {dt: (_ELEMENTS[bool if dt == "BOOL" else float if dt.startswith("FP") else int], code)
         for dt, code in _TO_BYTES.items()}


def decode(body, hlen: Optional[int], model: str, version: str
           ) -> Optional[tuple[InferRequest, bool]]:
    """``codec.decode_request``'s answer for a usual body; None: not one (see above)."""
    view = memoryview(body)
    head = view if hlen is None else view[:hlen]
    try:
        doc = _NUMBERS.decode(head)
    except msgspec.ValidationError:
        try:
            doc = _REQUEST.decode(head)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None
    except (msgspec.DecodeError, RecursionError):
        return None             # (too deep: the dict walk's nesting error, a 400)
    req = InferRequest(model, version)
    if doc.id is not None:
        req.id = doc.id
    default_binary = False
    params = doc.parameters
    if params is not None:
        if any(key.startswith("triton_") for key in params):
            return None
        if any(type(v) is list or type(v) is dict for v in params.values()):
            return None         # nested: the dict walk checks its depth
        default_binary = params.get("binary_data_output", False)
        if type(default_binary) is not bool:
            return None
        req.parameters = params
    pos = len(body) if hlen is None else hlen
    inputs = req.inputs
    for item in doc.inputs:
        params = item.parameters
        raw = item.data
        if raw is _NO_DATA:      # the raw pass's "no data" (the numbers pass's is UNSET)
            raw = UNSET
        if not params:
            data = _data(item.datatype, item.shape, raw) if raw is not UNSET else None
            if data is None:
                return None
            inputs.append(InputTensor(item.name, item.datatype, item.shape, data, None, {}))
            continue
        size = params.get("binary_data_size")
        if raw is not UNSET or len(params) != 1 or type(size) is not int or size < 0 \
                or hlen is None or size > len(body) - pos:
            return None
        inputs.append(InputTensor(item.name, item.datatype, item.shape, view[pos:pos + size],
                                  None, params))
        pos += size
    if pos != len(body):
        return None
    if doc.outputs is not None:
        outs = req.outputs = []
        for item in doc.outputs:
            params = item.parameters
            if not params:
                outs.append(RequestedOutput(item.name, default_binary, 0, None, {}))
                continue
            binary = params.get("binary_data")
            if len(params) != 1 or type(binary) is not bool:
                return None
            outs.append(RequestedOutput(item.name, binary, 0, None, params))
    return req, default_binary


def _data(datatype: str, shape: list, data) -> Optional[bytes]:
    """A flat JSON array of ``datatype``'s elements (decoded numbers, or raw) as raw
    bytes; None: any other case."""
    how = _DATA.get(datatype)
    if how is None:
        return None
    decoder, code = how
    if type(data) is list:
        if datatype == "BOOL":    # a number is not true/false
            return None
        flat = data
    else:
        try:
            flat = decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None
    count = math.prod(shape)
    if count == 0 or len(flat) != count:
        return None
    if count <= _PACK_MAX:
        try:
            return _packer(code, count)(*flat)
        except struct.error:     # a float for an integer type, an integer out of range
            return None
        except OverflowError:    # beyond FP32's range: array stores inf, as it always did
            pass
    try:
        return array(code, flat).tobytes()
    except (OverflowError, TypeError):
        return None


@lru_cache(maxsize=64)
def _packer(code: str, count: int):
    """``struct``'s packer of ``count`` little-endian ``code`` elements (``tensors._TO_BYTES``'s
    codes; with ``<`` struct uses the standard sizes, each the tensor type's)."""
    return struct.Struct(f"<{count}{code}").pack
