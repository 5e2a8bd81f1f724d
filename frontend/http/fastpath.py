"""The infer route as a bare ASGI function in front of the Starlette app.

``POST /v2/models/{m}[/versions/{v}]/infer`` is the hot path: routing it
through Starlette (router walk, Request and Headers objects, exception
middleware) cost ~15% of the frontend's CPU per small request. Everything
else, and every error response, still goes through Starlette's objects.
"""
from __future__ import annotations

import logging
import re

from tritond.errors import TritonError, internal, unsupported
from tritond.loglevels import verbose

from . import codec, raw
from .body import TooLarge, raw_too_large, read_body, too_large, whole_body  # noqa: F401 - routes use them from here
from .compression import check_encoding, decompress, response_encoding
from ..forward import forward
from .disconnect import infer_unless_disconnected
from .responses import InferResponse, error_response

log = logging.getLogger("tritond.frontend.http")

_INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/([0-9]+))?/infer")
DEFAULT_MAX_INPUT = 64 << 20
DECOUPLED = "HTTP end point doesn't support models with decoupled transaction policy"
_VERBOSE1 = verbose(1)
# libevhtp's htp_method numbers, which Triton's "HTTP request:" line prints
_METHODS = {"GET": 0, "HEAD": 1, "POST": 2, "PUT": 3, "DELETE": 4, "OPTIONS": 8, "TRACE": 13,
            "CONNECT": 14, "PATCH": 15}


def with_fast_infer(app, core):
    """An ASGI app: infer requests handled here, the rest by ``app``."""

    async def asgi(scope, receive, send):
        if log.isEnabledFor(_VERBOSE1) and scope["type"] == "http":
            # Triton logs the path as sent (evhtp's, not percent-decoded)
            raw = scope.get("raw_path")
            log_request(scope["method"], raw.decode("latin-1") if raw else scope["path"])
        if scope["type"] == "http" and scope["method"] == "POST":
            m = _INFER.fullmatch(scope["path"])
            if m is not None:
                await _serve(core, scope, receive, send, m.group(1), m.group(2) or "")
                return
        await app(scope, receive, send)

    return asgi


def plain(exc: TritonError) -> TritonError:
    """Mark an error Triton's infer handler answers before it builds the inference request
    (the model and version, the transaction policy, decompression, the header length): it
    has set no content type then, so they go out as text/plain (later ones as JSON). Plain
    try/except at the call sites: zero cost when nothing is raised, where a context manager
    cost ~1.5 µs per request on the hot path."""
    exc.plain = True
    return exc


def log_request(method: str, path: str) -> None:
    """Triton's verbose line per HTTP request (its evhtp method number, the path)."""
    log.log(_VERBOSE1, "HTTP request: %d %s", _METHODS.get(method, 16), path)


async def _serve(core, scope, receive, send, model: str, version: str,
                 exchange=None) -> None:
    """``exchange``: the ``InferExchange`` serving this request (exchange.py), which
    hands over a body it holds in full and writes an infer answer itself."""
    headers = dict(scope["headers"])
    trace = core.tracer.start(model, headers) if core.tracer.maybe else None
    if trace is not None:
        trace.stamp("HTTP_RECV_START")
    # exchange.py cancels the task itself when the client leaves: no watcher needed.
    watched = exchange is not None or "tritond.cancels_on_disconnect" in scope.get(
        "extensions", ())
    body = exchange.whole_body() if exchange is not None else None
    try:
        response = await infer(core, headers, receive, model, version, trace, watched, body)
    except TritonError as exc:
        response = error_response(exc)
    except Exception as exc:  # noqa: BLE001 - a bug must still answer, as JSON
        log.exception("infer on '%s' failed", model)
        response = error_response(internal(f"{type(exc).__name__}: {exc}"))
    if trace is None:
        if exchange is None or not exchange.respond(response):
            await response(scope, receive, send)
        return
    if trace.version:       # a model answered (Triton stamps it in its response callback)
        trace.stamp("INFER_RESPONSE_COMPLETE")
    trace.stamp("HTTP_SEND_START")
    try:
        await response(scope, receive, send)
    finally:
        trace.stamp("HTTP_SEND_END")
        if trace.version:               # it reached a model (Triton traces no refusal)
            core.tracer.finish(trace)


# A declared body over the limit, by its Inference-Header-Content-Length: all JSON (none),
# all raw input ("0"): Triton's 400 texts; else binary tensors, which Triton does not bound.
_REFUSE = {None: too_large, b"0": raw_too_large}


async def infer(core, headers: dict, receive, model: str, version: str,
                trace=None, watched: bool = False, whole=None) -> InferResponse:
    """One inference: headers are the raw ASGI (lower-case bytes) pairs as a dict;
    ``watched``: the server cancels this task if the client disconnects; ``whole``: the
    body, when the server already holds all of it (else it is read with ``receive``)."""
    limit = core.options.http_max_input_size
    try:
        encoding = check_encoding(_text(headers.get(b"content-encoding")))
    except TritonError as exc:
        raise plain(exc)
    header_len = headers.get(b"inference-header-content-length")
    # --http-max-input-size bounds the whole body (a declared one over it is
    # refused before any byte is read), and again the JSON header, a raw input
    # and a decompressed body.
    refuse = _REFUSE.get(header_len, TooLarge)
    if whole is None:
        body = await read_body(headers.get(b"content-length"), receive, limit, refuse)
    else:
        body = whole_body(headers.get(b"content-length"), whole, limit, refuse)
    if trace is not None:
        trace.stamp("HTTP_RECV_END")
    try:
        if encoding is not None:
            body = decompress(body, encoding, limit)
        mv = core.models.resolve(model, version)
        if mv.decoupled:
            raise unsupported(DECOUPLED)
        hlen = codec.header_length(_text(header_len), len(body))
    except TritonError as exc:
        raise plain(exc)
    if hlen == 0 and len(body) > limit:
        raise raw_too_large(len(body), limit)
    if (hlen or len(body)) > limit:
        raise too_large(hlen or len(body), limit)
    if hlen == 0:           # raw binary request: the body is the only input's data
        req, default_binary = raw.decode_raw(body, mv, model, version)
    else:
        req, default_binary = codec.decode_request(body, hlen, model, version)
    if core.options.http_header_forward_pattern:
        forward(core.options.http_header_forward_pattern,
                ((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers.items()),
                req.parameters)
    req.trace = trace
    if watched:
        result = await core.infer(req, mv)
    else:
        result = await infer_unless_disconnected(core, req, receive, mv)
    try:
        header, blobs = codec.encode_result(result, default_binary)
    except BaseException:
        result.release()
        raise
    return InferResponse(header, blobs, result, response_encoding(_text(headers.get(b"accept-encoding"))))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
