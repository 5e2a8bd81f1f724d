"""Infer requests served by the protocol itself (frontend/http/exchange.py), over raw sockets:
pipelining, keep-alive, HTTP/1.0, 100-continue, chunked and slow bodies, malformed framing."""
import json
import socket
import time

import pytest

ADDR = "/v2/models/simple/infer"


def body(k: int, pad: int = 0) -> bytes:
    doc = {"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [k] * 16},
                      {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": [1] * 16}]}
    return json.dumps(doc).encode() + b" " * pad


def post(k: int, path: str = ADDR, version: str = "1.1", extra: str = "") -> bytes:
    b = body(k)
    return (f"POST {path} HTTP/{version}\r\nHost: x\r\nContent-Length: {len(b)}\r\n{extra}\r\n"
            .encode() + b)


class Reader:
    """Reads HTTP/1.1 responses off one socket, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.f = sock.makefile("rb")

    def response(self) -> tuple[int, dict, bytes]:
        status = int(self.f.readline().split()[1])
        headers = {}
        while (line := self.f.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        n = int(headers.get("content-length", 0))
        return status, headers, self.f.read(n) if n else b""

    def closed(self) -> bool:
        return self.f.read(1) == b""


def connect(server) -> socket.socket:
    host, port = server.url.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def sums(data: bytes) -> int:
    return {o["name"]: o for o in json.loads(data)["outputs"]}["OUTPUT0"]["data"][0]


def test_pipelined_requests_answered_in_order(server):
    with connect(server) as s:
        r = Reader(s)
        s.sendall(post(1) + post(2) + b"GET /v2/models/simple HTTP/1.1\r\nHost: x\r\n\r\n"
                  + post(3) + post(4, path="/v2/models/simple/versions/1/infer"))
        for k in (1, 2):
            status, _, data = r.response()
            assert status == 200 and sums(data) == k + 1
        status, _, data = r.response()                       # metadata, through Starlette
        assert status == 200 and json.loads(data)["name"] == "simple"
        for k in (3, 4):
            status, _, data = r.response()
            assert status == 200 and sums(data) == k + 1


def test_keep_alive_serves_many_requests_on_one_connection(server):
    with connect(server) as s:
        r = Reader(s)
        for k in range(20):
            s.sendall(post(k))
            status, headers, data = r.response()
            assert status == 200 and sums(data) == k + 1
            assert headers.get("connection") != "close"
            assert "date" in headers and headers["content-type"] == "application/json"
            assert "server" not in headers          # Triton names no server software


def test_http_1_0_gets_its_answer_then_close(server):
    with connect(server) as s:
        r = Reader(s)
        s.sendall(post(5, version="1.0"))
        status, headers, data = r.response()
        assert status == 200 and sums(data) == 6 and headers["connection"] == "close"
        assert r.closed()


def test_connection_close_is_honoured(server):
    with connect(server) as s:
        r = Reader(s)
        s.sendall(post(5, extra="Connection: close\r\n"))
        status, headers, _ = r.response()
        assert status == 200 and headers["connection"] == "close"
        assert r.closed()


def test_expect_100_continue(server):
    b = body(7)
    with connect(server) as s:
        r = Reader(s)
        s.sendall(f"POST {ADDR} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(b)}\r\n"
                  f"Expect: 100-continue\r\n\r\n".encode())
        assert r.response()[0] == 100
        s.sendall(b)
        status, _, data = r.response()
        assert status == 200 and sums(data) == 8


def test_chunked_body_sent_slowly(server):
    b = body(9)
    with connect(server) as s:
        r = Reader(s)
        s.sendall(f"POST {ADDR} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        for part in (b[:10], b[10:50], b[50:]):
            s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            time.sleep(0.02)
        s.sendall(b"0\r\n\r\n")
        status, _, data = r.response()
        assert status == 200 and sums(data) == 10


def test_large_body_in_many_segments(server):
    # Past uvicorn's high-water mark (64 KiB): reading pauses until the handler takes the chunks.
    b = body(11, pad=300_000)
    with connect(server) as s:
        r = Reader(s)
        s.sendall(f"POST {ADDR} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(b)}\r\n\r\n".encode())
        for i in range(0, len(b), 16384):
            s.sendall(b[i:i + 16384])
        status, _, data = r.response()
        assert status == 200 and sums(data) == 12
        s.sendall(post(1))                                   # and the connection goes on
        assert r.response()[0] == 200


@pytest.mark.parametrize("length", ["abc", "-1", "1, 2"])
def test_bad_content_length_is_400_and_close(server, length):
    with connect(server) as s:
        r = Reader(s)
        s.sendall(f"POST {ADDR} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
        status, _, data = r.response()
        assert status == 400 and b"Invalid HTTP request" in data
        assert r.closed()


def test_content_length_shorter_than_the_body(server):
    # The declared length cuts the JSON (a 400 from the handler); the rest is read as
    # the next request, which is not HTTP (uvicorn's 400, then close).
    b = body(1)
    with connect(server) as s:
        r = Reader(s)
        s.sendall(f"POST {ADDR} HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n".encode() + b[:20])
        status, headers, data = r.response()
        assert status == 400 and "error" in json.loads(data)
        s.sendall(b[20:])
        status, _, data = r.response()
        assert status == 400 and b"Invalid HTTP request" in data
        assert r.closed()


def test_truncated_body_then_close_leaves_the_server_serving(server):
    with connect(server) as s:
        s.sendall(f"POST {ADDR} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode())
        time.sleep(0.05)
    with connect(server) as s:
        r = Reader(s)
        s.sendall(post(2))
        status, _, data = r.response()
        assert status == 200 and sums(data) == 3


def test_query_paths_take_the_asgi_route(server):
    with connect(server) as s:
        r = Reader(s)
        s.sendall(post(3, path=ADDR + "?x=1"))
        status, _, data = r.response()
        assert status == 200 and sums(data) == 4


@pytest.mark.parametrize("query", ["", "?x=1"])
def test_escapes_stay_in_the_model_name(server, query):
    # Triton matches the raw path: "simpl%65" is not "simple" (either infer route)
    with connect(server) as s:
        r = Reader(s)
        s.sendall(post(3, path="/v2/models/simpl%65/infer" + query))
        status, _, data = r.response()
        assert status == 404 and "'simpl%65'" in json.loads(data)["error"]


def test_errors_keep_the_connection(server):
    with connect(server) as s:
        r = Reader(s)
        s.sendall(post(1, path="/v2/models/nope/infer") + post(1))
        status, headers, data = r.response()
        assert status == 404 and "nope" in json.loads(data)["error"]
        # Triton answers an unknown model before it builds the request: no JSON type set
        assert headers["content-type"] == "text/plain"
        status, _, data = r.response()
        assert status == 200 and sums(data) == 2
