"""Every malformed request gets Triton's error and the server keeps serving."""
import json
import struct

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.test_http_infer import raw_post, simple_inputs


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(server.url)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def still_serving(client):
    yield
    a = np.ones((1, 16), np.int32)
    assert client.infer("simple", simple_inputs(a, a)).as_numpy("OUTPUT0").sum() == 32


def infer_error(client, model, inputs, **kw):
    with pytest.raises(InferenceServerException) as exc:
        client.infer(model, inputs, **kw)
    return exc.value


def test_unknown_model(client):
    a = np.ones((1, 16), np.int32)
    err = infer_error(client, "nope", simple_inputs(a, a))
    assert err.status() == "404" and "nope" in err.message()


def test_unknown_version(client):
    a = np.ones((1, 16), np.int32)
    err = infer_error(client, "simple", simple_inputs(a, a), model_version="7")
    assert err.status() == "404"


def test_missing_input(client):
    a = np.ones((1, 16), np.int32)
    err = infer_error(client, "simple", simple_inputs(a, a)[:1])
    assert err.status() == "400" and "INPUT1" in err.message()


def test_unexpected_input(client):
    a = np.ones((1, 16), np.int32)
    extra = httpclient.InferInput("BOGUS", [1, 16], "INT32")
    extra.set_data_from_numpy(a)
    err = infer_error(client, "simple", simple_inputs(a, a) + [extra])
    assert err.status() == "400" and "BOGUS" in err.message()


def test_wrong_datatype(client):
    a = np.ones((1, 16), np.float32)
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "FP32"), httpclient.InferInput("INPUT1", [1, 16], "FP32")]
    for i in inputs:
        i.set_data_from_numpy(a)
    err = infer_error(client, "simple", inputs)
    assert err.status() == "400" and "data-type" in err.message() and "INT32" in err.message()


def test_wrong_shape(client):
    a = np.ones((1, 8), np.int32)
    err = infer_error(client, "simple", simple_inputs(a, a))
    assert err.status() == "400" and "shape" in err.message()


def test_batch_above_max(client):
    a = np.ones((9, 16), np.int32)
    err = infer_error(client, "simple", simple_inputs(a, a))
    assert err.status() == "400" and "batch-size must be <= 8" in err.message()


def test_unknown_output(client):
    a = np.ones((1, 16), np.int32)
    err = infer_error(client, "simple", simple_inputs(a, a),
                      outputs=[httpclient.InferRequestedOutput("NOPE")])
    assert err.status() == "400" and "NOPE" in err.message()


def header_body(header: dict, blobs=b""):
    h = json.dumps(header).encode()
    return h + blobs, {"Inference-Header-Content-Length": str(len(h))}


def test_byte_size_not_matching_shape(server):
    body, headers = header_body({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 60}},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}}]},
        b"\0" * 124)
    status, data = raw_post(server, "/v2/models/simple/infer", body, headers)
    assert status == 400 and "INPUT0" in json.loads(data)["error"]


def test_malformed_json(server):
    status, data = raw_post(server, "/v2/models/simple/infer", b"{not json")
    assert status == 400 and json.loads(data)["error"]


def test_header_length_larger_than_body(server):
    body = b'{"inputs": []}'
    status, data = raw_post(server, "/v2/models/simple/infer", body,
                            {"Inference-Header-Content-Length": "999"})
    assert status == 400 and json.loads(data)["error"]


def test_leftover_binary_data(server):
    body, headers = header_body({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}}]},
        b"\0" * 200)
    status, data = raw_post(server, "/v2/models/simple/infer", body, headers)
    assert status == 400 and "unexpected additional input data" in json.loads(data)["error"]


def test_bytes_element_running_past_buffer(server):
    blob = b"".join(struct.pack("<I", 1) + b"x" for _ in range(15)) + struct.pack("<I", 100) + b"abc"
    body, headers = header_body({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "BYTES", "parameters": {"binary_data_size": len(blob)}}]},
        blob)
    status, data = raw_post(server, "/v2/models/simple_string/infer", body, headers)
    assert status == 400 and json.loads(data)["error"]


LIMIT = 64 << 20
JSON_TOO_LARGE = (f"request JSON size of {LIMIT + 1} bytes exceeds the maximum allowed input "
                  f"size of {LIMIT} bytes. Use --http-max-input-size to increase the limit.")


@pytest.mark.parametrize("path,headers,status,text", [
    # All JSON or all raw input: Triton's 400 and texts (QA L0_http http_input_size_limit_test).
    ("/v2/models/simple/infer", {}, 400, JSON_TOO_LARGE),
    ("/v2/models/simple/generate", {}, 400, JSON_TOO_LARGE),
    ("/v2/repository/index", {}, 400, JSON_TOO_LARGE),
    ("/v2/models/identity_fp32/infer", {"Inference-Header-Content-Length": "0"}, 400,
     f"Raw input has a byte_size ({LIMIT + 1} bytes) that exceeds the maximum allowed value of "
     f"{LIMIT} bytes. Use --http-max-input-size to increase the limit."),
    # Binary tensors, which Triton does not bound: tritond's 413.
    ("/v2/models/simple/infer", {"Inference-Header-Content-Length": "10"}, 413,
     f"request body of {LIMIT + 1} bytes exceeds the maximum allowed input size of "
     f"{LIMIT} bytes. Use --http-max-input-size to increase the limit."),
])
def test_oversized_body(server, path, headers, status, text):
    # Content-Length alone is enough for the server to refuse (64 MiB default limit).
    import http.client
    conn = http.client.HTTPConnection(server.url, timeout=10)
    conn.putrequest("POST", path)
    conn.putheader("Content-Length", str(LIMIT + 1))
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())["error"]) == (status, text)
    conn.close()


def test_duplicate_input_names(server):
    inp = {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}
    status, data = raw_post(server, "/v2/models/simple/infer", json.dumps({"inputs": [inp, inp]}))
    assert status == 400 and "INPUT0" in json.loads(data)["error"]


def test_duplicate_output_names(server):
    inps = [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}
            for n in ("INPUT0", "INPUT1")]
    body = json.dumps({"inputs": inps, "outputs": [{"name": "OUTPUT0"}, {"name": "OUTPUT0"}]})
    status, data = raw_post(server, "/v2/models/simple/infer", body)
    assert status == 400 and "OUTPUT0" in json.loads(data)["error"]


def test_fp16_in_json_rejected(server):
    body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [2], "datatype": "FP16", "data": [1, 2]}]})
    status, data = raw_post(server, "/v2/models/identity_fp32/infer", body)
    assert status == 400 and "FP16" in json.loads(data)["error"]


def test_unsupported_content_encoding(server):
    status, data = raw_post(server, "/v2/models/simple/infer", b"{}", {"Content-Encoding": "br"})
    assert status == 501 and "Unsupported compression type" in json.loads(data)["error"]


def test_max_input_size_bounds_the_body_and_the_json(tmp_path):
    """--http-max-input-size bounds the whole body (declared larger: refused at once; all
    JSON: Triton's 400 and text)."""
    from tests.server import REPO, Server
    srv = Server([REPO], "--http-max-input-size=20000")
    try:
        c = httpclient.InferenceServerClient(srv.url)
        x = np.arange(4096, dtype=np.float32)              # 16 KiB of tensor data
        inp = httpclient.InferInput("INPUT0", [x.size], "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_array_equal(c.infer("identity_fp32", [inp]).as_numpy("OUTPUT0"), x)
        inp.set_data_from_numpy(x, binary_data=False)      # the same as JSON: too large
        with pytest.raises(InferenceServerException) as exc:
            c.infer("identity_fp32", [inp])
        assert exc.value.status() == "400" and exc.value.message().startswith(
            "request JSON size of ") and "--http-max-input-size" in exc.value.message()
        c.close()
    finally:
        srv.stop()


def _read_until_closed(sock) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("path,head,body,answer", [
    # QA L0_http test_content_encoding_chunked_manually: `requests` adds Content-Length
    # to a body the caller chunk-encoded itself.
    ("/v2/models/identity_fp32/infer", b"Inference-Header-Content-Length: 0\r\n",
     np.arange(8, dtype=np.float32).tobytes(), np.arange(8, dtype=np.float32).tobytes()),
    ("/v2/repository/index", b"", b'{"ready": true}', b'"name":"simple"'),
])
def test_chunked_body_with_a_content_length_is_read_by_its_chunks(server, path, head, body,
                                                                  answer):
    """Transfer-Encoding wins over Content-Length (RFC 9112 6.1, Triton reads it so); the
    connection then closes, so a request hidden after it is never served."""
    import socket
    chunked = b"%X\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    hidden = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    host, port = server.url.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + head +
                  b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n" % len(chunked) +
                  chunked + hidden)
        reply = _read_until_closed(s)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert reply.count(b"HTTP/1.1") == 1 and answer in reply
    assert b"connection: close" in reply.lower()


def _send_chunks(server, count: int) -> bytes:
    """A raw request to 'simple' whose body is ``count`` one-byte chunks, sent in a few
    large writes; the reply (or what came before the server closed)."""
    import socket
    host, port = server.url.split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\n"
                  b"Inference-Header-Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"
                  b"Connection: close\r\n\r\n")
        try:
            for start in range(0, count, 8192):
                s.sendall(b"1\r\nA\r\n" * min(8192, count - start))
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
        return reply


@pytest.mark.parametrize("count,text", [
    (1 << 16, "[request id: <id_unknown>] Raw request must only have 1 input (found 1) to be "
              "deduced but got 2 inputs in 'simple' model configuration"),
    ((1 << 16) + 1, "Chunked request body exceeds maximum of 65536 non-empty chunks. Send fewer "
                    "or larger HTTP chunks."),
    (1 << 20, "Chunked request body exceeds maximum of 65536 non-empty chunks."),
])
def test_many_chunks(server, count, text):
    """QA L0_http http_request_many_chunks: at most 65536 non-empty chunks are read (that
    request then fails on its own merits); one more is Triton's 400 and the connection
    closes."""
    reply = _send_chunks(server, count)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:300]
    head, _, body = reply.partition(b"\r\n\r\n")
    assert json.loads(body)["error"].startswith(text)
