#!/usr/bin/env python3
"""The worker's cost of one ``direct`` sequence batch, in-process (issue 11, item 6).

    bench/sequence_rows.py [--slots 32] [--ready 6] [--batches 2000]

Runs ``workers.executor.Executor.run`` on Execute batches of ``--slots`` rows of which
``--ready`` are real requests (spread over the slots, as 32 sequences stepping out of
phase leave them) and the rest not-ready rows, on bench/sequences.py's Python
accumulator (START/END/READY int32, CORRID uint64). Prints microseconds per batch and
per real row. No server, no sockets: what the sequence path costs inside the worker
(control inputs, not-ready rows, the Python backend's per-row objects, output writes).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
import uuid

import msgspec
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sequences import CONFIG, MODEL_PY  # noqa: E402

from tritond import messages  # noqa: E402
from tritond.options import Options  # noqa: E402
from tritond import repository  # noqa: E402
from tritond.repository.modelconfig import parse_pbtxt  # noqa: E402
from tritond.shm.arena import ArenaPool  # noqa: E402
from tritond.shm.views import SegmentCache, array_nbytes, write_array  # noqa: E402
from tritond.workers.backend import LoadContext  # noqa: E402
from tritond.workers.executor import Executor  # noqa: E402
from tritond.workers.outputs import OutputWriter  # noqa: E402
from tritond.workers.python.backend import PythonBackend  # noqa: E402
from tritond.workers.sequence import SequenceIO  # noqa: E402
from tritond.workers.shapes import ModelIO  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument("--ready", type=int, default=6)
    ap.add_argument("--batches", type=int, default=2000)
    args = ap.parse_args()
    server_id = uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp) / "seq_accum"
        (d / "1").mkdir(parents=True)
        (d / "config.pbtxt").write_text(CONFIG)
        (d / "1" / "model.py").write_text(MODEL_PY)
        cfg = parse_pbtxt(CONFIG, "bench config")
        repository.normalize(cfg)
        spec = repository.spec_from_config(cfg, 1)
        ctx = LoadContext("seq_accum", 1, "seq_accum_0", "CPU", 0, str(d), tmp, Options())
        backend = PythonBackend(ctx)
        backend.load(spec)
        fe_pool = ArenaPool(server_id, "fe", 1 << 22)
        pool, cache = ArenaPool(server_id, "w", 1 << 24), SegmentCache()
        writer = OutputWriter(pool, cache)
        seq = SequenceIO(spec, str(d), server_id, "w")
        ex = Executor(backend, ModelIO(spec), cache, writer, "@w", seq)
        ready = set(np.linspace(0, args.slots - 1, args.ready).astype(int).tolist())
        arr = np.ones((1, 1), np.int32)
        slot = fe_pool.alloc(array_nbytes(arr, "INT32"))
        write_array(slot.view, arr)
        ref = slot.ref("INPUT", "INT32", [1, 1])
        rows, slots = [], []
        for i in range(args.slots):
            live = i in ready
            rows.append(messages.Request(i + 1 if live else -1 - i, "fe" if live else "",
                                         "seq_accum", 1, [ref], [], 1,
                                         correlation_id=1000 + i if live else 0))
            slots.append(messages.SequenceSlot(i, live))
        # As the worker gets it: decoded from the wire (no objects shared between rows).
        batch = msgspec.msgpack.decode(msgspec.msgpack.encode(messages.Execute(1, rows, slots=slots)),
                                       type=messages.Execute)
        try:
            for _ in range(50):
                _run(ex, writer, batch)
            t0 = time.perf_counter()
            for _ in range(args.batches):
                _run(ex, writer, batch)
            us = (time.perf_counter() - t0) / args.batches * 1e6
        finally:
            seq.close()
            cache.close()
            pool.close()
            fe_pool.close()
    print(f"{args.slots} rows, {len(ready)} ready: {us:.0f} us per batch, "
          f"{us / len(ready):.1f} us per real row (pid {os.getpid()})")
    return 0


def _run(ex: Executor, writer: OutputWriter, batch: messages.Execute) -> None:
    responses, _ = ex.run(batch)
    for _, r in responses:
        assert r.error is None, r.error
        for o in r.outputs:
            writer.release(o.region, o.offset)


if __name__ == "__main__":
    sys.exit(main())
