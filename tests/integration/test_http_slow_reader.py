"""A slow HTTP reader must receive its own output, even after other requests reused the slot.

The infer response is written to the transport straight from the worker's shm
output slot (no copy). A client that reads slowly leaves most of a large body
queued in the transport; the slot may only go back to the worker once the
bytes really left, or the next request's output overwrites what is queued.
"""
import json
import socket
import time

import numpy as np
import pytest
import tritonclient.http as httpclient


def _request(value: float, N: int) -> bytes:
    header = json.dumps({
        "inputs": [{"name": "INPUT0", "shape": [N], "datatype": "FP32",
                    "parameters": {"binary_data_size": N * 4}}],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}],
    }).encode()
    body = header + np.full(N, value, np.float32).tobytes()
    head = (f"POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def _read_response(sock: socket.socket) -> tuple[dict, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(1 << 16)
    head, rest = buf.split(b"\r\n\r\n", 1)
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    chunks, got = [rest], len(rest)
    while got < length:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed early"
        chunks.append(chunk)
        got += len(chunk)
    body = b"".join(chunks)
    hlen = int(fields[b"inference-header-content-length"])
    return json.loads(body[:hlen]), body[hlen:]


# 8 MiB: a slot of the worker's (16 MiB) output arena; 32 MiB: a one-off segment,
# kept as a spare for the next big output. Both exceed any socket buffer.
@pytest.mark.parametrize("N", [2 << 20, 8 << 20])
def test_slow_reader_is_not_overwritten_by_later_requests(server, N):
    host, port = server.url.split(":")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((host, int(port)))
    try:
        slow.sendall(_request(1.0, N))
        time.sleep(0.3)           # answered; the body waits in the transport
        c = httpclient.InferenceServerClient(server.url)
        x = np.full(N, 2.0, np.float32)
        inp = httpclient.InferInput("INPUT0", [N], "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        for _ in range(3):
            r = c.infer("identity_fp32", [inp],
                        outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)])
            assert (r.as_numpy("OUTPUT0") == 2.0).all()
        c.close()
        header, data = _read_response(slow)
        assert header["outputs"][0]["name"] == "OUTPUT0"
        out = np.frombuffer(data, np.float32)
        assert out.size == N
        assert (out == 1.0).all(), f"{int((out != 1.0).sum())} of {N} values were overwritten"
    finally:
        slow.close()
