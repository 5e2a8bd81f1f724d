#!/usr/bin/env python3
"""Alternating latency pairs at fixed connection counts: several servers, one after the other.

    bench/alternate.py [--rounds 2] [--conc 1,8] [--seconds 4] [--binary | --grpc] NAME=SERVER ...

SERVER is a tritond executable (e.g. ``/work/main/.venv/bin/tritond``) or
``triton`` (Triton 2.51 from the anchors environment, as ``bench/cpu_cost.py
--triton``). Each round starts every server in turn on the anchors' models,
drives add_sub with ``wrk -t1 -cN --latency`` (1 s warm-up, then ``--seconds``)
at each concurrency and prints req/s, p50 and p90 with the load average; the
summary lists each server's figures over the rounds. ``--grpc`` drives gRPC
ModelInfer instead, as scenario c does: ``h2load -c1 -mN`` on one HTTP/2
connection, the latencies read from its request log. On a shared host the
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


def command(server: str, repository: str, port: int, grpc_port: int) -> list[str]:
    if server == "triton":
        return cpu_cost.triton_command(repository, port, grpc_port)
    return [server, "--model-repository", repository, "--http-address", "127.0.0.1",
            "--grpc-address", "127.0.0.1", "--metrics-address", "127.0.0.1",
            f"--http-port={port}", f"--grpc-port={grpc_port}",
            f"--metrics-port={cpu_cost.free_port()}"]


def _us(out: str, pct: str) -> float:
    m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)] if m else float("nan")


def grpc_load(grpc_port: int, body, conc: str, seconds: int, log: pathlib.Path) -> tuple:
    """h2load on one connection with ``conc`` streams: (req/s, p50 µs, p90 µs), all answered."""
    log.unlink(missing_ok=True)          # h2load appends to its log
    cmd = ["h2load", "-c1", f"-m{conc}", "-t1", "-D", str(seconds), "-d", str(body),
           "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", str(log),
           f"http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not m or int(m.group(2)) or int(m.group(3)):
        raise SystemExit(f"h2load failed: {out[-400:]}")
    # Log rows: start time, HTTP status, duration in µs (h2load's own request log).
    lat = sorted(int(r.split("\t")[2]) for r in log.read_text().splitlines()
                 if r and r.split("\t")[1] == "200")
    return int(m.group(1)) / seconds, lat[len(lat) // 2], lat[len(lat) * 9 // 10]


def measure(args, conc: str, port: int, grpc_port: int, body, hlen, lua) -> tuple:
    """(req/s, p50 µs, p90 µs) at ``conc`` after a 1 s warm-up."""
    if args.grpc:
        log = body.parent / "h2load.log"
        grpc_load(grpc_port, body, conc, 1, log)
        return grpc_load(grpc_port, body, conc, args.seconds, log)
    url = f"http://127.0.0.1:{port}/v2/models/add_sub/infer"
    wenv = dict(os.environ, BODY=str(body), HDR_LEN=hlen)
    wrk = ["wrk", "-t1", f"-c{conc}", "--latency", "-s", str(lua)]
    subprocess.run(wrk + ["-d1s", url], env=wenv, capture_output=True, timeout=60)
    out = subprocess.run(wrk + [f"-d{args.seconds}s", url], env=wenv, capture_output=True,
                         text=True, timeout=args.seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, _us(out, "50"), _us(out, "90")


def run(name: str, server: str, args, body, hlen, lua) -> list[tuple[str, float, float]]:
    port, grpc_port = cpu_cost.free_port(), cpu_cost.free_port()
    env = dict(os.environ)
    prefix = f"ENV_{name}_"
    env.update({k[len(prefix):]: v for k, v in os.environ.items() if k.startswith(prefix)})
    proc = subprocess.Popen(command(server, args.repository, port, grpc_port),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    rows = []
    try:
        cpu_cost.wait_ready(port, proc)
        time.sleep(0.5)
        if os.environ.get(f"PRE_{name}"):
            subprocess.run(os.environ[f"PRE_{name}"].replace("{pid}", str(proc.pid)), shell=True)
        for conc in args.conc.split(","):
            rps, p50, p90 = measure(args, conc, port, grpc_port, body, hlen, lua)
            print(f"| {name} | {conc} | {rps:,.0f} | {p50:.0f} | {p90:.0f} "
                  f"| {os.getloadavg()[0]:.2f} |", flush=True)
            rows.append((conc, p50, rps))
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
    ap.add_argument("--grpc", action="store_true", help="gRPC ModelInfer with h2load (scenario c)")
    ap.add_argument("--repository", default="/tmp/tritond-anchors/models/triton")
    ap.add_argument("servers", nargs="+", help="NAME=SERVER (a tritond executable or 'triton')")
    args = ap.parse_args()
    servers = [s.split("=", 1) for s in args.servers]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="alternate-"))
    body, hlen = cpu_cost.bodies(tmp, args.binary)
    if args.grpc:
        body = cpu_cost.grpc_body(tmp)
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
