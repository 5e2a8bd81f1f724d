"""ModelInfer and ModelStreamInfer as raw bytes: tensor payloads go around protobuf.

The server hands a raw-bytes handler the message as one ``bytes``. Parsing it
with protobuf copies each ``raw_input_contents`` entry twice more (into the
upb arena, then into a new ``bytes`` on access); serialising a response
copies each output three times (``bytes(view)``, into the message, into the
serialised string). Instead:

- requests: the top-level fields are walked once; field 7
  (``raw_input_contents``) entries become memoryview slices of the message
  (the core copies each once, into shm), the remaining fields, which are
  small, are parsed by protobuf;
- responses: everything but field 6 (``raw_output_contents``) is serialised
  by protobuf and the field-6 entries are appended by hand straight from the
  shared-memory views, in one ``join`` (the only copy). ``ModelStreamInfer``
  requests are split the same way, and its responses are the same bytes
  behind a field-2 header (``encode_stream``): one encoder for both RPCs. A
  response over gRPC's 2 GiB limit is refused as Triton refuses it (INVALID_ARG,
  its words) before any bytes are joined.

Protobuf accepts fields in any order and repeated fields split anywhere, so
both are the same messages a protobuf round trip would give. Small messages
take the plain protobuf path: below ``SPLIT_MIN`` the walk costs more than
the copies it saves.
"""
from __future__ import annotations

from tritond.errors import invalid_arg
from tritond.protos import grpc_service_pb2 as pb

from . import codec, params

SPLIT_MIN = 64 << 10
MAX_MESSAGE = 2**31 - 1           # INT32_MAX: gRPC's limit, Triton's MAX_GRPC_MESSAGE_SIZE
_RAW_INPUT = 7                    # ModelInferRequest.raw_input_contents
_RAW_OUTPUT_TAG = b"\x32"         # ModelInferResponse.raw_output_contents: (6 << 3) | 2
_INFER_RESPONSE_TAG = b"\x12"     # ModelStreamInferResponse.infer_response: (2 << 3) | 2
_Request = pb.ModelInferRequest
_Response = pb.ModelInferResponse
_StreamResponse = pb.ModelStreamInferResponse


def varint(n: int) -> bytes:
    """``n`` (non-negative) as a protobuf base-128 varint."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def parse_request(data: bytes) -> tuple[pb.ModelInferRequest, list]:
    """(message without its raw entries, raw entries as memoryviews of ``data``).

    Raises ``ValueError`` (or protobuf's DecodeError) on a malformed message.
    """
    if len(data) < SPLIT_MIN:
        msg = _Request.FromString(data)
        return msg, msg.raw_input_contents
    view = memoryview(data)
    rest = bytearray()
    raw = []
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        key, pos = _read_varint(data, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = _read_varint(data, pos)
            if key >> 3 == _RAW_INPUT:
                if pos + n > end:
                    raise ValueError("truncated raw_input_contents")
                raw.append(view[pos:pos + n])
                pos += n
                continue
            pos += n
        else:
            raise ValueError(f"unexpected wire type {wire}")
        if pos > end:
            raise ValueError("truncated message")
        rest += view[start:pos]
    return _Request.FromString(bytes(rest)), raw


def decode(data: bytes):
    """The :class:`InferRequest` in a serialised ModelInferRequest (codec's rules)."""
    msg, raw = parse_request(data)
    return codec.decode_request(msg, raw)


def _parts(result, final=None) -> tuple[list, int]:
    """([room for a prefix, serialised head, field-6 entries...], byte count of the message).

    ``final`` set: the ``triton_final_response`` parameter of a stream response.
    """
    outputs = result.outputs
    head = _Response(model_name=result.model_name, model_version=result.model_version,
                     id=result.id)
    add = head.outputs.add
    for o in outputs:
        add(name=o.name, datatype=o.datatype, shape=o.shape)
    if result.parameters:
        params.fill(result.parameters, head.parameters)
    if final is not None:
        head.parameters["triton_final_response"].bool_param = final
    first = head.SerializeToString()
    parts = [b"", first]
    size = len(first)
    for o in outputs:
        data = o.data
        if data is None:
            parts.append(b"\x32\x00")
            size += 2
            continue
        n = data.nbytes if type(data) is memoryview else len(data)
        tag = _RAW_OUTPUT_TAG + varint(n)
        parts.append(tag)
        parts.append(data)
        size += len(tag) + n
    if size > MAX_MESSAGE:       # checked before the join: never build what cannot be sent
        raise invalid_arg(f"Response has byte size {size} which exceeds gRPC's byte size "
                          f"limit {MAX_MESSAGE}.")
    return parts, size


def encode(result) -> bytes:
    """The serialised ModelInferResponse for ``result``; the caller then releases it."""
    return b"".join(_parts(result)[0])


def encode_stream(result) -> bytes:
    """The serialised ModelStreamInferResponse for ``result``: field 2
    (``infer_response``) holding :func:`encode`'s bytes plus the
    ``triton_final_response`` parameter, in the same single join."""
    parts, size = _parts(result, result.final)
    parts[0] = _INFER_RESPONSE_TAG + varint(size)
    return b"".join(parts)


def encode_stream_error(message: str, request_id: str, model_name: str = "",
                        model_version: str = "", final: bool | None = None) -> bytes:
    """An in-stream error: ``error_message`` plus an infer_response holding the id (a
    request that failed before it ran) or, for a model's failed response, Triton's
    id, model name and version *of the request* and ``triton_final_response``."""
    head = _Response(id=request_id, model_name=model_name, model_version=model_version)
    if final is not None:
        head.parameters["triton_final_response"].bool_param = final
    return _StreamResponse(error_message=message, infer_response=head).SerializeToString()
