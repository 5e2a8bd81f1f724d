"""HTTP generate / generate_stream (Triton's generate extension) through a real tritond,
with a plain HTTP client reading the Server-Sent Events."""
from __future__ import annotations

import http.client
import json
import time

import pytest

from tests.integration.decoupled_repo import decoupled_repo
from tests.server import Server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("generate")
    flag = tmp / "cancelled.txt"
    repo = decoupled_repo(tmp / "repo", names=["repeat_int32", "misuse", "ticker", "late"],
                          parameters={"ticker": {"FLAG": str(flag)}})
    srv = Server([repo])
    srv.flag = flag
    yield srv
    srv.stop()


def _post(srv, path, doc):
    host, port = srv.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", path, body=json.dumps(doc), headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


def _events(resp) -> list:
    out = []
    for block in resp.read().decode().split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            out.append(json.loads(block[len("data: "):]))
    return out


def test_generate_stream_sends_one_event_per_response(served):
    conn, resp = _post(served, "/v2/models/repeat_int32/generate_stream",
                       {"IN": [7, 8, 9], "DELAY": [0, 0, 0], "WAIT": 0})
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    events = _events(resp)
    assert events == [{"model_name": "repeat_int32", "model_version": "1", "OUT": v, "IDX": i}
                      for i, v in enumerate([7, 8, 9])]
    conn.close()


def test_generate_with_version_and_one_response(served):
    conn, resp = _post(served, "/v2/models/late/versions/1/generate",
                       {"parameters": {"IN": [1.5, 2], "temperature": 0.5}, "id": "42"})
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert json.loads(resp.read()) == {"id": "42", "model_name": "late", "model_version": "1",
                                       "OUT": [3.0, 4.0]}
    conn.close()


def test_generate_refuses_many_responses(served):
    conn, resp = _post(served, "/v2/models/repeat_int32/generate",
                       {"IN": [1, 2], "DELAY": [0, 0], "WAIT": 0})
    assert resp.status == 200       # Triton: the first response set the status already
    assert json.loads(resp.read()) == {"error": (
        "generate expects model to produce exactly 1 response, use generate stream for model "
        "that generates various number of responses")}
    conn.close()


def test_errors_before_inference_are_json_with_their_status(served):
    conn, resp = _post(served, "/v2/models/repeat_int32/generate_stream",
                       {"IN": [1], "DELAY": [0], "WAIT": [0, 0]})
    assert resp.status == 400
    assert resp.getheader("Content-Type") == "application/json"
    assert "The schema can not convert input 'WAIT' to tensor with proper shape" in \
        json.loads(resp.read())["error"]
    conn.close()
    conn, resp = _post(served, "/v2/models/nothing/generate", {"IN": [1]})
    assert resp.status >= 400 and "error" in json.loads(resp.read())
    conn.close()
    conn, resp = _post(served, "/v2/models/late/generate", {"IN": [1, 2], "bad": [1, 2]})
    assert resp.status == 400
    assert json.loads(resp.read())["error"] == (
        "parameter 'bad' has invalid type. It should be either 'int', 'bool', or 'string'.")
    conn.close()


def test_an_error_mid_stream_is_an_sse_error_event(served):
    conn, resp = _post(served, "/v2/models/misuse/generate_stream", {"MODE": 2})
    assert resp.status == 200
    events = _events(resp)
    assert [e.get("OUT", e.get("error")) for e in events] == ["one", "bad second response",
                                                               "three"]
    conn.close()


def test_a_client_disconnect_cancels_the_model(served):
    conn, resp = _post(served, "/v2/models/ticker/generate_stream", {"IN": 0})
    assert resp.status == 200
    assert resp.read(6) == b"data: "          # chunked: http.client de-chunks
    conn.sock.shutdown(2)
    conn.close()
    deadline = time.monotonic() + 10
    while not served.flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.flag.read_text().startswith("cancelled after")


def test_http_infer_on_a_decoupled_model_fails_as_triton(served):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(served.url)
    t = httpclient.InferInput("IN", [1], "INT32")
    t.set_data_from_numpy(__import__("numpy").array([1], "int32"))
    with pytest.raises(InferenceServerException) as err:
        client.infer("ticker", [t])
    assert err.value.message() == ("HTTP end point doesn't support models with decoupled "
                                   "transaction policy")
    assert err.value.status() == "501"         # UNSUPPORTED, as Triton's HttpCodeFromError
