"""The Starlette app of the HTTP/REST endpoint."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.routing import Route

from tritond.errors import TritonError

from ..core import FrontendCore
from ..restrict import http_restrictions, with_restrictions
from . import routes as r
from .deadline import with_header_timeout
from .fastpath import with_fast_infer
from .protocol import CorkedHttpToolsProtocol, with_direct_infer
from .generate import generate, generate_stream
from .responses import error_response, json_response, plain_error


class _Digits(Convertor):
    """Triton's version segment: ``[0-9]+``, kept as a string."""

    regex = "[0-9]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value) -> str:
        return str(value)


class _ShmKind(Convertor):
    regex = "system|cuda"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value) -> str:
        return str(value)


register_url_convertor("digits", _Digits())
register_url_convertor("shmkind", _ShmKind())

_M = "/v2/models/{model}"
_MV = "/v2/models/{model}/versions/{version:digits}"
_SHM = "/v2/{kind:shmkind}sharedmemory"
GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]


def _routes() -> list[Route]:
    # Infer first: Starlette tries routes in order and this is the hot path.
    table = [
        (_M + "/infer", r.infer, POST), (_MV + "/infer", r.infer, POST),
        (_M + "/generate", generate, POST), (_MV + "/generate", generate, POST),
        (_M + "/generate_stream", generate_stream, POST),
        (_MV + "/generate_stream", generate_stream, POST),
        ("/v2/health/live", r.live, GET), ("/v2/health/ready", r.ready, GET),
        ("/v2", r.server_metadata, GET),
        ("/v2/logging", r.logging_settings, BOTH), ("/v2/models/stats", r.model_stats, GET),
        ("/v2/trace/setting", r.trace_settings, BOTH),
        (_M + "/trace/setting", r.trace_settings, BOTH),
        (_M, r.model_metadata, GET), (_MV, r.model_metadata, GET),
        (_M + "/ready", r.model_ready, GET), (_MV + "/ready", r.model_ready, GET),
        (_M + "/config", r.model_config, GET), (_MV + "/config", r.model_config, GET),
        (_M + "/stats", r.model_stats, GET), (_MV + "/stats", r.model_stats, GET),
        ("/v2/repository/index", r.repository_index, POST),
        ("/v2/repository/{repository}/index", r.repository_index, POST),
        ("/v2/repository/models/{model}/load", r.load, POST),
        ("/v2/repository/{repository}/models/{model}/load", r.load, POST),
        ("/v2/repository/models/{model}/unload", r.unload, POST),
        ("/v2/repository/{repository}/models/{model}/unload", r.unload, POST),
        (_SHM + "/status", r.shm_status, GET),
        (_SHM + "/region/{region}/status", r.shm_status, GET),
        (_SHM + "/region/{region}/register", r.shm_register, POST),
        (_SHM + "/unregister", r.shm_unregister, POST),
        (_SHM + "/region/{region}/unregister", r.shm_unregister, POST),
    ]
    routes = [Route(path, fn, methods=methods) for path, fn, methods in table]
    for route in routes:
        route.methods.discard("HEAD")   # Starlette adds it to GET; Triton answers HEAD 405
    return routes


async def _triton_error(request, exc: TritonError):
    return error_response(exc)


async def _http_error(request, exc: HTTPException):
    # Triton's framework errors: {"error":"Not Found"} / {"error":"Method Not Allowed"},
    # text/plain where Triton sets no content type: an unknown route, a health handler.
    # (an infer route's 405 too: Triton's infer handler refuses the method before it
    # sets a content type)
    if exc.status_code == 404 or _health(request.url.path) or \
            request.url.path.endswith("/infer"):
        return plain_error(exc.detail, exc.status_code)
    return json_response({"error": exc.detail}, exc.status_code)


def _health(path: str) -> bool:
    return path.startswith("/v2/health/") or path.endswith("/ready")


def build_app(core: FrontendCore):
    """The HTTP app over ``core`` (an ASGI callable); serve it with uvicorn (``frontend/proc.py``)."""
    app = Starlette(routes=_routes(), exception_handlers={
        TritonError: _triton_error, HTTPException: _http_error})
    app.state.core = core
    # Triton matches the path as sent: "/v2/health/live/" is an unknown route (404), not
    # a redirect to the path without the slash
    app.router.redirect_slashes = False
    return with_raw_path(with_restrictions(with_fast_infer(app, core),
                                           http_restrictions(core.options)))


def with_raw_path(app):
    """Routes match the path as sent, %-escapes kept: Triton's regexes see evhtp's raw
    ``uri->path->full``, so ``/v2/models/a%20b/ready`` names model "a%20b" (and a
    region or repository name likewise). uvicorn's ``path`` is percent-decoded."""

    async def asgi(scope, receive, send):
        raw = scope.get("raw_path")
        if raw and b"%" in raw:     # uvicorn decoded it from ASCII: it is ASCII
            scope["path"] = raw.decode("ascii")
        await app(scope, receive, send)

    return asgi


def build_protocol(core: FrontendCore) -> type:
    """uvicorn's ``http=`` class: infer requests are served by the protocol itself
    (exchange.py) unless the inference API is restricted (then the restriction's
    ASGI wrapper must see them)."""
    opts = core.options
    protocol = with_header_timeout(CorkedHttpToolsProtocol, opts.http_header_timeout)
    if "inference" in http_restrictions(opts):
        return protocol
    return with_direct_infer(protocol, core)
