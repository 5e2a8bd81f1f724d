#!/usr/bin/env python3
"""The worker's cost of a fused ONNX sequence batch with implicit state, in-process.

    bench/sequence_state_rows.py [--slots 8] [--state 4096] [--batches 2000]

Runs ``workers.executor.Executor.run`` on ``direct`` Execute batches where every slot
has a ready row (``--slots`` sequences stepping together: one fused ONNX Runtime run
per batch) on a model with one FP32 state of ``--state`` elements per row:
NS = IS + INPUT, OS = NS, OUTPUT = NS[:, :1]. Prints microseconds per batch, wall
and CPU (the host is shared: CPU time is the steadier figure), and the rows copied
per batch (state outputs copied into their slot, ``SlotStates.copies``; input rows
concatenated into the fused batch), then checks the sums.
No server, no sockets: what the state path costs inside the worker.
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
from onnx import TensorProto, helper, numpy_helper, save

from tritond import messages, repository
from tritond.options import Options
from tritond.repository.modelconfig import parse_pbtxt
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache, array_nbytes, write_array
from tritond.workers import executor as executor_module
from tritond.workers.backend import LoadContext
from tritond.workers.executor import Executor
from tritond.workers.onnxruntime import OnnxRuntimeBackend
from tritond.workers.outputs import OutputWriter
from tritond.workers.sequence import SequenceIO
from tritond.workers.shapes import ModelIO

CONFIG = '''name: "state_rows" backend: "onnxruntime" max_batch_size: %d
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
sequence_batching { direct { } state [ { input_name: "IS" output_name: "OS"
                                         data_type: TYPE_FP32 dims: [ %d ] } ] }
instance_group [ { kind: KIND_CPU count: 1 } ]
'''


def _model(path: pathlib.Path, size: int) -> None:
    vi = helper.make_tensor_value_info
    zero = numpy_helper.from_array(np.array([0], np.int64), "zero")
    graph = helper.make_graph(
        [helper.make_node("Add", ["IS", "INPUT"], ["NS"]),
         helper.make_node("Identity", ["NS"], ["OS"]),
         helper.make_node("Gather", ["NS", "zero"], ["OUTPUT"], axis=1)], "state_rows",
        [vi("INPUT", TensorProto.FLOAT, ["b", 1]), vi("IS", TensorProto.FLOAT, ["b", size])],
        [vi("OUTPUT", TensorProto.FLOAT, ["b", 1]), vi("OS", TensorProto.FLOAT, ["b", size])],
        [zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(path))


class _Counting:
    """Counts the rows ``executor._concatenate`` copies (inputs joined by copying)."""

    def __init__(self, inner):
        self.inner, self.rows = inner, 0

    def __call__(self, arrays, *rest):
        whole = self.inner(arrays, *rest)
        if not np.shares_memory(whole, arrays[0]):      # joined in place: no copy
            self.rows += len(arrays)
        return whole


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--state", type=int, default=4096)
    ap.add_argument("--batches", type=int, default=2000)
    args = ap.parse_args()
    server_id = uuid.uuid4().hex
    config = CONFIG % (args.slots, args.state)
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp) / "state_rows"
        _model(d / "1" / "model.onnx", args.state)
        (d / "config.pbtxt").write_text(config)
        cfg = parse_pbtxt(config, "bench config")
        repository.normalize(cfg)
        spec = repository.spec_from_config(cfg, 1)
        ctx = LoadContext("state_rows", 1, "state_rows_0", "CPU", 0, str(d), tmp, Options())
        backend = OnnxRuntimeBackend(ctx)
        backend.load(spec)
        fe_pool = ArenaPool(server_id, "fe", 1 << 22)
        pool, cache = ArenaPool(server_id, "w", 1 << 24), SegmentCache()
        writer = OutputWriter(pool, cache)
        seq = SequenceIO(spec, str(d), server_id, "w")
        ex = Executor(backend, ModelIO(spec), cache, writer, "@w", seq)
        counting = executor_module._concatenate = _Counting(executor_module._concatenate)
        refs = []
        for i in range(args.slots):       # each row's INPUT on its own (not adjacent)
            arr = np.ones((1, 1), np.float32)
            slot = fe_pool.alloc(array_nbytes(arr, "FP32") + 64)
            write_array(slot.view[:4], arr)
            refs.append(msgspec.structs.replace(slot.ref("INPUT", "FP32", [1, 1]), nbytes=4))

        def batch(flags: int) -> messages.Execute:
            rows = [messages.Request(i + 1, "fe", "state_rows", 1, [refs[i]], [], 1,
                                     correlation_id=1000 + i, flags=flags)
                    for i in range(args.slots)]
            slots = [messages.SequenceSlot(i) for i in range(args.slots)]
            return msgspec.msgpack.decode(msgspec.msgpack.encode(
                messages.Execute(1, rows, slots=slots)), type=messages.Execute)
        steps = 0
        try:
            _run(ex, writer, batch(messages.SEQUENCE_START))
            body = batch(0)
            for _ in range(50):
                _run(ex, writer, body)
            steps = 51
            copies0, rows0 = seq.buffers.copies, counting.rows
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.batches):
                _run(ex, writer, body)
            us = (time.perf_counter() - t0) / args.batches * 1e6
            cpu_us = (time.process_time() - c0) / args.batches * 1e6
            steps += args.batches
            copied = (seq.buffers.copies - copies0) / args.batches
            joined = (counting.rows - rows0) / args.batches
            got = {int(v) for i in range(args.slots) for v in seq.slots[i]["IS"].reshape(-1)[:4]}
            assert got == {steps}, (got, steps)
        finally:
            seq.close()
            cache.close()
            pool.close()
            fe_pool.close()
    row_kib = args.state * 4 / 1024
    print(f"{args.slots} rows x {row_kib:.0f} KiB state: {us:.0f} us per batch "
          f"({cpu_us:.0f} us CPU, all threads); per batch "
          f"{copied:.1f} state output rows copied into slots, {joined:.1f} input rows "
          f"concatenated (INPUT and IS) (pid {os.getpid()})")
    return 0


def _run(ex: Executor, writer: OutputWriter, batch: messages.Execute) -> None:
    responses, _ = ex.run(batch)
    for _, r in responses:
        assert r.error is None, r.error
        for o in r.outputs:
            writer.release(o.region, o.offset)


if __name__ == "__main__":
    sys.exit(main())
