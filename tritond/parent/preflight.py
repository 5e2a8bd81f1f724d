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


def problems(options) -> list[str]:
    """One sentence per problem that would stop the server; empty when it can start."""
    return [*repository_problems(options.model_repository), *port_problems(options),
            *log_file_problems(options.log_file), *trace_problems(options)]


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
    """HTTP and gRPC ports that cannot be bound (the metrics port is an aid: a busy one
    is logged by the frontend and the server runs without it)."""
    wanted = []
    if options.allow_http:
        wanted.append(("HTTP", "--http-port", options.http_address, options.http_port))
    if options.allow_grpc and not options.reuse_grpc_port:   # shared on purpose
        wanted.append(("gRPC", "--grpc-port", options.grpc_address, options.grpc_port))
    out = []
    if len(wanted) == 2 and wanted[0][3] and wanted[0][3] == wanted[1][3] and (
            wanted[0][2] == wanted[1][2] or {wanted[0][2], wanted[1][2]} & WILDCARDS):
        return [f"HTTP and gRPC cannot share port {wanted[0][3]} (--http-port, --grpc-port)"]
    for what, flag, host, port in wanted:
        if port and (reason := bind_problem(host, port)):
            out.append(f"cannot serve {what} on {host}:{port} ({flag}): {reason}")
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
