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

``--loop`` also times the worker's loop turn around it: the real
``WorkerProc`` (its ``_handle``, the batch runner, the end-of-turn flush with
one frame per peer) on a real endpoint whose sends are only framed and
encoded, never written: the per-request Python the first figure skips, still
without the poll and the socket calls (``bench/worker_loop.py`` has those).
"""
from __future__ import annotations

import argparse
import logging
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
    ap.add_argument("--loop", action="store_true", help="also time WorkerProc's loop turn")
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
        if args.loop:
            turn, close = loop_turn(model_dir, spec, fe, wire)
            try:
                bare, looped = alternate(one, turn)
            finally:
                close()
            print(f"alternating, thread CPU, best of 40 x 1,000: path {bare * 1e6:.1f} us, "
                  f"worker loop turn (decode, WorkerProc._handle, flush) {looped * 1e6:.1f} us, "
                  f"loop's own {(looped - bare) * 1e6:.1f} us per request")
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(lambda: [one() for _ in range(5000)])
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    finally:
        fe.close()
        pool.close()
        cache.close()
    return 0


def alternate(one, turn, blocks: int = 40, n: int = 1000) -> tuple[float, float]:
    """Best thread-CPU seconds per call of ``one`` and of ``turn``, blocks taken in turn
    (a neighbour's burst then slows both alike instead of one of them)."""
    best = [float("inf"), float("inf")]
    for _ in range(blocks):
        for k, fn in enumerate((one, turn)):
            t0 = time.thread_time()
            for _ in range(n):
                fn()
            best[k] = min(best[k], (time.thread_time() - t0) / n)
    return best[0], best[1]


def loop_turn(model_dir: pathlib.Path, spec, fe: ArenaPool, wire: bytes):
    """The real worker's turn (decode, handle, flush) as a callable, and its closer."""
    from tritond import channel
    from tritond.endpoint import SyncEndpoint
    from tritond.procutil import Bootstrap
    from tritond.workers.main import INBOX, WorkerProc

    sid = "b" + uuid.uuid4().hex[:10]
    boot = Bootstrap(role="worker", name="w1", address=channel.address(sid, "w1"),
                     parent=channel.address(sid, "parent"), server_id=sid, parent_pid=0)
    ep = SyncEndpoint(boot.address, INBOX)
    sent = []

    def send_now(addr, msgs) -> None:    # framed and encoded as for the socket, not written
        frame(messages.encode(msgs if type(msgs) is list else list(msgs)))
        sent.append(msgs)
    ep.send_now = send_now
    proc = WorkerProc(boot, ep, logging.getLogger("bench"))
    proc._setup(messages.Setup(options=Options(), server_id=sid, parent=boot.parent,
                               scheduler=channel.address(sid, "scheduler"),
                               frontends=[channel.address(sid, "frontend-0")]))
    proc._load(messages.Load("add_sub", 1, "add_sub_0_0", "CPU", 0, spec, str(model_dir),
                             str(model_dir.parent)))
    decoder = InboxDecoder(messages.TO_WORKER, "worker")
    response = messages.Response

    def turn() -> None:
        batch = decoder.decode(wire)
        proc._handle(batch)
        proc._streamed()
        ep.flush()
        for msgs in sent:      # the frontend's Release (the next Execute carries it)
            for m in msgs:
                if type(m) is response:
                    proc._release([(o.region, o.offset) for o in m.outputs])
        sent.clear()

    def close() -> None:
        proc._close()
        ep.close()
    for _ in range(200):
        turn()
    return turn, close


if __name__ == "__main__":
    sys.exit(main())
