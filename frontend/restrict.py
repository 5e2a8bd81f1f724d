"""Restricted APIs: ``--http-restricted-api`` and ``--grpc-restricted-protocol`` as Triton.

Each flag is ``<categories>:<key>=<value>``: the comma-separated API categories
answer only requests that carry the header ``<key>`` (HTTP) or the metadata key
``triton-grpc-protocol-<key>`` (gRPC) with exactly ``<value>``. Others get HTTP 403
"This API is restricted, expecting header '<key>'" or gRPC UNAVAILABLE "This
protocol is restricted, expecting header '<header>'" (Triton's texts). A
category may be restricted by one entry only. Without restrictions nothing is
wrapped (no cost on the infer path).
"""
from __future__ import annotations

import re

CATEGORIES = ("health", "metadata", "inference", "shared-memory", "model-config",
              "model-repository", "statistics", "trace", "logging")
GRPC_PREFIX = "triton-grpc-protocol-"

# gRPC method -> category (Triton's grpc_server.cc registrations).
GRPC_METHODS = {
    "ServerLive": "health", "ServerReady": "health", "ModelReady": "health", "Check": "health",
    "ServerMetadata": "metadata", "ModelMetadata": "metadata",
    "ModelInfer": "inference", "ModelStreamInfer": "inference",
    "ModelConfig": "model-config", "ModelStatistics": "statistics",
    "RepositoryIndex": "model-repository", "RepositoryModelLoad": "model-repository",
    "RepositoryModelUnload": "model-repository",
    "SystemSharedMemoryStatus": "shared-memory", "SystemSharedMemoryRegister": "shared-memory",
    "SystemSharedMemoryUnregister": "shared-memory", "CudaSharedMemoryStatus": "shared-memory",
    "CudaSharedMemoryRegister": "shared-memory", "CudaSharedMemoryUnregister": "shared-memory",
    "TraceSetting": "trace", "LogSettings": "logging",
}

_MODEL = r"/v2/models/[^/]+(?:/versions/[^/]+)?"
# HTTP path -> category, first match wins (Triton's http_server.cc handlers).
_HTTP = [(re.compile(p), c) for p, c in (
    (r"/v2/health/(?:live|ready)", "health"),
    (_MODEL + r"/ready", "health"),
    (_MODEL + r"/(?:infer|generate|generate_stream)", "inference"),
    (_MODEL + r"/config", "model-config"),
    (r"/v2/models/stats|" + _MODEL + r"/stats", "statistics"),
    (r"/v2/trace/setting|/v2/models/[^/]+/trace/setting", "trace"),
    (r"/v2/logging", "logging"),
    (r"/v2/repository/.*", "model-repository"),
    (r"/v2/(?:system|cuda)sharedmemory/.*", "shared-memory"),
    (r"/v2|" + _MODEL, "metadata"),
)]


class RestrictionError(ValueError):
    """A malformed restriction (the option parser reports it)."""


def http_restrictions(options) -> dict[str, tuple]:
    return parse(options.http_restricted_api, "http-restricted-api", "api")


def grpc_restrictions(options) -> dict[str, tuple]:
    return parse(options.grpc_restricted_protocol, "grpc-restricted-protocol", "protocol",
                 GRPC_PREFIX)


def parse(entries: list[str], flag: str, kind: str, prefix: str = "") -> dict[str, tuple]:
    """category -> (header, value) from ``<categories>:<key>=<value>`` entries."""
    out: dict[str, tuple] = {}
    for entry in entries:
        head, colon, rest = entry.partition(":")
        key, eq, value = rest.partition("=")
        if not colon or not eq or not head or not key or not value:
            raise RestrictionError(f"--{flag} option format is '<{kind}s>:<key>=<value>'. "
                                   f"Got {entry}")
        for category in head.split(","):
            if category not in CATEGORIES:
                raise RestrictionError(f"unknown restricted {kind} '{category}'")
            if category in out:
                raise RestrictionError(f"restricted {kind} '{category}' can not be specified "
                                       f"in multiple config groups")
            out[category] = (prefix + key, value)
    return out


def http_category(path: str) -> str | None:
    for pattern, category in _HTTP:
        if pattern.fullmatch(path):
            return category
    return None


def with_restrictions(app, restrictions: dict[str, tuple]):
    """``app`` (ASGI) behind Triton's HTTP header check; ``app`` itself when unrestricted."""
    if not restrictions:
        return app
    from .http.responses import json_response

    async def asgi(scope, receive, send):
        if scope["type"] == "http":
            category = http_category(scope["path"])
            rule = restrictions.get(category) if category else None
            if rule is not None:
                header, value = rule
                name = header.lower().encode("latin-1")
                got = [v for k, v in scope["headers"] if k.lower() == name]
                if not got or got[0].decode("latin-1") != value:
                    response = json_response(
                        {"error": f"This API is restricted, expecting header '{header}'"}, 403)
                    await response(scope, receive, send)
                    return
        await app(scope, receive, send)

    return asgi


def grpc_allowed(metadata, rule: tuple) -> bool:
    header, value = rule[0].lower(), rule[1]
    return any(k.lower() == header and v == value for k, v in metadata or ())


def grpc_denial(rule: tuple) -> str:
    return f"This protocol is restricted, expecting header '{rule[0]}'"
