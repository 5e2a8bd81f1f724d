"""frontend/http/exchange.py under real uvicorn with the frontend's protocol class; the
test plays the scheduler. Framing cases over a whole server: tests/integration/test_http_exchange.py."""
from __future__ import annotations

import asyncio
import json

import uvicorn

from tritond import messages
from tritond.frontend.http.app import build_app, build_protocol
from tritond.frontend.http.exchange import InferExchange

from tests.frontend.test_http_app import echo_scheduler, free_port

BODY = json.dumps({"inputs": [
    {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [2] * 16},
    {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": [3] * 16}]}).encode()
HEAD = b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(BODY)


async def serve(h):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(h.core), host="127.0.0.1", port=port,
                                          loop="none", http=build_protocol(h.core),
                                          lifespan="off", access_log=False, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, port


async def stop(server, task):
    server.should_exit = True
    await task


async def answer(reader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


def test_infer_is_an_exchange_and_other_routes_are_asgi(harness):
    async def body():
        async with harness() as h:
            server, task, port = await serve(h)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"\r\n" + BODY[:10])
            await writer.drain()
            await asyncio.sleep(0.05)
            (proto,) = server.server_state.connections
            assert type(proto.cycle) is InferExchange      # waiting for the rest of its body
            sched = asyncio.create_task(echo_scheduler(h, 1))
            writer.write(BODY[10:])
            head, data = await answer(reader)
            await sched
            assert head.startswith(b"HTTP/1.1 200 ") and b"content-type: application/json" in head
            assert json.loads(data)["outputs"][0]["data"] == [5] * 16
            writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _ = await answer(reader)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert type(proto.cycle) is not InferExchange
            writer.close()
            await stop(server, task)
    asyncio.run(body())


def test_a_client_that_leaves_cancels_its_request(harness):
    async def body():
        async with harness() as h:
            server, task, port = await serve(h)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"\r\n" + BODY)
            req = await h.next_request()
            writer.close()                      # gone while the request runs
            cancel = await h.next_request()
            assert type(cancel) is messages.Cancel and cancel.rid == req.rid
            await stop(server, task)
    asyncio.run(body())


def test_restricted_inference_goes_through_the_asgi_wrapper(harness):
    async def body():
        async with harness({"http_restricted_api": ["inference:k=v"]}) as h:
            assert build_protocol(h.core).core is None
            server, task, port = await serve(h)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"\r\n" + BODY)
            head, data = await answer(reader)
            assert head.startswith(b"HTTP/1.1 403 ") and b"expecting header 'k'" in data
            sched = asyncio.create_task(echo_scheduler(h, 1))
            writer.write(HEAD + b"k: v\r\n\r\n" + BODY)
            head, data = await answer(reader)
            await sched
            assert head.startswith(b"HTTP/1.1 200 ")
            writer.close()
            await stop(server, task)
    asyncio.run(body())


def test_uvicorn_tracks_the_request_while_it_runs(harness):
    async def body():
        async with harness() as h:
            server, task, port = await serve(h)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"\r\n" + BODY)
            req = await h.next_request()
            (running,) = server.server_state.tasks     # what a graceful shutdown waits on
            assert not running.done()
            h.respond(req.rid, [h.output("OUTPUT0", h.cache.array(req.inputs[0]))])
            head, _ = await answer(reader)
            assert head.startswith(b"HTTP/1.1 200 ")
            await asyncio.sleep(0)                      # its done-callback
            assert running.done() and not server.server_state.tasks
            writer.close()
            await stop(server, task)
    asyncio.run(body())


def test_a_client_that_leaves_mid_body_starts_nothing(harness):
    async def body():
        async with harness() as h:
            server, task, port = await serve(h)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"\r\n" + BODY[:10])
            await writer.drain()
            writer.close()
            while server.server_state.connections:
                await asyncio.sleep(0.01)
            assert not server.server_state.tasks
            sched = asyncio.create_task(echo_scheduler(h, 1))   # the next request is the
            reader, writer = await asyncio.open_connection("127.0.0.1", port)   # first to come
            writer.write(HEAD + b"\r\n" + BODY)
            head, _ = await answer(reader)
            await sched
            assert head.startswith(b"HTTP/1.1 200 ")
            writer.close()
            await stop(server, task)
    asyncio.run(body())


def test_shutdown_waits_for_a_request_in_flight(harness):
    async def body():
        async with harness() as h:
            server, task, port = await serve(h)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"\r\n" + BODY)
            req = await h.next_request()
            server.should_exit = True
            await asyncio.sleep(0.3)              # past uvicorn's first look at its tasks
            assert not task.done()
            h.respond(req.rid, [h.output("OUTPUT0", h.cache.array(req.inputs[0]))])
            head, _ = await answer(reader)
            assert head.startswith(b"HTTP/1.1 200 ") and b"connection: close" in head
            await task
    asyncio.run(body())


def test_graceful_shutdown_timeout_cancels_the_request(harness):
    async def body():
        async with harness() as h:
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(
                build_app(h.core), host="127.0.0.1", port=port, loop="none",
                http=build_protocol(h.core), lifespan="off", access_log=False,
                log_level="critical", timeout_graceful_shutdown=0.2))
            task = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"\r\n" + BODY)
            req = await h.next_request()
            server.should_exit = True
            cancel = await h.next_request()
            assert type(cancel) is messages.Cancel and cancel.rid == req.rid
            await task
            writer.close()
    asyncio.run(body())


BINARY_OUT = json.dumps({"inputs": json.loads(BODY)["inputs"], "outputs": [
    {"name": "OUTPUT0", "parameters": {"binary_data": True}}, {"name": "OUTPUT1"}]}).encode()


async def _answers(h, extra: bytes) -> list:
    """Heads (without the date line) and bodies of a JSON and a binary-output answer."""
    server, task, port = await serve(h)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = []
    for body in (BODY, BINARY_OUT):
        sched = asyncio.create_task(echo_scheduler(h, 1))
        writer.write(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d"
                     b"\r\n\r\n%s" % (extra, len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        length = head.split(b"\r\ncontent-length: ")[1].split(b"\r\n")[0]
        data = await reader.readexactly(int(length))
        await sched
        got.append((b"\r\n".join(line for line in head.split(b"\r\n")
                                 if not line.startswith(b"date: ")), data))
    writer.close()
    await stop(server, task)
    return got


def test_the_exchange_writes_the_answer_the_asgi_path_writes(harness):
    async def body():
        async with harness() as h:
            exchange = await _answers(h, b"")
        async with harness({"http_restricted_api": ["inference:k=v"]}) as h:
            asgi = await _answers(h, b"k: v\r\n")
        assert exchange == asgi
        (json_head, _), (binary_head, binary) = exchange
        assert json_head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-type: application/octet-stream\r\ninference-header-content-length: " \
            in binary_head
        hlen = int(binary_head.split(b"inference-header-content-length: ")[1].split(b"\r\n")[0])
        assert json.loads(binary[:hlen])["outputs"][0]["parameters"] == {"binary_data_size": 64}
        assert len(binary) == hlen + 64
    asyncio.run(body())
