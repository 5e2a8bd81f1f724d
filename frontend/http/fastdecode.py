"""The common infer request body decoded by msgspec's typed decoder (issue 15).

``codec.decode_request`` walks the JSON document as dicts: a ``get`` and a type
check per field in Python, then each input's ``data`` flattened and its element
types collected before they are packed. For the usual body (inputs with flat
JSON ``data`` of a numeric or BOOL type, or ``binary_data_size``; outputs with at
most ``binary_data``) msgspec's C decoder checks all of that against the
structs below, and each ``data`` array is decoded straight into a list of the
tensor's element type.

Anything else (BYTES, nested ``data``, shared memory, classification, a field of
the wrong type, a bad value) is not this module's: ``decode`` answers None and
the dict walk decodes the body again, so every error keeps its one wording.
"""
from __future__ import annotations

import math
from array import array
from typing import Annotated, Optional

import msgspec

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


class _Output(msgspec.Struct):
    name: str
    parameters: Optional[dict] = None


class _Request(msgspec.Struct):
    inputs: list[_Input]
    id: Optional[str] = None
    parameters: Optional[dict] = None
    outputs: Optional[list[_Output]] = None


_REQUEST = msgspec.json.Decoder(_Request)
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
    try:
        doc = _REQUEST.decode(view if hlen is None else view[:hlen])
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None             # (too deep: the dict walk's nesting error, a 400)
    req = InferRequest(model, version)
    if doc.id is not None:
        req.id = doc.id
    default_binary = False
    params = doc.parameters
    if params is not None:
        if any(key.startswith("triton_") for key in params):
            return None
        default_binary = params.get("binary_data_output", False)
        if type(default_binary) is not bool:
            return None
        req.parameters = params
    pos = len(body) if hlen is None else hlen
    inputs = req.inputs
    for item in doc.inputs:
        params = item.parameters
        raw = item.data
        if not params:
            data = _data(item.datatype, item.shape, raw) if raw else None
            if data is None:
                return None
            inputs.append(InputTensor(item.name, item.datatype, item.shape, data, None, {}))
            continue
        size = params.get("binary_data_size")
        if raw or len(params) != 1 or type(size) is not int or size < 0 \
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


def _data(datatype: str, shape: list, raw) -> Optional[bytes]:
    """A flat JSON array of ``datatype``'s elements as raw bytes; None: any other case."""
    how = _DATA.get(datatype)
    if how is None:
        return None
    decoder, code = how
    try:
        flat = decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    count = math.prod(shape)
    if count == 0 or len(flat) != count:
        return None
    try:
        return array(code, flat).tobytes()
    except OverflowError:
        return None
