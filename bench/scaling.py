#!/usr/bin/env python3
"""Throughput as ``--frontend-processes`` grows (issue 15 item 4), for many-core hosts.

    python bench/scaling.py [--frontends 1,2,3,4] [--clients 8] [--connections 64]
                            [--seconds 5] [--instances 4] [--binary] [--json FILE]

For each N, starts this checkout's tritond with ``--frontend-processes N`` on a
scratch repository holding add_sub (the anchors' Python model, ``--instances``
CPU instances so that one worker does not cap what the frontends can deliver),
then drives it from ``--clients`` client *processes* sharing ``--connections``
keep-alive HTTP/1.1 connections (each sends the same pre-encoded add_sub request
and reads the answer: JSON, or the binary tensor extension with ``--binary``).
Prints req/s per N, its ratio to N = 1, and the issue's bar of 0.7 × N.

The clients are plain Python (asyncio, raw sockets), not wrk: a GPU host reached
through the device tool has no network to install wrk from. On a host with fewer
cores than the clients and the server need, N > 1 measures contention, not
scaling: the output states ``nproc`` and the load average for that reason.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]

# the anchors' add_sub interface, the model the pipelines benchmark already carries
MODEL_PY = ROOT / "bench" / "pipelines" / "models" / "add_sub" / "1" / "model.py"

CONFIG = '''name: "add_sub"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] }},
        {{ name: "INPUT1" data_type: TYPE_FP32 dims: [ 16 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] }},
         {{ name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 16 ] }} ]
instance_group [ {{ kind: KIND_CPU count: {instances} }} ]
'''


def write_repository(root: pathlib.Path, instances: int) -> pathlib.Path:
    model = root / "add_sub"
    (model / "1").mkdir(parents=True)
    shutil.copy(MODEL_PY, model / "1" / "model.py")
    (model / "config.pbtxt").write_text(CONFIG.format(instances=instances))
    return root


def request_bytes(port: int, binary: bool) -> bytes:
    """One complete HTTP/1.1 add_sub request, sent as is on every connection."""
    a, b = [float(i) for i in range(16)], [1.0] * 16
    headers = ""
    if binary:
        head = json.dumps({
            "inputs": [{"name": n, "shape": [16], "datatype": "FP32",
                        "parameters": {"binary_data_size": 64}} for n in ("INPUT0", "INPUT1")],
            "outputs": [{"name": n, "parameters": {"binary_data": True}}
                        for n in ("OUTPUT0", "OUTPUT1")]}).encode()
        body = head + struct.pack("<16f", *a) + struct.pack("<16f", *b)
        headers = f"Inference-Header-Content-Length: {len(head)}\r\n"
    else:
        body = json.dumps({"inputs": [{"name": n, "shape": [16], "datatype": "FP32", "data": d}
                                      for n, d in (("INPUT0", a), ("INPUT1", b))]}).encode()
    return (f"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/octet-stream\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _connection(port: int, request: bytes, stop_at: float, counts: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                counts[1] += 1
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            counts[0] += 1
    finally:
        writer.close()


def client(port: int, request: bytes, connections: int, start_at: float, seconds: float,
           results) -> None:
    """One client process: ``connections`` connections until ``start_at + seconds``."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    counts = [0, 0]

    async def run() -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_connection(port, request, stop_at, counts)
                               for _ in range(connections)))
    asyncio.run(run())
    results.put(tuple(counts))


def drive(port: int, request: bytes, clients: int, connections: int, seconds: float) -> tuple:
    """(requests answered per second, non-200 answers) over all client processes."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    per = [connections // clients + (1 if i < connections % clients else 0)
           for i in range(clients)]
    start_at = time.time() + 1.5            # every client starts together
    procs = [ctx.Process(target=client, args=(port, request, n, start_at, seconds, results))
             for n in per if n]
    for p in procs:
        p.start()
    got = [results.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(10)
    return sum(g[0] for g in got) / seconds, sum(g[1] for g in got)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tritond() -> list[str]:
    exe = shutil.which("tritond", path=str(ROOT / ".venv" / "bin")) or shutil.which("tritond")
    return [exe] if exe else [sys.executable, "-m", "tritond"]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"tritond exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("tritond not ready in time")


def measure(n: int, repo: pathlib.Path, args) -> dict:
    port = free_port()
    cmd = tritond() + ["--model-repository", str(repo), "--http-address", "127.0.0.1",
                       f"--http-port={port}", f"--grpc-port={free_port()}",
                       f"--metrics-port={free_port()}", f"--frontend-processes={n}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_ready(port, proc)
        request = request_bytes(port, args.binary)
        drive(port, request, args.clients, args.connections, 1.0)        # warm-up
        rps, failed = drive(port, request, args.clients, args.connections, args.seconds)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    return {"frontends": n, "rps": rps, "failed": failed, "load": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frontends", default="1,2,3,4")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--binary", action="store_true")
    ap.add_argument("--json", help="also write the rows here, one JSON object per line")
    args = ap.parse_args()
    repo = write_repository(pathlib.Path(tempfile.mkdtemp(prefix="scaling-")), args.instances)
    print(f"nproc {os.cpu_count()}, {args.clients} client processes, {args.connections} "
          f"connections, add_sub x{args.instances} instances, "
          f"{'binary' if args.binary else 'JSON'}", flush=True)
    print("| frontends | req/s | vs N=1 | bar (0.7 x N) | non-200 | load |\n"
          "|---:|---:|---:|---:|---:|---:|", flush=True)
    rows, base = [], None
    for n in (int(x) for x in args.frontends.split(",")):
        row = measure(n, repo, args)
        base = base or row["rps"] / n
        row["ratio"] = row["rps"] / base
        rows.append(row)
        print(f"| {n} | {row['rps']:,.0f} | {row['ratio']:.2f}x | {0.7 * n:.1f}x | "
              f"{row['failed']} | {row['load']:.1f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            for row in rows:
                f.write(json.dumps(dict(row, nproc=os.cpu_count())) + "\n")
    shutil.rmtree(repo, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
