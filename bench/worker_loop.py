#!/usr/bin/env python3
"""The add_sub worker's CPU per request in its real loop, fed one request at a time (issue 15).

    bench/worker_loop.py [--requests 20000] [--pollute KB] [--cpus W,D] [--repository R]

``bench/worker_path.py`` times the worker's per-request Python warm, in
process (no loop, no sockets). This one starts a real worker process
(``tritond.workers.main``, spawn) on the repository's ``add_sub`` (Python
backend) and plays parent, scheduler and frontend itself over the real
channel: one Execute, wait for its Response and Executed, the next Execute
(carrying the previous outputs' release), as the server at one connection
does. The worker's CPU per request (``/proc/<pid>/stat``), syscalls and
context switches (``perf stat``, when it can attach) are printed.

The gap to ``worker_path.py`` is the loop, the channel and the syscalls; the
gap from here to ``bench/cpu_cost.py``'s worker row is what running between a
frontend, a scheduler and wrk on the same cores costs the same code (cold
caches). ``--pollute KB``: between requests the driver writes KB of memory
(its own cache footprint, as a neighbour's would be); ``--cpus W,D`` pins the
worker to CPU W and the driver to CPU D (same CPU: every request evicts).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from tritond import channel, messages, repository
from tritond.endpoint import SyncEndpoint
from tritond.options import Options
from tritond.procutil import Bootstrap
from tritond.repository.modelconfig import parse_pbtxt
from tritond.shm.arena import ArenaPool
from tritond.shm.views import write_array
from tritond.workers.main import main as worker_main

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def cpu_us(pid: int) -> tuple[float, float]:
    """(user + system, system) CPU µs of ``pid`` so far."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_bytes()
    f = stat[stat.rindex(b")") + 2:].split()
    return (int(f[11]) + int(f[12])) * TICK_US, int(f[12]) * TICK_US


def expect(ep: SyncEndpoint, kind, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for msg in ep.recv(0.5):
            if isinstance(msg, kind):
                return msg
    raise SystemExit(f"no {kind.__name__} from the worker")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repository", default="/tmp/tritond-anchors/models/triton")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--pollute", type=int, default=0, metavar="KB")
    ap.add_argument("--cpus", default="", metavar="W,D")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the worker (GIL held, 1 kHz) "
                    "over the measured requests; raw stacks in DIR, hottest functions printed")
    args = ap.parse_args()
    sid = "b" + os.urandom(5).hex()
    parent = SyncEndpoint(channel.address(sid, "parent"), messages.TO_PARENT)
    sched = SyncEndpoint(channel.address(sid, "scheduler"), messages.TO_SCHEDULER)
    fe = SyncEndpoint(channel.address(sid, "frontend-0"), messages.TO_FRONTEND)
    pool = ArenaPool(sid, "fe", 1 << 20)
    boot = Bootstrap(role="worker", name="w1", address=channel.address(sid, "w1"),
                     parent=parent.addr, server_id=sid, parent_pid=os.getpid())
    proc = multiprocessing.get_context("spawn").Process(target=worker_main, args=(boot,),
                                                        daemon=True)
    proc.start()
    try:
        expect(parent, messages.Hello)
        parent.send_now(boot.address, [messages.Setup(
            options=Options(), server_id=sid, parent=parent.addr, scheduler=sched.addr,
            frontends=[fe.addr])])
        model_dir = pathlib.Path(args.repository) / "add_sub"
        cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text(), "add_sub config")
        repository.normalize(cfg)
        parent.send_now(boot.address, [messages.Load(
            "add_sub", 1, "add_sub_0_0", "CPU", 0, repository.spec_from_config(cfg, 1),
            str(model_dir), str(model_dir.parent))])
        expect(parent, messages.Loaded)
        if args.cpus:
            w, d = args.cpus.split(",")
            os.sched_setaffinity(proc.pid, {int(w)})
            os.sched_setaffinity(0, {int(d)})
        refs = []
        for name in ("INPUT0", "INPUT1"):
            slot = pool.alloc(64)
            write_array(slot.view, np.ones(16, np.float32))
            refs.append(slot.ref(name, "FP32", [16]))
        junk = bytearray(args.pollute * 1024)
        releases: list = []

        def one(rid: int) -> None:
            nonlocal releases
            req = messages.Request(rid, fe.addr, "add_sub", 1, refs)
            sched.send_now(boot.address, [messages.Execute(rid, [req], releases)])
            resp = expect(fe, messages.Response)
            assert resp.error is None, resp.error
            releases = [(o.region, o.offset) for o in resp.outputs]
            expect(sched, messages.Executed)
            if junk:
                junk[::64] = bytes(len(junk) // 64)     # one write per cache line

        for rid in range(1, 2001):
            one(rid)
        perf = None
        with tempfile.NamedTemporaryFile("r", suffix=".perf") as out:
            try:
                perf = subprocess.Popen(["perf", "stat", "-x,", "-o", out.name, "-e",
                                         "raw_syscalls:sys_enter,context-switches",
                                         "-p", str(proc.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.3)
            except OSError:
                perf = None
            spy = None
            if args.profile:
                sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
                from pyspy import Profiles      # bench/pyspy.py
                spy = Profiles("w", pathlib.Path(args.profile))
                spy.start({proc.pid: "w1"}, "loop")
                time.sleep(0.5)
            c0, t0 = cpu_us(proc.pid), time.perf_counter()
            for rid in range(2001, 2001 + args.requests):
                one(rid)
            wall = time.perf_counter() - t0
            c1 = cpu_us(proc.pid)
            cpu, kernel = ((c1[i] - c0[i]) / args.requests for i in (0, 1))
            if spy is not None:
                spy.stop(top=30)
                print("\n".join(spy.reports))
            counts = {}
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(30)
                for line in out.read().splitlines():
                    f = line.split(",")
                    if len(f) >= 3 and f[0].replace(".", "").isdigit():
                        counts[f[2]] = float(f[0]) / args.requests
        print(f"worker loop, {args.requests} requests one at a time, pollute {args.pollute} KB, "
              f"cpus {args.cpus or 'any'}, load {os.getloadavg()[0]:.2f}: "
              f"{cpu:.1f} us CPU per request ({kernel:.1f} kernel), "
              f"{counts.get('raw_syscalls:sys_enter', float('nan')):.2f} syscalls, "
              f"{counts.get('context-switches', float('nan')):.2f} switches, "
              f"round trip {wall / args.requests * 1e6:.1f} us")
        parent.send_now(boot.address, [messages.Shutdown("bench")])
        expect(parent, messages.Stopped)
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.kill()
        pool.close()
        for ep in (parent, sched, fe):
            ep.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
