"""Helpers for worker tests: load contexts, requests, and a frontend stand-in over real shm."""
from __future__ import annotations

import os
import uuid

import numpy as np

from tritond import messages
from tritond.shm import dtypes
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache, array_nbytes, write_array
from tritond.options import Options
from tritond.workers.backend import LoadContext, WorkRequest


def context(model_dir, version: int = 1, options: dict | None = None, kind: str = "CPU") -> LoadContext:
    model_dir = str(model_dir)
    return LoadContext(model=os.path.basename(model_dir), version=version,
                       instance=f"{os.path.basename(model_dir)}_0_0", kind=kind, device_id=0,
                       model_dir=model_dir, repository=os.path.dirname(model_dir),
                       options=Options(**(options or {})))


def request(rid: int = 1, outputs=(), batch: int = 0, **fields) -> messages.Request:
    return messages.Request(rid=rid, frontend="fe", model="m", version=1, inputs=[],
                            outputs=[messages.OutputSpec(o) for o in outputs], batch=batch,
                            **fields)


def work(inputs: dict, outputs: list[str], rid: int = 1, **fields) -> WorkRequest:
    refs = [messages.TensorRef(n, dtypes.from_numpy(a.dtype), list(a.shape), "", 0, 0)
            for n, a in inputs.items()]
    req = request(rid, **fields)
    req.inputs = refs
    return WorkRequest(req, inputs, outputs)


class Frontend:
    """Plays the frontend's data-path role: stages inputs in a real arena, reads outputs."""

    def __init__(self) -> None:
        self.server_id = "t" + uuid.uuid4().hex[:10]
        self.pool = ArenaPool(self.server_id, "fe", 1 << 20)
        self.cache = SegmentCache()

    def stage(self, name: str, arr: np.ndarray) -> messages.TensorRef:
        dtype = dtypes.from_numpy(arr.dtype)
        slot = self.pool.alloc(array_nbytes(arr, dtype))
        write_array(slot.view, arr)
        return slot.ref(name, dtype, list(arr.shape))

    def request(self, rid: int, inputs: dict, outputs=(), batch: int = 0, dests=None):
        dests = dests or {}
        return messages.Request(
            rid=rid, frontend="fe", model="m", version=1,
            inputs=[self.stage(n, a) for n, a in inputs.items()],
            outputs=[messages.OutputSpec(o, dests.get(o)) for o in outputs], batch=batch)

    def read(self, ref: messages.TensorRef) -> np.ndarray:
        return self.cache.array(ref).copy()

    def close(self) -> None:
        self.cache.close()
        self.pool.close()


def shm_leftovers(server_id: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"tritond-{server_id}-")]

