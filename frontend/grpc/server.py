"""Build, bind and start the frontend's gRPC server (``engine.CoreServer``)."""
from __future__ import annotations

import grpc

from tritond.options import Options

from . import tls, wire
from .engine import CoreServer
from .servicer import InferenceServicer, generic_handlers

_MAX_MESSAGE = wire.MAX_MESSAGE   # INT32_MAX, as Triton and tritonclient set it

# --grpc-infer-response-compression-level -> grpc_compression_level (core's enum).
COMPRESSION_LEVELS = {"none": 0, "low": 1, "medium": 2, "high": 3}

# tritond option (Triton's flag, '-' -> '_') -> gRPC channel argument; values in ms
# or counts exactly as Triton passes them to its ServerBuilder.
_KEEPALIVE = {
    "grpc_keepalive_time": "grpc.keepalive_time_ms",
    "grpc_keepalive_timeout": "grpc.keepalive_timeout_ms",
    "grpc_keepalive_permit_without_calls": "grpc.keepalive_permit_without_calls",
    "grpc_http2_max_pings_without_data": "grpc.http2.max_pings_without_data",
    "grpc_http2_min_recv_ping_interval_without_data":
        "grpc.http2.min_ping_interval_without_data_ms",
    "grpc_http2_max_ping_strikes": "grpc.http2.max_ping_strikes",
    "grpc_max_connection_age": "grpc.max_connection_age_ms",
    "grpc_max_connection_age_grace": "grpc.max_connection_age_grace_ms",
}


def server_options(options: Options) -> list[tuple[str, object]]:
    """The server's channel arguments derived from tritond options."""
    level = options.grpc_infer_response_compression_level
    if level not in COMPRESSION_LEVELS:
        raise ValueError(f"invalid gRPC response compression level '{level}', expected one "
                         f"of {', '.join(COMPRESSION_LEVELS)}")
    args = [
        ("grpc.max_send_message_length", _MAX_MESSAGE),
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.default_compression_level", COMPRESSION_LEVELS[level]),
        # gRPC turns SO_REUSEPORT on by default, which would let a second
        # server "bind" a busy port silently; Triton's --reuse-grpc-port
        # (default false) decides instead.
        ("grpc.so_reuseport",
         1 if options.reuse_grpc_port or options.frontend_processes > 1 else 0),
    ]
    for option, arg in _KEEPALIVE.items():
        value = getattr(options, option)
        if value is not None:
            args.append((arg, int(value)))
    return args


class BindError(OSError):
    """The gRPC port could not be bound (not a TLS file problem)."""


def bind_address(options: Options) -> str:
    """``host:port`` from grpc_address/grpc_port; IPv6 hosts get brackets."""
    host = options.grpc_address
    port = options.grpc_port
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


async def serve_grpc(core, options: Options) -> CoreServer:
    """Start the gRPC frontend over ``core``; the caller stops it (``await server.stop(g)``).

    The bound port (useful with ``grpc_port=0``) is set on the returned server
    as ``server.tritond_port``. Raises OSError naming the address when the
    bind fails.
    """
    server = CoreServer(server_options(options),
                        generic_handlers(InferenceServicer(core), options))
    address = bind_address(options)
    try:
        port = (server.add_secure_port(address, tls.server_credentials(options))
                if tls.enabled(options) else server.add_insecure_port(address))
    except RuntimeError as exc:
        raise BindError(f"failed to bind the gRPC server to {address}: {exc}") from None
    if not port:  # older grpcio reports a failed bind as port 0
        raise BindError(f"failed to bind the gRPC server to {address}")
    server.tritond_port = port
    await server.start()
    return server
