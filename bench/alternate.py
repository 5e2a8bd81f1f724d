#!/usr/bin/env python3
"""Alternating latency pairs at fixed connection counts: several servers, one after the other.

    bench/alternate.py [--rounds 2] [--conc 1,8] [--seconds 4] [--binary] NAME=SERVER ...

SERVER is a tritond executable (e.g. ``/work/main/.venv/bin/tritond``) or
``triton`` (Triton 2.51 from the anchors environment, as ``bench/cpu_cost.py
--triton``). Each round starts every server in turn on the anchors' models,
drives add_sub with ``wrk -t1 -cN --latency`` (1 s warm-up, then ``--seconds``)
at each concurrency and prints req/s, p50 and p90 with the load average; the
summary lists each server's figures over the rounds. On a shared host the
neighbours' load moves between rounds, so compare servers within a round.

Per server NAME, from the environment: ``ENV_<NAME>_<VAR>=value`` is set in
that server's environment (e.g. an experiment's switch), and ``PRE_<NAME>`` is
a shell command run once it is ready, ``{pid}`` replaced by its pid (e.g.
``taskset`` on its processes).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cpu_cost  # noqa: E402 - the sibling script's server and wrk helpers


def command(server: str, repository: str, port: int) -> list[str]:
    if server == "triton":
        return cpu_cost.triton_command(repository, port)
    return [server, "--model-repository", repository, "--http-address", "127.0.0.1",
            "--grpc-address", "127.0.0.1", "--metrics-address", "127.0.0.1",
            f"--http-port={port}", f"--grpc-port={cpu_cost.free_port()}",
            f"--metrics-port={cpu_cost.free_port()}"]


def _us(out: str, pct: str) -> float:
    m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)] if m else float("nan")


def run(name: str, server: str, args, body, hlen, lua) -> list[tuple[str, float, float]]:
    port = cpu_cost.free_port()
    env = dict(os.environ)
    prefix = f"ENV_{name}_"
    env.update({k[len(prefix):]: v for k, v in os.environ.items() if k.startswith(prefix)})
    proc = subprocess.Popen(command(server, args.repository, port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    rows = []
    try:
        cpu_cost.wait_ready(port, proc)
        time.sleep(0.5)
        if os.environ.get(f"PRE_{name}"):
            subprocess.run(os.environ[f"PRE_{name}"].replace("{pid}", str(proc.pid)), shell=True)
        url = f"http://127.0.0.1:{port}/v2/models/add_sub/infer"
        wenv = dict(os.environ, BODY=str(body), HDR_LEN=hlen)
        for conc in args.conc.split(","):
            wrk = ["wrk", "-t1", f"-c{conc}", "--latency", "-s", str(lua)]
            subprocess.run(wrk + ["-d1s", url], env=wenv, capture_output=True, timeout=60)
            out = subprocess.run(wrk + [f"-d{args.seconds}s", url], env=wenv, capture_output=True,
                                 text=True, timeout=args.seconds + 60).stdout
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            print(f"| {name} | {conc} | {rps:,.0f} | {_us(out, '50'):.0f} | {_us(out, '90'):.0f} "
                  f"| {os.getloadavg()[0]:.2f} |", flush=True)
            rows.append((conc, _us(out, "50"), rps))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conc", default="1,8")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--binary", action="store_true")
    ap.add_argument("--repository", default="/tmp/tritond-anchors/models/triton")
    ap.add_argument("servers", nargs="+", help="NAME=SERVER (a tritond executable or 'triton')")
    args = ap.parse_args()
    servers = [s.split("=", 1) for s in args.servers]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="alternate-"))
    body, hlen = cpu_cost.bodies(tmp, args.binary)
    lua = tmp / "post.lua"
    lua.write_text(cpu_cost.LUA)
    print("| server | conc | req/s | p50 µs | p90 µs | load |\n|---|---:|---:|---:|---:|---:|")
    got: dict[tuple[str, str], list] = {}
    for _ in range(args.rounds):
        for name, server in servers:
            for conc, p50, rps in run(name, server, args, body, hlen, lua):
                got.setdefault((name, conc), []).append((p50, rps))
    print("\nsummary over the rounds:")
    for (name, conc), v in sorted(got.items(), key=lambda kv: (int(kv[0][1]), kv[0][0])):
        print(f"  {name} c{conc}: p50 {', '.join(f'{p:.0f}' for p, _ in v)} µs; "
              f"req/s {', '.join(f'{r:,.0f}' for _, r in v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
