"""Triton's generate extension: ``/generate`` (one JSON response) and
``/generate_stream`` (Server-Sent Events, one ``data:`` event per response).

The mapping is Triton's (server docs/protocol/extension_generate.md and
src/http_server.cc): each top-level key of the request object, and each key
of its ``parameters`` object, that names a model input becomes that tensor
(a scalar or a 1-D array, shaped by the input's metadata: fixed dims divide
the element count, the innermost wildcard takes the rest, other wildcards
are 1); every other key is a request parameter. A response is an object
with ``model_name``, ``model_version``, ``id`` when set, the response
parameters and one key per output (one element: the value; more: a flat
array; BYTES as text). Errors are ``{"error": msg}``: a request refused before
it runs, plain JSON with its HTTP status; a failed response, an SSE event (the
first response, failed or not, sets the stream's status).

Plain Starlette ``StreamingResponse`` (no sse-starlette dependency: its
keep-alive pings and task per stream cost more than the few lines here). A
client that disconnects cancels the request (Starlette cancels the body
iterator; ``FrontendCore.infer_stream`` then cancels the request).
"""
from __future__ import annotations

import json
from contextlib import aclosing

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tritond.errors import TritonError, http_status, invalid_arg, request_tag

from .. import tracepoints
from ..results import ResponseError
from ..types import InferRequest, InputTensor
from .codec import encode_json, parse_json
from .rawstring import json_string
from .responses import error_response, json_response
from .routes import _core, _model, read_body
from .tensors import float_value, float_values, json_to_bytes

ONE = ("generate expects model to produce exactly 1 response, use generate stream for "
       "model that generates various number of responses")
SSE = "text/event-stream; charset=utf-8"
_FLOATS = frozenset({"FP32", "FP64"})


async def generate(request: Request):
    return await _serve(request, streaming=False)


async def generate_stream(request: Request):
    return await _serve(request, streaming=True)


async def _serve(request: Request, streaming: bool):
    core = _core(request)
    model, version = _model(request)
    trace = tracepoints.start(core, request, model)     # traced: frontend/tracepoints.py
    if request.headers.get("content-encoding", "identity") != "identity":
        raise invalid_arg("Unsupported content-encoding, only 'identity' is supported.")
    body = await read_body(request, core.options.http_max_input_size)
    if trace is not None:
        trace.stamp("HTTP_RECV_END")
    doc = parse_json(body) if body.strip() else {}
    if not isinstance(doc, dict):
        raise invalid_arg("attempt to get members for non-object")   # TritonJson's Members()
    mv = core.models.resolve(model, version)
    _no_repeated_input(body, mv, doc)
    req = to_request(doc, mv, model, version)
    req.trace = trace
    results = core.infer_stream(req, mv)
    if trace is not None:
        results = tracepoints.results(results, trace)
    # The first response decides the status (Triton). A request refused before it ran
    # (the frontend's checks, the scheduler's refusals: Triton's ServerInferAsync failing)
    # is a plain JSON error; a failed response of one that was accepted starts the stream.
    try:
        first = await _next(results)
    except ResponseError as exc:
        await results.aclose()
        if not streaming:
            raise
        return Response(_error_event(exc), http_status(exc.code), media_type=SSE)
    except BaseException:
        await results.aclose()
        raise
    status = 200
    if first is not None and first.error is not None:       # one failed response of many
        status = http_status(first.error.code)              # the stream goes on (Triton)
    if not streaming:
        response = await _one(results, first, status)
        return response if trace is None else tracepoints.SentResponse(response, trace,
                                                                       core.tracer)
    body = _events(results, first)
    if trace is not None:
        body = tracepoints.events(body, trace, core.tracer)
    return StreamingResponse(body, status, media_type=SSE)


async def _next(results):
    """The next result worth sending (bare final flags are skipped), or None at the end."""
    async for result in results:
        if result.empty:
            result.release()
            continue
        return result
    return None


async def _one(results, first, status: int):
    """Exactly one response (a failed one too: its error object); else Triton's error
    object. Either way with the status the first response (or the bare final flag) set:
    Triton's SendChunkResponse counts every response, failed ones included, only once
    the final flag came, after StartResponse sent the first one's status."""
    async with aclosing(results):
        if first is None:
            return json_response({"error": ONE})
        try:
            doc = {"error": first.error.message} if first.error is not None else to_json(first)
        finally:
            first.release()
        try:
            extra = await _next(results)
        except TritonError:         # a failed second response is a second response too
            return json_response({"error": ONE}, status)
        if extra is not None:
            extra.release()
            return json_response({"error": ONE}, status)
    return json_response(doc, status)


async def _events(results, first):
    async with aclosing(results):
        result = first
        while result is not None:
            yield _event(result)
            try:
                result = await _next(results)
            except TritonError as exc:      # a failed final response: its event ends the stream
                yield _error_event(exc)
                return


def _error_event(exc: TritonError) -> bytes:
    return b"data: " + encode_json({"error": exc.message}) + b"\n\n"


def _event(result) -> bytes:
    try:
        doc = {"error": result.error.message} if result.error is not None else to_json(result)
    finally:
        result.release()
    return b"data: " + encode_json(doc) + b"\n\n"


# ------------------------------------------------------------ mapping


def to_request(doc: dict, mv, model: str, version: str) -> InferRequest:
    """The InferRequest of a generate request object (Triton's mapping)."""
    req = InferRequest(model, version)
    params = {}
    _map(doc, mv, req, params, top=True)
    if isinstance(doc.get("id"), str) and "id" not in mv.inputs:
        req.id = doc["id"]          # the extension's documented echo of "id"
    req.parameters = params
    return req


def _no_repeated_input(body, mv, doc: dict) -> None:
    """Triton reads the request object member by member, so a key written twice that names
    an input adds it twice: "input 'X' already exists in request" for the first repeat.
    A dict keeps one of them, so the body is read again keeping every pair (``json``'s
    object hook, called for the top-level object last; ``parse_json`` already refused a
    malformed or too deep body)."""
    repeats: list = []

    def pairs(items: list) -> dict:
        seen: set = set()
        first = None
        for key, _ in items:
            if first is None and key in seen and key in mv.inputs:
                first = key
            seen.add(key)
        repeats.append(first)
        return dict(items)

    json.loads(bytes(body), object_pairs_hook=pairs)
    if repeats and repeats[-1] is not None:
        rid = doc.get("id") if isinstance(doc.get("id"), str) and "id" not in mv.inputs else ""
        raise invalid_arg(f"{request_tag(rid)}input '{repeats[-1]}' already exists in request")


def _map(doc: dict, mv, req: InferRequest, params: dict, top: bool) -> None:
    for key, value in doc.items():
        if top and key == "parameters":
            if key in mv.inputs:
                raise invalid_arg("Keyword 'parameters' for nested schema also given as input "
                                  "tensor name")
            if not isinstance(value, dict):
                raise invalid_arg("Expected JSON object for keyword: 'parameters': attempt "
                                  "to access JSON non-object as object")   # TritonJson's
            try:
                _map(value, mv, req, params, top=False)
            except TritonError as exc:      # Triton's RETURN_MSG_IF_ERR on the nested object
                raise TritonError(exc.code, f"Converting keyword: 'parameters': "
                                            f"{exc.message}") from None
        elif key in mv.inputs:
            req.inputs.append(_tensor(key, value, mv))
        elif isinstance(value, (str, bool, int, float)):
            params[key] = value
        else:
            raise invalid_arg(f"parameter '{key}' has invalid type. It should be either "
                              "'int', 'bool', or 'string'.")


def _tensor(name: str, value, mv) -> InputTensor:
    spec = mv.inputs[name]
    values = value if isinstance(value, list) else [value]
    shape = _shape(name, len(values), spec.metadata(mv.max_batch_size > 0)["shape"])
    dtype = spec.datatype
    # Triton reads a generate input with ReadDataFromJson: infer's JSON data rules.
    return InputTensor(name, dtype, shape, json_to_bytes(name, dtype, shape, values))


def _shape(name: str, count: int, shape: list) -> list:
    shape = list(shape)
    for d in shape:
        if d != -1:
            if d == 0 or count % d:
                raise invalid_arg(f"The schema can not convert input '{name}' to tensor "
                                  "with proper shape")
            count //= d
    for i in range(len(shape) - 1, -1, -1):
        if shape[i] == -1:
            shape[i], count = count, 1
    if count != 1:
        raise invalid_arg(f"The schema can not convert input '{name}' to tensor with "
                          "proper shape")
    return shape


def to_json(result) -> dict:
    """A generate response object (Triton's ConvertGenerateResponse): a std::map there, so
    the keys come in byte order and of two equal keys the first added stays (``id``,
    ``model_name``, ``model_version``, then parameters, then outputs); FP32/FP64 values
    as Triton's JSON writer writes them (NaN, Infinity, -Infinity)."""
    doc = {}
    if result.id:
        doc["id"] = result.id
    doc["model_name"] = result.model_name
    doc["model_version"] = result.model_version
    for key, value in result.parameters.items():
        if key != "triton_final_response":
            doc.setdefault(key, value)
    for out in result.outputs:
        if out.data is None or out.name in doc:
            continue
        arr = out.as_numpy().reshape(-1)
        if out.datatype == "BYTES":
            items = [json_string(v) if isinstance(v, bytes) else str(v) for v in arr]
        else:
            items = arr.tolist()
        if len(items) == 1:
            doc[out.name] = float_value(items[0]) if out.datatype in _FLOATS else items[0]
        else:
            doc[out.name] = float_values(items) if out.datatype in _FLOATS else items
    return dict(sorted(doc.items()))
