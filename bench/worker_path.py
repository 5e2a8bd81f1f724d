#!/usr/bin/env python3
"""The worker's in-process cost of one add_sub request (issue 15).

    bench/worker_path.py [--repository /tmp/tritond-anchors/models/triton] [--profile]

Decodes an Execute frame, runs ``Executor.run`` on the Python backend (the
repository's ``add_sub``: two FP32 [16] inputs), encodes the Response and the
Executed frames and releases the output slots: everything the worker does per
request except its poll and its socket calls. Prints the best of 5 x 5,000
requests in microseconds; ``--profile`` adds cProfile's top functions.
No server, no sockets: a steady measure of the worker's Python per request on a
host where whole-server CPU figures swing.
"""
from __future__ import annotations

import argparse
import cProfile
import pathlib
import pstats
import sys
import time
import uuid

import numpy as np

from tritond import messages, repository
from tritond.decoding import InboxDecoder
from tritond.framing import frame
from tritond.options import Options
from tritond.repository.modelconfig import parse_pbtxt
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache, write_array
from tritond.workers.backend import LoadContext
from tritond.workers.executor import Executor
from tritond.workers.outputs import OutputWriter
from tritond.workers.python.backend import PythonBackend
from tritond.workers.shapes import ModelIO


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repository", default="/tmp/tritond-anchors/models/triton")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    model_dir = pathlib.Path(args.repository) / "add_sub"
    cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text(), "add_sub config")
    repository.normalize(cfg)
    spec = repository.spec_from_config(cfg, 1)
    ctx = LoadContext("add_sub", 1, "add_sub_0", "CPU", 0, str(model_dir),
                      str(model_dir.parent), Options())
    backend = PythonBackend(ctx)
    backend.load(spec)
    sid = uuid.uuid4().hex
    fe, pool, cache = ArenaPool(sid, "fe", 1 << 22), ArenaPool(sid, "w", 1 << 24), SegmentCache()
    writer = OutputWriter(pool, cache)
    ex = Executor(backend, ModelIO(spec), cache, writer, "@w", None)
    refs = []
    for name in ("INPUT0", "INPUT1"):
        slot = fe.alloc(64)
        write_array(slot.view, np.ones(16, np.float32))
        refs.append(slot.ref(name, "FP32", [16]))
    wire = messages.encode([messages.Execute(1, [messages.Request(1, "fe", "add_sub", 1, refs,
                                                                  [], 0)])])
    decoder = InboxDecoder(messages.TO_WORKER, "worker")

    def one() -> None:
        (batch,) = decoder.decode(wire)
        responses, executed = ex.run(batch)
        for _, resp in responses:
            assert resp.error is None, resp.error
            frame(messages.encode([resp]))
            for o in resp.outputs:
                writer.release(o.region, o.offset)
        frame(messages.encode([executed]))

    try:
        for _ in range(200):
            one()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(5000):
                one()
            best = min(best, time.perf_counter() - t0)
        print(f"decode + execute + encode + release: {best / 5000 * 1e6:.1f} us per request")
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(lambda: [one() for _ in range(5000)])
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    finally:
        fe.close()
        pool.close()
        cache.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
