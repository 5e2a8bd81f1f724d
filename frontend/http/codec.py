"""HTTP/REST infer body <-> ``types.InferRequest`` / ``types.InferResult``.

Binary inputs are carved as zero-copy memoryview slices of the body (the core
makes the one copy into shm); binary outputs are returned as the shm views
themselves so the route can write them without joining them into one buffer.
"""
from __future__ import annotations

import json
import re

import msgspec

from tritond import tritonjson
from tritond.errors import invalid_arg

from . import fastdecode
from ..params import json_reason
from ..types import InferRequest, InferResult, InputTensor, RequestedOutput, ShmRef
from .tensors import NESTING, bytes_to_json, json_to_bytes, too_deep

_decode = msgspec.json.decode
encode_json = tritonjson.encode       # Triton's spelling: \u001F, not msgspec's \u001f
_UINT64_MAX = (1 << 64) - 1
_NO_HEADER = ("must specify valid 'Infer-Header-Content-Length' in request header and "
              "'binary_data_size' when passing inputs in binary data format")


def parse_json(data) -> object:
    """Decode JSON with a Triton-like INVALID_ARG on failure."""
    try:
        doc = _decode(data)
    except msgspec.DecodeError as e:
        # Triton's parser takes NaN and infinities (rapidjson kParseNanAndInfFlag);
        # msgspec does not, Python's json does: the rare body holding them goes there.
        raw = bytes(data)                # a failed parse only: the copy is no cost
        if b"NaN" in raw or b"Infinity" in raw:
            try:
                return json.loads(raw)
            except (ValueError, RecursionError):
                pass
        raise invalid_arg(f"failed to parse the request JSON buffer: {e}") from None
    except RecursionError:           # nested deeper than the decoder recurses: a client error
        raise invalid_arg(NESTING) from None
    if too_deep(doc):
        raise invalid_arg(NESTING)
    return doc


_STOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def header_length(value: str | None, body_len: int) -> int | None:
    """The ``Inference-Header-Content-Length`` value, checked against the body size and
    read as Triton's ``std::stoi`` reads it: leading blanks and a sign, then the digits
    up to the first other character (" 5" is 5, "1.5" is 1); no digits is unparsable.
    Without the header an empty body is a raw request (Triton's header length defaults
    to the body's, and 0 means raw)."""
    if value is None:
        return 0 if body_len == 0 else None
    m = _STOI.match(value)
    if m is None:
        raise invalid_arg(f"Unable to parse Inference-Header-Content-Length, got: {value}")
    n = int(m.group(1))
    if not -(1 << 31) <= n < 1 << 31:
        raise invalid_arg("Unable to parse Inference-Header-Content-Length, value is out of range "
                          f"[ {-(1 << 31)}, {(1 << 31) - 1} ], got: {value}")
    if n < 0 or n > body_len:
        raise invalid_arg(f"inference header size should be in range (0, {body_len}), got: {value}")
    return n


def decode_request(body: bytes, hlen: int | None, model: str, version: str
                   ) -> tuple[InferRequest, bool]:
    """(request, binary_data_output default) from an infer body with a JSON header
    (raw binary requests, ``hlen == 0``, are decoded by ``raw.decode_raw``)."""
    usual = fastdecode.decode(body, hlen, model, version)
    if usual is not None:
        return usual
    view = memoryview(body)
    doc = parse_json(view if hlen is None else view[:hlen])
    if type(doc) is not dict:
        raise invalid_arg("failed to parse the request JSON buffer: not a JSON object")
    req = InferRequest(model, version)
    rid = doc.get("id")
    if rid is not None:
        if type(rid) is not str:
            raise invalid_arg(f"Unable to parse 'id': {json_reason(str)}")
        req.id = rid
    default_binary = False
    params = doc.get("parameters")
    if params is not None:
        default_binary = _request_params(params)
        req.parameters = params
    pos = len(body) if hlen is None else hlen
    pos = _inputs(req, doc.get("inputs"), view, pos, hlen is not None)
    if pos != len(body):
        raise invalid_arg(f"unexpected additional input data for model '{model}'")
    outputs = doc.get("outputs")
    if outputs is not None:
        req.outputs = _outputs(outputs, default_binary)
    return req, default_binary


def _request_params(params) -> bool:
    if type(params) is not dict:
        raise invalid_arg("failed to get request params.: attempt to get members for non-object")
    for key in params:
        if key.startswith("triton_"):
            raise invalid_arg("parameter keys starting with 'triton_' are reserved for Triton "
                              "usage and should not be specified.")
    bdo = params.get("binary_data_output", False)
    if type(bdo) is not bool:
        raise invalid_arg(f"Unable to parse 'binary_data_output': {json_reason(bool)}")
    return bdo


def _inputs(req: InferRequest, items, view: memoryview, pos: int, has_header: bool) -> int:
    if type(items) is not list:
        why = json_reason(list, "inputs" if items is None else "")
        raise invalid_arg(f"Unable to parse 'inputs': {why}")
    end = len(view)
    for item in items:
        if type(item) is not dict:
            raise invalid_arg("Unable to parse 'inputs'")
        name, datatype, shape = _field(item, "name", str), _field(item, "datatype", str), \
            _shape(item)
        params = item.get("parameters") or {}
        if type(params) is not dict:
            raise invalid_arg("Unable to parse 'parameters'")
        if params or "data" not in item:      # plain JSON data needs no content-type check
            _content_type(item, params)
        t = InputTensor(name, datatype, shape, parameters=params)
        if not params:
            t.data = json_to_bytes(name, datatype, shape, item["data"])
        elif "binary_data_size" in params:
            size = params["binary_data_size"]
            if type(size) is not int or size < 0:
                raise invalid_arg("Unable to parse 'binary_data_size'")
            if size and not has_header:
                raise invalid_arg(_NO_HEADER)
            if size > end - pos:
                raise invalid_arg(f"unexpected size for input '{name}', expecting "
                                  f"{size - (end - pos)} additional bytes for model '{req.model}'")
            t.data = view[pos:pos + size]
            pos += size
        elif "shared_memory_region" in params:
            t.shm = shm_ref(params)
        else:
            t.data = json_to_bytes(name, datatype, shape, item["data"])
        req.inputs.append(t)
    return pos


def _field(item: dict, key: str, kind):
    value = item.get(key)
    if type(value) is not kind:
        why = json_reason(kind, "" if key in item else key)
        raise invalid_arg(f"Unable to parse '{key}': {why}")
    return value


def _shape(item: dict) -> list[int]:
    """Triton's text (TritonJson's reason appended); its code is TritonJson's INTERNAL (500),
    ours INVALID_ARG: a client's malformed shape is no server fault (docs/compatibility.md)."""
    shape = item.get("shape")
    if type(shape) is list and all(type(d) is int and 0 <= d <= _UINT64_MAX for d in shape):
        return shape
    if "shape" not in item:
        why = "attempt to access non-existing object member 'shape'"
    elif type(shape) is not list:
        why = "attempt to access JSON non-array as array"
    else:
        why = "attempt to access JSON non-unsigned-integer as unsigned-integer"
    raise invalid_arg(f"Unable to parse 'shape': {why}")


def _content_type(item: dict, params: dict) -> None:
    has = [k for k, present in (("data", "data" in item),
                                ("binary_data_size", "binary_data_size" in params),
                                ("shared_memory_region", "shared_memory_region" in params))
           if present]
    if len(has) != 1:
        detail = " no field is set" if not has else " set" + "".join(f" '{k}'" for k in has)
        raise invalid_arg("Input must set only one of the following fields: 'data', "
                          "'binary_data_size' in 'parameters', 'shared_memory_region' in "
                          "'parameters'. But" + detail)


def shm_ref(params: dict) -> ShmRef:
    region = params.get("shared_memory_region")
    size = params.get("shared_memory_byte_size")
    offset = params.get("shared_memory_offset", 0)
    if type(region) is not str:
        raise invalid_arg("Unable to parse 'shared_memory_region'")
    if type(size) is not int or size < 0:
        raise invalid_arg("Unable to parse 'shared_memory_byte_size'")
    if type(offset) is not int or offset < 0:
        raise invalid_arg("Unable to parse 'shared_memory_offset'")
    return ShmRef(region, offset, size)


def _outputs(items, default_binary: bool) -> list[RequestedOutput]:
    if type(items) is not list:
        raise invalid_arg(f"Unable to parse 'outputs': {json_reason(list)}")
    outs = []
    for item in items:
        if type(item) is not dict:
            raise invalid_arg("Unable to parse 'outputs'")
        name = _field(item, "name", str)
        params = item.get("parameters") or {}
        if type(params) is not dict:
            raise invalid_arg("Unable to parse 'parameters'")
        out = RequestedOutput(name, default_binary, parameters=params)
        if "binary_data" in params:
            if type(params["binary_data"]) is not bool:
                raise invalid_arg(f"Unable to parse 'binary_data': {json_reason(bool)}")
            out.binary = params["binary_data"]
        if "classification" in params:
            k = params["classification"]
            if type(k) is not int or k < 0:
                raise invalid_arg(f"Unable to set 'classification': {json_reason('uint')}")
            out.classification = k
        if "shared_memory_region" in params:
            if out.classification:
                raise invalid_arg("Output can't set both 'shared_memory_region' and "
                                  "'classification'")
            if params.get("binary_data") is True:
                raise invalid_arg("Output can't set both 'shared_memory_region' and "
                                  "'binary_data'")
            out.shm = shm_ref(params)
            out.binary = False
        outs.append(out)
    return outs


def encode_result(result: InferResult, default_binary: bool) -> tuple[bytes, list]:
    """(JSON header bytes, binary blobs in output order); no blobs means a plain JSON body."""
    outs = []
    blobs = []
    for out in result.outputs:
        entry = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        req = out.requested
        if out.data is None or (req is not None and req.shm is not None):
            pass                                      # lives in client shm: metadata only
        elif req.binary if req is not None else default_binary:
            entry["parameters"] = {"binary_data_size": len(out.data)}
            blobs.append(out.data)            # a 0-byte blob still makes the body binary
        else:
            entry["data"] = bytes_to_json(out.name, out.datatype, out.shape, out.data,
                                          out.lengths)
        outs.append(entry)
    doc = {}
    if result.id:
        doc["id"] = result.id
    doc["model_name"] = result.model_name
    doc["model_version"] = result.model_version
    if result.parameters:
        doc["parameters"] = result.parameters
    doc["outputs"] = outs
    return encode_json(doc), blobs
