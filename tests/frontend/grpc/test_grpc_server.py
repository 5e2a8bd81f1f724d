"""serve_grpc: binding, message limits, compression and keepalive options."""
import asyncio
import socket

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tritond.frontend.grpc.server import bind_address, serve_grpc, server_options
from tritond.options import Options

from tests.frontend.grpc.grpc_harness import GrpcServerThread


def test_options_defaults_and_compression():
    args = dict(server_options(Options()))
    assert args["grpc.max_send_message_length"] == 2**31 - 1
    assert args["grpc.max_receive_message_length"] == 2**31 - 1
    assert args["grpc.default_compression_level"] == 0
    assert args["grpc.so_reuseport"] == 0
    levels = [dict(server_options(Options(grpc_infer_response_compression_level=lvl)))[
        "grpc.default_compression_level"] for lvl in ("none", "low", "medium", "high")]
    assert levels == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="compression level 'max'"):
        server_options(Options(grpc_infer_response_compression_level="max"))


def test_keepalive_options_pass_through():
    args = dict(server_options(Options(grpc_keepalive_time=1000, grpc_keepalive_timeout=50,
                                       grpc_keepalive_permit_without_calls=1,
                                       grpc_http2_max_ping_strikes=0, reuse_grpc_port=True)))
    assert args["grpc.keepalive_time_ms"] == 1000 and args["grpc.keepalive_timeout_ms"] == 50
    assert args["grpc.keepalive_permit_without_calls"] == 1
    assert args["grpc.http2.max_ping_strikes"] == 0 and args["grpc.so_reuseport"] == 1


def test_bind_address():
    assert bind_address(Options()) == "0.0.0.0:8001"
    assert bind_address(Options(grpc_address="::1", grpc_port=5)) == "[::1]:5"


def test_bind_failure_names_the_address():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        async def start():
            return await serve_grpc(object(), Options(grpc_address="127.0.0.1", grpc_port=port))
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            asyncio.run(start())


def test_large_message_with_compression():
    srv = GrpcServerThread(grpc_infer_response_compression_level="high")
    try:
        with grpcclient.InferenceServerClient(srv.url) as client:
            x = np.random.rand(5 << 20).astype(np.float32)      # 20 MiB, over gRPC's 4 MiB default
            t = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
            t.set_data_from_numpy(x)
            r = client.infer("identity", [t], compression_algorithm="gzip")
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)
    finally:
        srv.stop()
