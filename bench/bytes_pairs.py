"""bytes_echo's HTTP run as many short alternating pairs of two tritond builds, both
servers up at once: the tighter comparison on a host whose neighbours' load moves.

    python bench/bytes_pairs.py [--pairs 8] [--seconds 2] [--elements 1000] NAME=TRITOND NAME=TRITOND

Starts each build (``.venv/bin/tritond`` of a checkout) on the same ``bytes_echo``
repository (bench/bytes_echo.py's model), then alternates wrk -c1 runs of ``--seconds``
between them, the order flipped every pair, and prints each run's p50 and CPU µs per
request per process (/proc), then the medians of each build and the median of the
per-pair differences (second build minus first), which cancel what moved between pairs.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bytes_echo  # noqa: E402  (model repository, wrk run)
import cpu_cost  # noqa: E402  (server start, /proc readings)


def start(binary: str, repo: pathlib.Path) -> tuple[subprocess.Popen, int, dict]:
    port = cpu_cost.free_port()
    proc = subprocess.Popen(
        [binary, "--model-repository", str(repo), "--http-address", "127.0.0.1",
         "--grpc-address", "127.0.0.1", "--metrics-address", "127.0.0.1", f"--http-port={port}",
         f"--grpc-port={cpu_cost.free_port()}", f"--metrics-port={cpu_cost.free_port()}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cpu_cost.wait_ready(port, proc)
    pids = cpu_cost.process_tree(proc.pid)
    return proc, port, {p: cpu_cost.role(p) for p in pids}


def run(port: int, roles: dict, tmp: pathlib.Path, n: int, seconds: int) -> dict:
    cpu0 = {p: cpu_cost.usage(p)[0] for p in roles}
    n0 = cpu_cost.served(port, "bytes_echo")
    rec = bytes_echo.http_run(port, tmp, n, seconds)
    done = max(cpu_cost.served(port, "bytes_echo") - n0, 1)
    per = {"frontend": 0.0, "worker": 0.0, "scheduler": 0.0, "all": 0.0}
    for p, r in roles.items():
        us = (cpu_cost.usage(p)[0] - cpu0[p]) / done
        per["all"] += us
        key = "frontend" if r.startswith("frontend") else "worker" if r.startswith("w") else r
        if key in per:
            per[key] += us
    per["p50_ms"] = rec["p50_ms"]
    return per


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("servers", nargs=2, help="NAME=PATH/TO/tritond")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--elements", type=int, default=1000)
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bytes-pairs-"))
    names = [s.split("=", 1)[0] for s in args.servers]
    procs = []
    try:
        repo = bytes_echo.write_repo(tmp / "models")
        servers = []
        for spec in args.servers:
            proc, port, roles = start(spec.split("=", 1)[1], repo)
            procs.append(proc)
            servers.append((port, roles))
        for port, roles in servers:                  # warm both before measuring
            run(port, roles, tmp, args.elements, 1)
        rows: dict[str, list[dict]] = {name: [] for name in names}
        for i in range(args.pairs):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for k in order:
                rows[names[k]].append(run(*servers[k], tmp, args.elements, args.seconds))
            load = os.getloadavg()[0]
            print(f"pair {i + 1} (load {load:.1f}): " + "; ".join(
                f"{names[k]} p50 {rows[names[k]][-1]['p50_ms']:.3f} ms, " + ", ".join(
                    f"{r} {v:.0f}" for r, v in rows[names[k]][-1].items() if r != "p50_ms")
                for k in (0, 1)), flush=True)
        keys = [k for k in rows[names[0]][0] if k in rows[names[1]][0]]
        for name in names:
            print(f"median {name}: " + ", ".join(
                f"{k} {statistics.median(r[k] for r in rows[name]):.3f}" if k == "p50_ms" else
                f"{k} {statistics.median(r[k] for r in rows[name]):.0f}" for k in keys))
        print(f"median of pair differences ({names[1]} - {names[0]}): " + ", ".join(
            f"{k} {statistics.median(b[k] - a[k] for a, b in zip(rows[names[0]], rows[names[1]])):+.3f}"
            if k == "p50_ms" else
            f"{k} {statistics.median(b[k] - a[k] for a, b in zip(rows[names[0]], rows[names[1]])):+.0f}"
            for k in keys))
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
