"""A real FrontendCore wired to real channels: the test plays scheduler and worker."""
from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

import numpy as np
import pytest

from tritond import channel, messages
from tritond.frontend.core import FrontendCore
from tritond.options import Options
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache

from tests.specs import spec_from_dict


def _io(name, dtype, dims, **kw):
    return {"name": name, "data_type": dtype, "dims": dims, **kw}


CONFIGS = {
    "simple": {"name": "simple", "platform": "", "backend": "onnxruntime", "max_batch_size": 8,
               "input": [_io("INPUT0", "TYPE_INT32", [16]), _io("INPUT1", "TYPE_INT32", [16])],
               "output": [_io("OUTPUT0", "TYPE_INT32", [16]), _io("OUTPUT1", "TYPE_INT32", [16])]},
    "strings": {"name": "strings", "backend": "python", "max_batch_size": 0,
                "input": [_io("IN", "TYPE_STRING", [-1]),
                          _io("OPT", "TYPE_FP32", [2, -1], optional=True)],
                "output": [_io("OUT", "TYPE_STRING", [-1]), _io("SCORES", "TYPE_FP32", [4])]},
}


def table(server_ready=True, extra=()):
    models = [messages.ModelEntry(n, 1, "READY", spec=spec_from_dict(c)) for n, c in CONFIGS.items()]
    models += list(extra)
    return messages.ModelTable(models, server_ready)


class Harness:
    """Scheduler and worker inboxes collecting messages, a core, and a worker output pool."""

    def __init__(self, options=None):
        self.sid = "t" + uuid.uuid4().hex[:10]
        # Client shm off unless a test turns it on (what the dict options meant before).
        self.options = Options(**{"allow_client_shm": False, **(options or {})})
        self.sched_addr = channel.address(self.sid, "scheduler")
        self.worker_addr = channel.address(self.sid, "w0")
        self.sched: asyncio.Queue = asyncio.Queue()
        self.worker: asyncio.Queue = asyncio.Queue()
        self.released: list = []          # Releases the scheduler queue also carried
        self.outbox = channel.AsyncOutbox()
        self.core = FrontendCore(self.options, self.outbox, self.sid,
                                 channel.address(self.sid, "frontend-0"), self.sched_addr)
        self.core.on_messages([table()])
        self.pool = ArenaPool(self.sid, "out-w0", 1 << 20)
        self.cache = SegmentCache()
        self._inboxes = []

    async def start(self):
        for addr, q in ((self.sched_addr, self.sched), (self.worker_addr, self.worker)):
            inbox = channel.AsyncInbox(addr, messages.TO_SCHEDULER,
                                       lambda msgs, q=q: [q.put_nowait(m) for m in msgs])
            await inbox.start()
            self._inboxes.append(inbox)
        inbox = channel.AsyncInbox(self.core.address, messages.TO_FRONTEND, self.core.on_messages,
                                   outbox=self.outbox)
        await inbox.start()
        self._inboxes.append(inbox)

    async def next_request(self, timeout=5.0) -> messages.Request:
        """The next message the scheduler got (Releases, which also go there, are set aside)."""
        while True:
            msg = await asyncio.wait_for(self.sched.get(), timeout)
            if type(msg) is not messages.Release:
                return msg
            self.released.append(msg)

    def output(self, name, arr) -> messages.TensorRef:
        """Write ``arr`` into a worker-owned slot, as a worker would."""
        data = arr.tobytes()
        slot = self.pool.alloc(len(data))
        slot.view[:] = data
        dtype = {"int32": "INT32", "float32": "FP32"}[str(arr.dtype)]
        return slot.ref(name, dtype, list(arr.shape))

    def respond(self, rid, outputs=(), error=None):
        """Post a Response to the core over the real channel."""
        self.outbox.post(self.core.address, messages.Response(
            rid, error, list(outputs), {}, self.worker_addr if outputs else "", 1))

    def close(self):
        for inbox in self._inboxes:
            inbox.close()
        self.outbox.close()
        self.core.close()
        self.pool.close()
        self.cache.close()


@pytest.fixture
def harness():
    """``async with harness() as h`` inside ``asyncio.run``."""
    @contextlib.asynccontextmanager
    async def make(options=None):
        h = Harness(options)
        await h.start()
        try:
            yield h
        finally:
            h.close()
    return make


def int_input(name, batch=1, n=16, start=0):
    from tritond.frontend.types import InputTensor
    arr = np.arange(start, start + batch * n, dtype=np.int32).reshape(batch, n)
    return InputTensor(name, "INT32", [batch, n], arr.tobytes())


def leaked_segments(sid):
    return [e for e in os.listdir("/dev/shm") if e.startswith(f"tritond-{sid}-")]
