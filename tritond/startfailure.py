"""tritonserver's words when an endpoint cannot start (server src/main.cc StartEndpoints).

Each service's Start returns UNAVAILABLE "Socket '<address>:<port>' already in use "
(http_server.cc, grpc/grpc_server.cc; trailing space included, and for any bind
failure, not only EADDRINUSE), which main.cc logs as
``failed to start <HTTP|GRPC|Metrics> service: Unavailable - <message>`` before it
exits 1. tritond writes the same error line so that what users and their log
alerts grep for is found; tritond's own one-line explanation comes with it.
"""
from __future__ import annotations

EXIT_CODE = 1                                   # tritonserver's exit(1)

# tritond's endpoint kind -> the service name in tritonserver's line
SERVICE = {"HTTP": "HTTP", "gRPC": "GRPC", "metrics": "Metrics"}
# tritonserver starts gRPC, then HTTP, then metrics, and stops at the first failure
ORDER = ("gRPC", "HTTP", "metrics")


def bind_line(what: str, host: str, port: int) -> str:
    """The error line tritonserver logs when ``host:port`` cannot be bound."""
    # Triton joins address and port as given: no brackets around an IPv6 address.
    return (f"failed to start {SERVICE[what]} service: Unavailable - "
            f"Socket '{host}:{port}' already in use ")
