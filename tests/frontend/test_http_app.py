"""The HTTP app served by real uvicorn, driven by tritonclient; the test plays the scheduler."""
from __future__ import annotations

import asyncio
import gzip
import json
import urllib.error
import urllib.request

import numpy as np

from tritond import messages
import tritonclient.http as httpclient
import uvicorn

from tests.server import free_port     # a port from this xdist worker's slice
from tritond.frontend.http.app import build_app


async def serve(h):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(h.core), host="127.0.0.1", port=port,
                                          loop="none", http="httptools", lifespan="off",
                                          access_log=False, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, f"127.0.0.1:{port}"


async def echo_scheduler(h, n):
    """Answer ``n`` requests: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1."""
    for _ in range(n):
        req = await h.next_request()
        a, b = (h.cache.array(r) for r in req.inputs)
        h.respond(req.rid, [h.output("OUTPUT0", a + b), h.output("OUTPUT1", a - b)])


def http(url, method="GET", body=None, headers=None):
    req = urllib.request.Request("http://" + url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_tritonclient_binary_and_json(harness):
    async def body():
        async with harness() as h:
            server, task, url = await serve(h)
            sched = asyncio.create_task(echo_scheduler(h, 2))

            def client():
                c = httpclient.InferenceServerClient(url)
                a = np.arange(32, dtype=np.int32).reshape(2, 16)
                outs = []
                for binary in (True, False):
                    i0 = httpclient.InferInput("INPUT0", [2, 16], "INT32")
                    i1 = httpclient.InferInput("INPUT1", [2, 16], "INT32")
                    i0.set_data_from_numpy(a, binary_data=binary)
                    i1.set_data_from_numpy(a, binary_data=binary)
                    o = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)]
                    outs.append(c.infer("simple", [i0, i1], outputs=o).as_numpy("OUTPUT0"))
                return a, outs, c.is_server_live(), c.get_model_metadata("simple")
            a, outs, live, md = await asyncio.to_thread(client)
            await sched
            for out in outs:
                np.testing.assert_array_equal(out, a + a)
            assert live and md["name"] == "simple"
            await asyncio.sleep(0.05)
            while not h.sched.empty():
                h.released.append(h.sched.get_nowait())
            # one Release per result, sent to the scheduler (it rides on the next Execute)
            assert [type(m) for m in h.released] == [messages.Release] * 2
            server.should_exit = True
            await task
    asyncio.run(body())


def test_routes_errors_and_compression(harness):
    async def body():
        async with harness() as h:
            server, task, url = await serve(h)
            sched = asyncio.create_task(echo_scheduler(h, 1))

            def calls():
                doc = {"inputs": [{"name": n, "datatype": "INT32", "shape": [1, 16],
                                   "data": list(range(16))} for n in ("INPUT0", "INPUT1")]}
                gz = gzip.compress(json.dumps(doc).encode())
                return {
                    "infer_gz": http(url + "/v2/models/simple/infer", "POST", gz,
                                     {"Content-Encoding": "gzip", "Accept-Encoding": "gzip"}),
                    "br": http(url + "/v2/models/simple/infer", "POST", b"{}",
                               {"Content-Encoding": "br"}),
                    "live": http(url + "/v2/health/live"),
                    "missing": http(url + "/v2/nothing"),
                    "method": http(url + "/v2/health/live", "POST", b""),
                    "unknown": http(url + "/v2/models/nope/ready"),
                    "bad_json": http(url + "/v2/models/simple/infer", "POST", b"{x"),
                    "big": http(url + "/v2/models/simple/infer", "POST", b"x" * 2048),
                    # a repository name: load/unload refuse it (Triton's index ignores it)
                    "repo": http(url + "/v2/repository/r1/models/m/load", "POST", b""),
                    "index": http(url + "/v2/repository/index", "POST", b""),
                    "log": http(url + "/v2/logging"),
                }
            h.core.options.http_max_input_size = 1024
            r = await asyncio.to_thread(calls)
            await sched
            status, headers, data = r["infer_gz"]
            assert status == 200 and headers["content-encoding"] == "gzip"
            out = json.loads(gzip.decompress(data))["outputs"]
            assert out[0]["data"] == [2 * i for i in range(16)]
            assert r["br"][0] == 501 and r["br"][1]["accept-encoding"] == "gzip, deflate"
            assert r["live"][:1] == (200,) and r["live"][2] == b""
            assert r["missing"][0] == 404 and json.loads(r["missing"][2]) == {"error": "Not Found"}
            assert r["method"][0] == 405 and json.loads(r["method"][2]) == {
                "error": "Method Not Allowed"}
            assert r["unknown"][0] == 400 and json.loads(r["unknown"][2]) == {
                "error": "Model version not ready"}         # Triton: unknown is not ready
            assert r["bad_json"][0] == 400 and "failed to parse" in json.loads(r["bad_json"][2])["error"]
            # All JSON (no Inference-Header-Content-Length): Triton's 400 and text.
            assert r["big"][0] == 400 and r["big"][2].decode().startswith(
                '{"error":"request JSON size of 2048 bytes exceeds the maximum allowed input size')
            assert r["repo"][0] == 501
            assert r["index"][0] == 200 and len(json.loads(r["index"][2])) == 2
            assert json.loads(r["log"][2])["log_format"] == "default"
            server.should_exit = True
            await task
    asyncio.run(body())


def test_model_resolved_once_per_request(harness):
    """The infer route looks the model up once and hands it to the core."""
    async def body():
        async with harness() as h:
            calls = []
            real = h.core.models.resolve

            def resolve(name, version=""):
                calls.append((name, version))
                return real(name, version)
            h.core.models.resolve = resolve
            server, task, url = await serve(h)
            sched = asyncio.create_task(echo_scheduler(h, 1))
            a = np.arange(16, dtype=np.int32).reshape(1, 16)

            def client():
                c = httpclient.InferenceServerClient(url)
                ins = [httpclient.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
                for i in ins:
                    i.set_data_from_numpy(a)
                return c.infer("simple", ins, model_version="1").as_numpy("OUTPUT0")
            out = await asyncio.to_thread(client)
            await sched
            np.testing.assert_array_equal(out, a + a)
            assert calls == [("simple", "1")]
            server.should_exit = True
            await task
    asyncio.run(body())
