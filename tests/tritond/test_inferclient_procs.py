"""InferClient outside the frontend, against a real scheduler and a real worker process.

The test plays the parent (Setup, Load, the model table) and is itself a
plain client process: it binds its own inbox address and runs the ``simple``
model through InferClient, once on an event loop (unary and stream) and once
without one (a blocking endpoint, as a worker calling BLS would).
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import queue
import time
import uuid

import numpy as np
import pytest

from tests.server import REPO
from tests.specs import spec_from_dict
from tritond import channel, messages
from tritond.endpoint import SyncEndpoint
from tritond.options import Options
from tritond.inferclient import InferClient
from tritond.procutil import Bootstrap
from tritond.scheduler import proc as scheduler_proc
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache
from tritond.workers import main as worker_main

pytestmark = pytest.mark.timeout(120)


def expect(endpoint: SyncEndpoint, kind, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in endpoint.recv(timeout=0.2):
            assert isinstance(msg, kind), f"expected {kind.__name__}, got {msg!r}"
            return msg
    raise AssertionError(f"no {kind.__name__} within {timeout}s")


@pytest.fixture
def server():
    """Scheduler + one ``simple`` worker, started and set up by this process as their parent."""
    sid = "t" + uuid.uuid4().hex[:10]
    addr = {r: channel.address(sid, r) for r in ("parent", "scheduler", "w0", "client", "bls")}
    parent = SyncEndpoint(addr["parent"], messages.TO_PARENT)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    try:
        for role, name, target in (("scheduler", "scheduler", scheduler_proc.main),
                                   ("worker", "w0", worker_main.main)):
            boot = Bootstrap(role=role, name=name, address=addr[name], parent=addr["parent"],
                             server_id=sid, parent_pid=os.getpid())
            procs.append(ctx.Process(target=target, args=(boot,), daemon=True))
            procs[-1].start()
            assert expect(parent, messages.Hello).address == addr[name]
        setup = messages.Setup(options=Options(output_arena_byte_size=1 << 20), server_id=sid,
                               parent=addr["parent"], scheduler=addr["scheduler"],
                               frontends=[addr["client"], addr["bls"]])
        parent.send_now(addr["scheduler"], [setup])
        model = REPO / "simple"
        parent.send_now(addr["w0"], [setup, messages.Load(
            model="simple", version=1, instance="simple_0_0", kind="CPU", device_id=0,
            spec=spec_from_dict({"name": "simple", "backend": "onnxruntime", "max_batch_size": 8,
                                 "dynamic_batching": {}}),
            model_dir=str(model), repository=str(REPO), auto_complete=True)])
        loaded = expect(parent, messages.Loaded)
        parent.send_now(addr["scheduler"], [messages.ModelTable([messages.ModelEntry(
            "simple", 1, "READY", spec=spec_from_dict(json.loads(loaded.config), 1),
            instances=[messages.InstanceEntry(addr["w0"], "simple_0_0", "CPU", 0)])], True)])
        yield sid, addr
        for name in ("w0", "scheduler"):
            parent.send_now(addr[name], [messages.Shutdown("test")])
            expect(parent, messages.Stopped)
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)
        parent.close()
    assert [n for n in os.listdir("/dev/shm") if n.startswith(f"tritond-{sid}-")] == []


def stage_request(client: InferClient, a: np.ndarray, b: np.ndarray):
    slots: list = []
    refs = [client.stage(n, "INT32", list(x.shape), x.tobytes(), x.nbytes, slots)
            for n, x in (("INPUT0", a), ("INPUT1", b))]
    return messages.Request(0, "", "simple", 1, refs, batch=a.shape[0],
                            arrival_ns=time.monotonic_ns()), slots


def outputs(cache: SegmentCache, resp: messages.Response) -> dict:
    assert resp.error is None, resp.error
    return {r.name: cache.array(r).copy() for r in resp.outputs}


def test_infer_client_on_an_event_loop(server):
    sid, addr = server
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.full((2, 16), 5, dtype=np.int32)

    async def body():
        outbox = channel.AsyncOutbox()
        arena = ArenaPool(sid, "client", 1 << 20)
        cache = SegmentCache(writable=False)
        client = InferClient(outbox.post, addr["client"], addr["scheduler"], arena, cache)

        def on_messages(msgs):
            for msg in msgs:
                assert type(msg) is messages.Response, msg
                client.on_response(msg)

        inbox = channel.AsyncInbox(addr["client"], messages.TO_FRONTEND, on_messages)
        await inbox.start()
        try:
            placed = []
            for _ in range(3):
                req, slots = stage_request(client, a, b)
                resp = await asyncio.wait_for(client.submit(req, slots), 30)
                out = outputs(cache, resp)
                np.testing.assert_array_equal(out["OUTPUT0"], a + b)
                np.testing.assert_array_equal(out["OUTPUT1"], a - b)
                assert resp.final and resp.instance == addr["w0"]
                assert arena.stats()["live"] == 0
                placed.append(sorted((r.region, r.offset) for r in resp.outputs))
                client.releaser(resp)()
            # The Release rode on the next Request through the scheduler to the
            # worker, which freed the slots before writing the next outputs there.
            assert placed[0] == placed[1] == placed[2]

            req, slots = stage_request(client, a[:1], b[:1])
            got = []
            async for resp in client.stream(req, slots):
                got.append((outputs(cache, resp)["OUTPUT0"].tolist(), resp.final))
                client.releaser(resp)()
            assert got == [((a[:1] + b[:1]).tolist(), True)]

            bad = messages.Request(0, "", "nope", 1, [])
            resp = await asyncio.wait_for(client.submit(bad, []), 30)
            assert resp.error is not None and "nope" in resp.error.message
            await asyncio.sleep(0.05)               # the linger timer sends the releases
            assert client.in_flight == 0 and client.pending == {}
        finally:
            inbox.close()
            outbox.close()
            cache.close()
            arena.close()
    asyncio.run(body())


def test_infer_client_without_an_event_loop(server):
    """The BLS shape: a blocking endpoint, a callback, explicit flushes."""
    sid, addr = server
    ep = SyncEndpoint(addr["bls"], messages.TO_FRONTEND)
    arena = ArenaPool(sid, "bls", 1 << 20)
    cache = SegmentCache(writable=False)
    client = InferClient(ep.post, addr["bls"], addr["scheduler"], arena, cache, linger_s=None)
    try:
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        for _ in range(2):
            got: queue.SimpleQueue = queue.SimpleQueue()
            req, slots = stage_request(client, a, a)
            client.stream(req, slots, callback=got.put)
            ep.flush()
            deadline = time.monotonic() + 30
            while got.empty() and time.monotonic() < deadline:
                for msg in ep.recv(timeout=0.2):
                    client.on_response(msg)
            resp = got.get_nowait()
            np.testing.assert_array_equal(outputs(cache, resp)["OUTPUT0"], a + a)
            assert resp.final and arena.stats()["live"] == 0
            client.releaser(resp)()
            client.flush_releases()
            ep.flush()
        assert client.in_flight == 0 and client.loop is None
    finally:
        ep.close()
        cache.close()
        arena.close()
