"""Checks before anything starts: the model repositories and the listening ports.

A wrong path or a busy port is the most common first-run mistake. Found here,
it is one plain sentence and exit code 1 within a fraction of a second, before
a scheduler, a frontend or a worker is spawned; found later, it would be a
child's death and a shutdown sequence in the log.
"""
from __future__ import annotations

import errno
import os
import socket

from tritond import startfailure


def problems(options) -> list[str]:
    """One sentence per problem that would stop the server; empty when it can start."""
    return [*repository_problems(options.model_repository), *port_problems(options),
            *log_file_problems(options.log_file), *trace_problems(options),
            *tls_problems(options)]


def tls_problems(options) -> list[str]:
    from tritond.frontend.grpc import tls

    return tls.problems(options)


def trace_problems(options) -> list[str]:
    """Tracing that cannot work is refused at start, not silently off."""
    from tritond import traceconfig

    return traceconfig.problems(traceconfig.resolve(options))


def log_file_problems(path: str) -> list[str]:
    """--log-file must be writable (every process appends to it)."""
    if not path:
        return []
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        return [f"failed to open log file '{path}' (--log-file): {exc.strerror}"]
    return []


def repository_problems(repositories: list[str]) -> list[str]:
    out = []
    for repo in repositories:
        if not os.path.exists(repo):
            out.append(f"model repository '{repo}' does not exist")
        elif not os.path.isdir(repo):
            out.append(f"model repository '{repo}' is not a directory")
        else:
            try:
                os.listdir(repo)
            except OSError as exc:
                out.append(f"model repository '{repo}' cannot be read: {exc.strerror}")
    return out


WILDCARDS = {"0.0.0.0", "::", ""}


def port_problems(options) -> list[str]:
    """Enabled HTTP, gRPC and metrics ports that cannot be bound (tritonserver's
    StartEndpoints stops the server when any of the three fails to start)."""
    return [sentence for sentence, _ in port_failures(options)]


def triton_line(options) -> str:
    """tritonserver's error line for the endpoint it would fail to start, or ``""``:
    it starts gRPC, then HTTP, then metrics, and stops at the first that fails."""
    failed = {what: (host, port) for _, (what, host, port) in port_failures(options)}
    for what in startfailure.ORDER:
        if what in failed:
            return startfailure.bind_line(what, *failed[what])
    return ""


def port_failures(options) -> list[tuple[str, tuple[str, str, int]]]:
    """(sentence, the endpoint that would fail: (what, host, port)) per problem."""
    wanted = []     # (what, flag, host, port, shared on purpose: --reuse-*-port)
    if options.allow_http:
        wanted.append(("HTTP", "--http-port", options.http_address, options.http_port,
                       options.reuse_http_port))
    if options.allow_grpc:
        wanted.append(("gRPC", "--grpc-port", options.grpc_address, options.grpc_port,
                       options.reuse_grpc_port))
    if options.allow_metrics:
        wanted.append(("metrics", "--metrics-port", options.metrics_address,
                       options.metrics_port, False))
    if clash := collision_failures(wanted):
        return clash
    out = []
    for what, flag, host, port, shared in wanted:
        # A shared port may be held by another server that shares it too: the bind
        # itself (frontend/proc.py, with SO_REUSEPORT) is the check.
        if port and not shared and (reason := bind_problem(host, port)):
            out.append((f"cannot serve {what} on {host}:{port} ({flag}): {reason}",
                        (what, host, port)))
    return out


def collisions(wanted: list[tuple]) -> list[str]:
    """Two of our own endpoints on one port (with SO_REUSEPORT on both, the kernel
    would spread connections between them; without, the second bind fails)."""
    return [sentence for sentence, _ in collision_failures(wanted)]


def collision_failures(wanted: list[tuple]) -> list[tuple[str, tuple[str, str, int]]]:
    out = []
    for i, (what, flag, host, port, _) in enumerate(wanted):
        for other, oflag, ohost, oport, _ in wanted[i + 1:]:
            if port and port == oport and (host == ohost or {host, ohost} & WILDCARDS):
                # tritonserver would start the first of the two and fail on the second
                later = max((what, host), (other, ohost),
                            key=lambda e: startfailure.ORDER.index(e[0]))
                out.append((f"{what} and {other} cannot share port {port} ({flag}, {oflag})",
                            (*later, port)))
    return out


def bind_problem(host: str, port: int) -> str:
    """Why ``host:port`` cannot be bound as the frontend binds it, or ``""``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as frontend/proc.py
            sock.bind((host, port))
    except socket.gaierror as exc:
        return f"unknown address: {exc.strerror}"
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "the address is already in use"
        return exc.strerror or str(exc)
    return ""
