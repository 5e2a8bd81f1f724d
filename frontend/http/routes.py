"""Route handlers of the HTTP/REST endpoint: convert, call the core, convert.

Every handler may raise ``TritonError``; the app turns it into ``{"error": msg}``
with the status from ``tritond.errors.http_status``.
"""
from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import Response

from tritond.errors import TritonError, http_status, internal, invalid_arg, unsupported

from ..core import FrontendCore
from . import codec, fastpath, shmregister
from .responses import empty_response, json_response, plain_error

DEFAULT_MAX_INPUT = 64 << 20


def _core(request: Request) -> FrontendCore:
    return request.app.state.core


def _model(request: Request) -> tuple[str, str]:
    p = request.path_params
    return p["model"], p.get("version", "")


async def read_body(request: Request, limit: int):
    """The whole body, refusing more than ``limit`` bytes (see fastpath.read_body)."""
    return await fastpath.read_body(request.headers.get("content-length", "").encode() or None,
                                    request.receive, limit, fastpath.too_large)


def _too_large(n: int, limit: int):
    return fastpath.too_large(n, limit)


async def _json_body(request: Request, limit: int = DEFAULT_MAX_INPUT):
    body = await read_body(request, limit)
    return codec.parse_json(body) if body.strip() else None


# ------------------------------------------------------------------ inference


async def infer(request: Request):
    """Reached only if the fast path (fastpath.with_fast_infer) is not in front."""
    p = request.path_params
    return await fastpath.infer(_core(request), dict(request.scope["headers"]), request.receive,
                                p["model"], p.get("version", ""))


# ------------------------------------------------------------------ health and metadata


async def live(request: Request):
    return empty_response(200 if _core(request).control.server_live() else 400)


async def ready(request: Request):
    return empty_response(200 if await _core(request).control.server_ready_asked() else 400)


async def server_metadata(request: Request):
    return json_response(_core(request).control.server_metadata())


async def model_metadata(request: Request):
    return json_response(_core(request).control.model_metadata(*_model(request)))


async def model_ready(request: Request):
    try:
        ready = await _core(request).control.model_ready(*_model(request))
    except TritonError as exc:          # as every answer of Triton's health handlers
        return plain_error(exc.message, http_status(exc.code))
    return empty_response(200) if ready else plain_error("Model version not ready", 400)


async def model_config(request: Request):
    # Triton's JSON rendering, made once by the parent: sent as it is.
    return Response(_core(request).control.model_config(*_model(request)),
                    media_type="application/json")


async def model_stats(request: Request):
    p = request.path_params
    stats = await _core(request).control.model_statistics(p.get("model", ""), p.get("version", ""))
    return json_response(stats)


# ------------------------------------------------------------------ repository


def _no_repository_name(request: Request) -> None:
    if request.path_params.get("repository"):
        raise unsupported("'repository_name' specification is not supported")


async def repository_index(request: Request):
    # Triton's index handler passes over a repository name (its load and unload refuse one)
    doc = await _json_body(request)
    # Triton looks 'ready' up only in an object (anything else: not given).
    ready = doc.get("ready", False) if isinstance(doc, dict) else False
    if type(ready) is not bool:
        raise invalid_arg("Invalid value for 'ready': expected a boolean")
    return json_response(_core(request).control.repository_index(ready))


async def _load_params(request: Request, load: bool = True) -> dict:
    """The body's 'parameters' as Triton finds them: only in an object (any other body
    has none); a load reads their members (Triton's TritonJson text for a non-object,
    400 here where Triton answers 500), an unload looks 'unload_dependents' up only in
    an object."""
    doc = await _json_body(request)
    params = doc.get("parameters", {}) if isinstance(doc, dict) else {}
    if not isinstance(params, dict):
        if load:
            raise invalid_arg("attempt to get members for non-object")
        params = {}
    return params


def _http_load_params(params: dict) -> dict:
    """Triton's HTTP load parameters: every value a string; 'config' as it is, 'file:'
    values base64; any other name is refused (with Triton's INTERNAL texts)."""
    out = {}
    for key, value in params.items():
        if not isinstance(value, str):
            raise internal("attempt to access JSON non-string as string")
        if key == "config":
            out[key] = value
        elif key.startswith("file:"):
            try:
                out[key] = base64.b64decode(value, validate=True)
            except ValueError:
                raise invalid_arg(f"failed to decode base64 value of '{key}'") from None
        else:
            raise internal("unexpected error on creating Triton parameter")
    return out


async def load(request: Request):
    _no_repository_name(request)
    params = _http_load_params(await _load_params(request))
    await _core(request).control.load_model(request.path_params["model"], params)
    return _control_done()


async def unload(request: Request):
    _no_repository_name(request)
    await _core(request).control.unload_model(request.path_params["model"],
                                              await _load_params(request, load=False))
    return _control_done()


def _control_done() -> Response:
    """Triton's load/unload answer: an empty body typed application/json (its handler sets
    the type first)."""
    return Response(b"", 200, media_type="application/json")


# ------------------------------------------------------------------ shared memory


async def shm_status(request: Request):
    shm, region = _core(request).shm, request.path_params.get("region", "")
    kind = request.path_params["kind"]
    status = shm.system_shm_status(region) if kind == "system" else shm.cuda_shm_status(region)
    # Triton's manager keeps regions in a std::map, so its JSON array comes in name order,
    # not registration order (gRPC answers a protobuf map, whose order is unspecified).
    return json_response(sorted(status, key=lambda r: r["name"]))


async def shm_register(request: Request):
    shm, region = _core(request).shm, request.path_params["region"]
    shm.check_enabled()                         # before the body, as Triton
    doc = await _json_body(request)
    if request.path_params["kind"] == "system":
        await shm.register_system_shm(region, *shmregister.system_fields(doc))
    else:
        await shm.register_cuda_shm(region, *shmregister.cuda_fields(doc))
    return _shm_done()


async def shm_unregister(request: Request):
    shm, region = _core(request).shm, request.path_params.get("region", "")
    if request.path_params["kind"] == "system":
        await shm.unregister_system_shm(region)
    else:
        await shm.unregister_cuda_shm(region)
    return _shm_done()


def _shm_done():
    """Triton sets the JSON content type on every shared-memory answer, an empty one too."""
    return Response(b"", 200, media_type="application/json")


# ------------------------------------------------------------------ settings


async def logging_settings(request: Request):
    update = await _json_body(request) if request.method == "POST" else None
    if update is not None and not isinstance(update, dict):
        update = None           # Triton looks settings up only in an object: none
    if update:                      # Triton's HTTP handler skips a null setting
        update = {key: value for key, value in update.items() if value is not None}
    return json_response(await _core(request).control.log_settings(update))


async def trace_settings(request: Request):
    update = await _json_body(request) if request.method == "POST" else None
    if update is not None and not isinstance(update, dict):
        update = None           # Triton looks settings up only in an object: none
    model = request.path_params.get("model", "")
    return json_response(await _core(request).control.trace_settings(model, update))
