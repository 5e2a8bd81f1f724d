#!/usr/bin/env python3
"""Where one request's wall time goes at ONE connection, hop by hop (issue 15).

    bench/hops.py [--seconds 2] [--binary] [--repository R] [--server CMD...]

Starts tritond (this checkout's, or ``--server`` as in ``bench/cpu_cost.py``),
drives add_sub with ``wrk -c1``, and records the kernel's context switches and
every write()/sendto() (``perf record -a -e sched:sched_switch -e
raw_syscalls:sys_enter``) for ``--seconds``. Every request is a chain of
messages between four threads -- the client (wrk), the frontend, the
scheduler and the add_sub worker::

    client -> frontend -> scheduler -> worker -> frontend -> client

and is cut into ten segments: a *wake latency* (the sender's write to the
moment its peer is put on a CPU: an idle CPU leaving its halt, or the peer
waiting behind whatever runs there; zero if the peer was running already) and a
*work* segment (from then to the peer's own first write: its CPU work, plus any
time it was preempted meanwhile). Printed as p50 / mean / p90 in µs, with how
often the peer was put on an idle CPU, how long the sender itself still ran
after its send before the peer started (on a shared CPU: part of the wait), and
how often a process was preempted inside its work segment. The worker's
Executed and each process's work after its send run beside the chain, not in it.
Needs ``perf`` with tracepoint access (root) and ``wrk``.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cpu_cost  # noqa: E402 - the sibling script's server and wrk helpers

CLIENT, FRONTEND, SCHEDULER, WORKER = "client", "frontend", "scheduler", "worker"
# Who sends to whom, in order, in one request; each send is the sender's first
# write()/sendto() after it began to run for this request.
ORDER = [CLIENT, FRONTEND, SCHEDULER, WORKER, FRONTEND, CLIENT]
LABELS = ["client -> frontend: wake latency", "frontend: HTTP read .. Request sent",
          "frontend -> scheduler: wake latency", "scheduler: read .. Execute sent",
          "scheduler -> worker: wake latency", "worker: read .. Response sent",
          "worker -> frontend: wake latency", "frontend: Response read .. HTTP written",
          "frontend -> client: wake latency", "client: read .. next request written"]
SENDS = (1, 44)            # x86-64 write, sendto: every message and HTTP write on the path
_EVENT = re.compile(r"^\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)$")


def parse(text: str, tids: dict[int, str]):
    """Time-ordered (t_us, kind, role, detail) of our threads: "send", "in" (put on a CPU;
    detail: the CPU was idle before), "out" (detail: preempted, i.e. still runnable)."""
    events = []
    for line in text.splitlines():
        m = _EVENT.match(line)
        if not m:
            continue
        _, _, tid, cpu, t, kind, rest = m.groups()
        tid, t = int(tid), float(t) * 1e6
        if kind.endswith("sys_enter"):
            if tid in tids and int(re.search(r"NR (\d+)", rest).group(1)) in SENDS:
                events.append((t, "send", tids[tid], None))
        elif kind.endswith("sched_switch"):
            prev = int(re.search(r"prev_pid=(\d+)", rest).group(1))
            state = re.search(r"prev_state=(\S+)", rest).group(1)
            nxt = int(re.search(r"next_pid=(\d+)", rest).group(1))
            if prev in tids:
                events.append((t, "out", tids[prev], state.startswith("R")))
            if nxt in tids:
                events.append((t, "in", tids[nxt], prev == 0))
    return events


def chains(events):
    """Per segment: durations (µs), how often the wakee was put on an idle CPU, how
    often a worker segment's owner was preempted in it; whole requests; dropped ones."""
    segs = [[] for _ in LABELS]
    idle = [0] * len(LABELS)
    cuts = [0] * len(LABELS)
    held = [[] for _ in LABELS]   # wake segments: how long the sender itself still ran
    cycles, dropped = [], 0
    oncpu = {r: False for r in (CLIENT, FRONTEND, SCHEDULER, WORKER)}
    stamps: list = []          # the current request's segment boundaries
    flags: list = []
    holds: list = []
    preempted = False
    left = None                   # when the sender left its CPU after its send
    for t, kind, who, detail in events:
        step = len(stamps)     # even: waiting for ORDER[step//2] to send; odd: for a wakee
        if kind == "in":
            oncpu[who] = True
        elif kind == "out":
            oncpu[who] = False
        if step % 2 == 1:      # the previous sender's peer must get a CPU
            peer = ORDER[step // 2 + 1]
            if kind == "out" and who == ORDER[step // 2] and left is None:
                left = t
            if kind == "in" and who == peer:
                holds.append((left if left is not None else t) - stamps[-1])
                stamps.append(t)
                flags.append(detail)
                preempted = False
            continue
        if kind == "out" and stamps and who == ORDER[step // 2] and detail:
            preempted = True
        if kind != "send":
            continue
        if who == CLIENT and step != 0 and step != len(ORDER) * 2 - 2:
            stamps, flags, holds, dropped = [], [], [], dropped + 1   # lost track: restart
            step = 0
        if who != ORDER[step // 2]:
            continue
        if step == len(ORDER) * 2 - 2:     # the client sent the next request: one done
            cycles.append(t - stamps[0])
            bounds = stamps + [t]
            for s in range(len(LABELS)):
                segs[s].append(bounds[s + 1] - bounds[s])
            for s, f in zip(range(0, len(LABELS), 2), flags[0::2]):
                idle[s] += f
            for s, f in zip(range(1, len(LABELS), 2), flags[1::2]):
                cuts[s] += f
            for s, h in zip(range(0, len(LABELS), 2), holds):
                held[s].append(h)
            stamps, flags, holds = [], [], []
            step = 0
        if step:
            flags.append(preempted)
        stamps.append(t)
        left = None
        peer = ORDER[step // 2 + 1]
        if oncpu[peer]:          # already running (e.g. finishing its last turn): no wait
            stamps.append(t)
            flags.append(False)
            holds.append(0.0)
            preempted = False
    return segs, (idle, held), cuts, cycles, dropped


def report(segs, wakes_info, cuts, cycles, dropped) -> None:
    idle, held = wakes_info
    n = len(cycles)
    print(f"requests traced: {n} (left out, track lost: {dropped})\n")
    print("| segment | p50 µs | mean µs | p90 µs | wake: put on an idle CPU; sender still "
          "running after its send, p50 / mean µs; work: preempted in it |")
    print("|---|---:|---:|---:|---|")
    q = lambda v, f: sorted(v)[min(int(f * len(v)), len(v) - 1)]
    for s, (label, v) in enumerate(zip(LABELS, segs)):
        note = (f"{100 * idle[s] / n:.0f} % idle; {statistics.median(held[s]):.0f} / "
                f"{statistics.mean(held[s]):.0f}" if s % 2 == 0
                else f"{100 * cuts[s] / n:.0f} % preempted")
        print(f"| {label} | {statistics.median(v):.0f} | {statistics.mean(v):.0f} | "
              f"{q(v, .9):.0f} | {note} |")
    wakes = [sum(x) for x in zip(*segs[0::2])]
    work = [sum(x) for x in zip(*segs[1::2])]
    print(f"| **five wake latencies, summed** | {statistics.median(wakes):.0f} | "
          f"{statistics.mean(wakes):.0f} | {q(wakes, .9):.0f} | |")
    print(f"| **five work segments, summed** | {statistics.median(work):.0f} | "
          f"{statistics.mean(work):.0f} | {q(work, .9):.0f} | |")
    print(f"| **whole request (client write to next write)** | {statistics.median(cycles):.0f} "
          f"| {statistics.mean(cycles):.0f} | {q(cycles, .9):.0f} | |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--binary", action="store_true")
    ap.add_argument("--repository", default="/tmp/tritond-anchors/models/triton")
    ap.add_argument("--server", nargs=argparse.REMAINDER,
                    help="server command ({port}: HTTP port, {free}: any other port)")
    args = ap.parse_args()
    for tool in ("perf", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    port = cpu_cost.free_port()
    cmd = ([c.replace("{port}", str(port)).replace("{free}", str(cpu_cost.free_port()))
            for c in args.server] if args.server else
           [str(cpu_cost.ROOT / ".venv/bin/tritond"), "--model-repository", args.repository,
            "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1",
            "--metrics-address", "127.0.0.1", f"--http-port={port}",
            f"--grpc-port={cpu_cost.free_port()}", f"--metrics-port={cpu_cost.free_port()}"])
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hops-"))
    body, hlen = cpu_cost.bodies(tmp, args.binary)
    lua = tmp / "post.lua"
    lua.write_text(cpu_cost.LUA)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        cpu_cost.wait_ready(port, proc)
        tids = {}
        for pid in cpu_cost.process_tree(proc.pid):
            r = cpu_cost.role(pid)
            title = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if r.startswith("frontend"):
                tids[pid] = FRONTEND
            elif r.startswith("scheduler"):
                tids[pid] = SCHEDULER
            elif "worker add_sub" in title:     # setproctitle: "tritond: worker add_sub_0_0 .."
                tids[pid] = WORKER
        if sorted(tids.values()) != sorted([FRONTEND, SCHEDULER, WORKER]):
            raise SystemExit(f"could not tell the processes apart: {tids}")
        env = dict(os.environ, BODY=str(body), HDR_LEN=hlen)
        url = f"http://127.0.0.1:{port}/v2/models/add_sub/infer"
        wrk = ["wrk", "-t1", "-c1", "--latency", "-s", str(lua)]
        subprocess.run(wrk + ["-d1s", url], env=env, capture_output=True, timeout=60)
        load = subprocess.Popen(wrk + [f"-d{int(args.seconds) + 2}s", url], env=env,
                                stdout=subprocess.PIPE, text=True)
        time.sleep(0.7)
        tids.update({int(t): CLIENT for t in os.listdir(f"/proc/{load.pid}/task")
                     if int(t) != load.pid})        # wrk's load thread, not its main one
        data = tmp / "perf.data"
        subprocess.run(["perf", "record", "-q", "-a", "-e", "sched:sched_switch",
                        "-e", "raw_syscalls:sys_enter", "--filter",
                        " || ".join(f"id == {n}" for n in SENDS),
                        "-o", str(data), "--", "sleep",
                        str(args.seconds)], capture_output=True, check=True)
        out = load.communicate(timeout=60)[0]
        text = subprocess.run(["perf", "script", "-i", str(data), "-F",
                               "comm,pid,tid,cpu,time,event,trace"],
                              capture_output=True, text=True).stdout
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
        print(f"wrk -c1 over the run: p50 {p50.group(1) if p50 else '?'}; "
              f"load average {os.getloadavg()[0]:.2f}")
        report(*chains(parse(text, tids)))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
