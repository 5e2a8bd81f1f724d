"""Triton error codes -> gRPC status codes, through the one table in tritond.errors."""
from __future__ import annotations

import grpc

from tritond.errors import Code, grpc_status_name

STATUS: dict[Code, grpc.StatusCode] = {c: grpc.StatusCode[grpc_status_name(c)] for c in Code}


async def abort(context, exc) -> None:
    """End the call with the status and message of a TritonError (raises)."""
    await context.abort(STATUS[exc.code], exc.message)
