"""Micro-benchmark of the pure core: per-request cost of add + step (+ executed).

Run: ``python -m tritond.scheduler.bench``. Simulates a loaded server: each
"loop turn" N requests arrive, step() forms batches for the free instances,
and the previous turn's batches finish.

``--shell``: the process shell around the core at one connection, as the
scheduler runs it (``SchedulerProc.handle`` fed through the inbox protocol's
``data_received``, on uvloop when installed, the outbox's socket writes
stubbed): thread CPU of a Request's turn (its Execute posted) and of an
Executed's turn, each including one loop iteration. The rest of the
scheduler's CPU per request in a server is its wake-ups (bench/RESULTS.md).
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from tritond import messages, repository
from tritond.repository.modelconfig import from_dict

from . import wire
from .core import Dispatch, SchedulerCore


def _table(max_batch: int, dynamic: dict | None, instances: int) -> messages.ModelTable:
    cfg = {"name": "m", "max_batch_size": max_batch}
    if dynamic is not None:
        cfg["dynamic_batching"] = dynamic
    entry = messages.ModelEntry(name="m", version=1, state="READY",
                                spec=repository.spec_from_config(from_dict(cfg), 1),
                                instances=[messages.InstanceEntry(f"w{i}", f"m_{i}", "CPU", 0)
                                           for i in range(instances)])
    return messages.ModelTable(models=[entry], server_ready=True)


def _frame(n: int, batched: bool) -> bytes:
    """One pre-encoded frame of ``n`` requests (two [1,16] FP32 inputs each)."""
    shape = [1, 16] if batched else [16]
    refs = [messages.TensorRef(name, "FP32", shape, "/tritond-0123abcd-4567-frontend-0", 4096, 64)
            for name in ("INPUT0", "INPUT1")]
    reqs = [messages.Request(rid=rid, frontend="\0tritond-0123abcd-frontend-0", model="m",
                             version=1, inputs=refs, outputs=[messages.OutputSpec("OUTPUT0")],
                             batch=1 if batched else 0, arrival_ns=10**12 + rid)
            for rid in range(n)]
    return messages.encode(reqs)


def run(label: str, max_batch: int, dynamic: dict | None, instances: int,
        per_turn: int, total: int = 200_000) -> float:
    """Print and return ns per request spent in the core (add + step + executed).

    Requests are decoded from a msgpack frame every turn, as the shell does, so
    the heap looks like a real scheduler's; decoding the requests and encoding
    the Executes are timed separately.
    """
    core = SchedulerCore()
    core.set_models(_table(max_batch, dynamic, instances))
    frame = _frame(per_turn, max_batch > 0)
    decode = messages.decoder(wire.TO_SCHEDULER).decode
    stats = messages.ExecStats(1, 1, 1, 1, 0, 0)
    busy: list[Dispatch] = []
    now = 0
    spent = decoding = encoding = 0
    clock = time.perf_counter_ns
    for turn in range(total // per_turn):
        t0 = clock()
        reqs = decode(frame)
        for i, req in enumerate(reqs):
            req.rid = turn * per_turn + i
        done = [messages.Executed(d.address, d.execute.batch_id, stats) for d in busy]
        t1 = clock()
        now += 1000
        for msg in done:
            core.executed(msg, now)
        for req in reqs:
            core.add(req, now)
        busy = [o for o in core.step(now) if type(o) is Dispatch]
        core.next_deadline_ns()
        t2 = clock()
        messages.encode([d.execute for d in busy])
        t3 = clock()
        decoding += t1 - t0
        spent += t2 - t1
        encoding += t3 - t2
    n = (total // per_turn) * per_turn
    print(f"{label:52s} core {spent / n:5.0f} ns/req (decode {decoding / n:4.0f}, "
          f"encode {encoding / n:4.0f})")
    return spent / n


def shell(blocks: int = 30, n: int = 1000) -> tuple[float, float]:
    """Best µs of thread CPU of a Request's turn and of an Executed's turn (see module doc)."""
    from tritond import channel
    from tritond.procutil import Bootstrap

    from .alarm import Alarm
    from .proc import SchedulerProc, _new_loop

    loop = _new_loop()
    sid = "b" + os.urandom(5).hex()
    boot = Bootstrap(role="scheduler", name="scheduler",
                     address=channel.address(sid, "scheduler"),
                     parent=channel.address(sid, "parent"), server_id=sid,
                     parent_pid=os.getpid())
    frontend = channel.address(sid, "frontend-0")
    refs = [messages.TensorRef(name, "FP32", [16], f"/tritond-{sid}-1-frontend-0", 4096, 64)
            for name in ("INPUT0", "INPUT1")]
    stats = messages.ExecStats(1, 1, 1, 1, 0, 0)

    async def measure() -> tuple[float, float]:
        proc = SchedulerProc(boot, logging.getLogger("bench"))
        proc._outbox = out = channel.AsyncOutbox()
        writes = []
        out._write = lambda addr, data: writes.append(addr)   # framed and encoded, not written
        proc._alarm = Alarm(loop, proc._tick)
        inbox = channel.AsyncInbox(boot.address, wire.TO_SCHEDULER, proc.handle, outbox=out)
        from_frontend, from_worker = channel._InboxProtocol(inbox), channel._InboxProtocol(inbox)
        proc.core.set_models(_table(0, None, 1))
        proc.core.pipeline = True
        clock = time.thread_time_ns
        best = [float("inf"), float("inf")]
        rid = 0
        for _ in range(blocks):
            spent = [0, 0]
            for _ in range(n):
                rid += 1
                request = channel.frame(messages.encode([messages.Request(
                    rid, frontend, "m", 1, refs, arrival_ns=time.monotonic_ns())]))
                executed = channel.frame(messages.encode([messages.Executed("w0", rid, stats)]))
                t0 = clock()
                from_frontend.data_received(request)
                await asyncio.sleep(0)                  # the turn ends: the outbox settles
                t1 = clock()
                from_worker.data_received(executed)
                await asyncio.sleep(0)
                t2 = clock()
                spent[0] += t1 - t0
                spent[1] += t2 - t1
            best = [min(b, s / n / 1000) for b, s in zip(best, spent)]
        proc._alarm.close()
        if writes != ["w0"] * (blocks * n):     # every Request dispatched, nothing else sent
            raise RuntimeError(f"expected {blocks * n} Executes to w0, got {len(writes)} writes")
        return best[0], best[1]

    try:
        return loop.run_until_complete(measure())
    finally:
        loop.close()


def main() -> None:
    if "--shell" in sys.argv[1:]:
        request, executed = shell()
        print(f"scheduler shell, one connection: Request turn {request:.1f} us, "
              f"Executed turn {executed:.1f} us (thread CPU, best of 30 x 1,000)")
        return
    run("default scheduler, 1 instance, 1 req/turn", 0, None, 1, 1)
    run("default scheduler, 4 instances, 4 req/turn", 8, None, 4, 4)
    run("dynamic, mbs 8, 2 inst, 16 req/turn", 8, {}, 2, 16)
    run("dynamic, mbs 32, pref [8,16], 2 inst, 32 req/turn", 32,
        {"preferred_batch_size": [8, 16]}, 2, 32)
    run("dynamic, mbs 64, delay 100us, 1 inst, 1 req/turn", 64,
        {"max_queue_delay_microseconds": 100}, 1, 1)
    run("dynamic + 3 priority levels + timeouts, 2 inst, 16/turn", 16,
        {"priority_levels": 3, "default_priority_level": 2,
         "default_queue_policy": {"default_timeout_microseconds": 10**9}}, 2, 16)


if __name__ == "__main__":
    main()
