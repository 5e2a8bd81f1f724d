"""The start-up line: "tritond ready" exactly when ``/v2/health/ready`` says so.

The line users (and scripts) wait for must not claim readiness while the
health endpoint still says no: with strict readiness one model that failed to
load keeps the server not ready, and the line says so and why.
"""
from __future__ import annotations

import logging

from .models import READY, UNLOADED, Registry


def endpoints(options) -> str:
    parts = []
    if options.allow_http:
        parts.append(f"HTTP {options.http_address}:{options.http_port}")
    if options.allow_grpc:
        parts.append(f"gRPC {options.grpc_address}:{options.grpc_port}")
    if options.allow_metrics:
        parts.append(f"metrics {options.metrics_address}:{options.metrics_port}")
    return ", ".join(parts) or "no endpoint enabled"


def not_ready_models(registry: Registry) -> list[str]:
    """What keeps strict readiness false: "'name' (reason)" per model."""
    out = [f"'{name}' ({reason})" for name, reason in sorted(registry.failed.items())]
    for (name, version), mv in sorted(registry.versions.items()):
        if mv.reason == UNLOADED or mv.ready:
            continue
        why = mv.reason if mv.state != READY else "no live instance"
        out.append(f"'{name}' version {version} ({mv.state}: {why})" if why
                   else f"'{name}' version {version} ({mv.state})")
    return out


def startup_line(options, registry: Registry, ready: bool, applied: bool) -> tuple[int, str]:
    """(log level, text) of the line that ends the start-up.

    ``ready``: what the published table tells the frontends (``server_ready``);
    ``applied``: every frontend confirmed that table.
    """
    where = endpoints(options)
    if not applied:
        return logging.WARNING, (f"tritond is serving ({where}) but readiness is not confirmed: "
                                 "a frontend did not apply the model table in time")
    if ready:
        return logging.INFO, f"tritond ready: {where}"
    models = not_ready_models(registry)
    why = ("models did not load: " + "; ".join(models) + " (--strict-readiness=true "
           "needs every model to load; --strict-readiness=false serves the others as ready)"
           if models else "the server is stopping")
    return logging.WARNING, f"tritond is serving ({where}) but NOT ready: {why}"
