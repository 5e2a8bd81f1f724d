"""Names in URL paths are taken as sent, %-escapes and all, as Triton does.

Triton's HTTP server matches its route regexes against libevhtp's
``req->uri->path->full``, the path exactly as it arrived (nothing unescapes
it), so ``/v2/models/a%20b/ready`` asks about model "a%20b", not "a b". The
same holds for every route that takes a name from the path: model routes
(both infer paths: the protocol's direct one and the ASGI one a query string
takes), repository load/unload and shared-memory regions.
"""
from __future__ import annotations

import http.client
import json
import os

import posix_ipc
import pytest

from tests.server import Server
from tests.workers import models
from tritond.repository.modelconfig import from_dict, to_pbtxt

ESCAPED = "x%20y"        # a model directory whose name holds a literal "%20"
SPACED = "a b"           # a model whose name needs escaping in a URL
BODY = {"inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}


def _model(root, name):
    models.identity_fp32(root, name)
    (root / name / "config.pbtxt").write_text(to_pbtxt(from_dict({
        "name": name, "backend": "onnxruntime", "max_batch_size": 8,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
        "instance_group": [{"kind": "KIND_CPU", "count": 1}]})))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("rawnames")
    _model(root, ESCAPED)
    _model(root, SPACED)
    server = Server([root], "--model-control-mode=explicit", "--load-model=*",
                    "--allow-client-shm=true")
    yield server
    server.stop()


def _http(srv, method: str, path: str, body=None) -> tuple[int, dict]:
    host, port = srv.url.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        c.request(method, path, body=None if body is None else json.dumps(body))
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    return r.status, json.loads(data) if data else {}


def _unknown(srv, method: str, path: str, name: str, body=None) -> None:
    """``path`` answers exactly as for a model nobody has, named ``name``."""
    got = _http(srv, method, path, body)
    status, doc = _http(srv, method, path.replace(name, "nosuch", 1), body)
    assert got == (status, json.loads(json.dumps(doc).replace("nosuch", name))), got
    assert status >= 400, (status, doc)


def test_escaped_directory_name_is_served_as_such(srv):
    assert _http(srv, "GET", f"/v2/models/{ESCAPED}/ready")[0] == 200
    status, doc = _http(srv, "GET", f"/v2/models/{ESCAPED}")
    assert (status, doc["name"]) == (200, ESCAPED)
    assert _http(srv, "GET", f"/v2/models/{ESCAPED}/config")[1]["name"] == ESCAPED
    for query in ("", "?q=1"):          # the direct infer path, then the ASGI one
        status, doc = _http(srv, "POST", f"/v2/models/{ESCAPED}/infer{query}", BODY)
        assert (status, doc["model_name"], doc["outputs"][0]["data"]) == (200, ESCAPED, [1, 2])
    rows = _http(srv, "POST", "/v2/repository/index")[1]
    assert {r["name"] for r in rows} == {ESCAPED, SPACED}


def test_escapes_are_not_decoded(srv):
    # "a%20b" is not "a b", and "x%2520y" is not "x%20y"
    for name in ("a%20b", "x%2520y"):
        _unknown(srv, "GET", f"/v2/models/{name}/ready", name)
        _unknown(srv, "GET", f"/v2/models/{name}", name)
        _unknown(srv, "GET", f"/v2/models/{name}/config", name)
        _unknown(srv, "GET", f"/v2/models/{name}/stats", name)
        _unknown(srv, "GET", f"/v2/models/{name}/versions/1/ready", name)
        for query in ("", "?q=1"):
            _unknown(srv, "POST", f"/v2/models/{name}/infer{query}", name, BODY)
        _unknown(srv, "POST", f"/v2/repository/models/{name}/load", name)
    # a "/" escaped stays inside the name instead of splitting the path
    _unknown(srv, "GET", "/v2/models/a%2Fb/ready", "a%2Fb")


def test_load_and_unload_take_the_escaped_name(srv):
    assert _http(srv, "POST", f"/v2/repository/models/{ESCAPED}/unload")[0] == 200
    assert _http(srv, "GET", f"/v2/models/{ESCAPED}/ready")[0] != 200
    assert _http(srv, "POST", f"/v2/repository/models/{ESCAPED}/load")[0] == 200
    assert _http(srv, "GET", f"/v2/models/{ESCAPED}/ready")[0] == 200


def test_shared_memory_region_names_are_taken_as_sent(srv):
    key = f"/rawnames-{os.getpid()}"
    seg = posix_ipc.SharedMemory(key, posix_ipc.O_CREX, size=64)
    base = "/v2/systemsharedmemory"
    try:
        body = {"key": key, "byte_size": 64}
        assert _http(srv, "POST", f"{base}/region/r%20s/register", body)[0] == 200
        status, rows = _http(srv, "GET", f"{base}/region/r%20s/status")
        assert (status, [r["name"] for r in rows]) == (200, ["r%20s"])
        assert _http(srv, "GET", f"{base}/region/r%2520s/status")[0] == 404
        assert _http(srv, "POST", f"{base}/region/r%20s/unregister")[0] == 200
        assert _http(srv, "GET", f"{base}/status")[1] == []
    finally:
        seg.close_fd()
        seg.unlink()
