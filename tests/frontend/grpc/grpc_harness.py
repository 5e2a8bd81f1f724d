"""A real FrontendCore behind a real gRPC server on loopback, for tritonclient tests.

The core's outbox is a :class:`LoopbackWorker`: the one stand-in here, for
the scheduler and worker processes (the lead's integration tests run the real
ones). It reads each Request's inputs from the core's shm arena, writes
identity outputs into its own arena, answers with a Response, frees its
slots on Release, answers stats Queries, and never answers the "slow" model
until that request is cancelled.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import threading

from tritond import messages
from tritond.errors import Code
from tritond.frontend.core import FrontendCore
from tritond.options import Options
from tritond.frontend.grpc.server import serve_grpc
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache

from tests.specs import spec_from_dict

SCHEDULER = "test-scheduler"
_SERVERS = itertools.count()
STATS = {"model_stats": [{
    "name": "identity", "version": "1", "last_inference": 5, "inference_count": 2,
    "execution_count": 1,
    "inference_stats": {k: {"count": 2, "ns": 10} for k in (
        "success", "fail", "queue", "compute_input", "compute_infer", "compute_output",
        "cache_hit", "cache_miss")},
    "response_stats": {"0": {"success": {"count": 1, "ns": 3}}},
    "batch_stats": [{"batch_size": 1, "compute_infer": {"count": 1, "ns": 7}}],
    "memory_usage": []}]}


def config(name: str, datatype: str = "TYPE_FP32"):
    """The spec of a one-input identity model."""
    return spec_from_dict({
        "name": name, "platform": "", "backend": "python", "max_batch_size": 0,
        "input": [{"name": "INPUT0", "data_type": datatype, "dims": ["-1"]}],
        "output": [{"name": "OUTPUT0", "data_type": datatype, "dims": ["-1"]}],
        "version_policy": {"latest": {"num_versions": 1}},
        "instance_group": [{"name": name, "kind": "KIND_CPU", "count": 1}],
    })


W0 = messages.InstanceEntry("w0", "identity_0", "CPU", 0)


def model_table(ready: bool = True) -> messages.ModelTable:
    entry = messages.ModelEntry
    return messages.ModelTable([
        entry("identity", 1, "READY", spec=config("identity"), instances=[W0]),
        entry("strings", 1, "READY", spec=config("strings", "TYPE_STRING"),
              instances=[W0]),
        entry("slow", 1, "READY", spec=config("slow"), instances=[W0]),
        entry("broken", 1, "UNAVAILABLE", reason="load failed", spec=config("broken")),
        entry("listed", -1, "UNKNOWN"),
    ], server_ready=ready)


class LoopbackWorker:
    """The core's outbox; plays scheduler and worker on the core's own event loop."""

    def __init__(self, server_id: str):
        self.core: FrontendCore | None = None
        self.arena = ArenaPool(server_id, "out-test", 1 << 20, reserve=False)
        self.cache = SegmentCache(writable=False)
        self.cancelled: list[int] = []
        self.held: set = set()
        self.slow: set[int] = set()

    def post(self, addr: str, msg) -> None:
        # Answer on a later loop turn, as a real process would.
        asyncio.get_running_loop().call_soon(self._handle, msg)

    def _handle(self, msg) -> None:
        kind = type(msg)
        if kind is messages.Request:
            self._request(msg)
        elif kind is messages.Release:
            for region, offset in msg.slots:
                self.held.discard((region, offset))
                self.arena.free(region, offset)
        elif kind is messages.Cancel:
            self.cancelled.append(msg.rid)
            if msg.rid in self.slow:
                self.slow.discard(msg.rid)
                self._reply(messages.Response(
                    msg.rid, error=messages.ErrorInfo(Code.CANCELLED, "cancelled")))
        elif kind is messages.StatsQuery:
            self._reply(messages.StatsAnswer(msg.qid, STATS))

    def _request(self, req: messages.Request) -> None:
        if req.model == "slow":
            self.slow.add(req.rid)
            return
        outs = []
        for ref in req.inputs:
            src = self.cache.buffer(ref.region, ref.offset, ref.nbytes)
            slot = self.arena.alloc(ref.nbytes)
            slot.view[:] = src
            self.held.add((slot.region, slot.offset))
            outs.append(messages.TensorRef("OUTPUT0", ref.dtype, ref.shape, slot.region,
                                           slot.offset, ref.nbytes))
        self._reply(messages.Response(req.rid, outputs=outs, parameters={"worker": "loopback"},
                                      instance="w0", model_version=req.version))

    def _reply(self, msg) -> None:
        self.core.on_messages([msg])

    def close(self) -> None:
        self.cache.close()
        self.arena.close()


class GrpcServerThread:
    """FrontendCore + serve_grpc on an event loop in a background thread."""

    def __init__(self, **options):
        self.server_id = f"gt{os.getpid()}_{next(_SERVERS)}"   # unique shm names
        self.options = Options(**{"grpc_address": "127.0.0.1", "grpc_port": 0, **options})
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.worker = LoopbackWorker(self.server_id)
        self.core = FrontendCore(self.options, self.worker, self.server_id,
                                 "test-frontend-0", SCHEDULER)
        self.worker.core = self.core
        self.core.on_messages([model_table()])
        self.server = self.call(serve_grpc(self.core, self.options))
        self.url = f"127.0.0.1:{self.server.tritond_port}"

    def call(self, coro, timeout: float = 30.0):
        """Run a coroutine on the server loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def on_loop(self, fn, *args):
        """Run a plain function on the server loop (the core is not thread-safe)."""
        async def run():
            return fn(*args)
        return self.call(run())

    def stop(self) -> None:
        self.call(self.server.stop(0))
        self.on_loop(self.core.close)
        self.on_loop(self.worker.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
