"""An empty Python model with 1,000-element BYTES input and output: latency at 1 connection.

    python bench/bytes_echo.py [--servers tritond,triton] [--seconds 6] [--elements 1000] [--fixed]
                               [--processes]
    python bench/bytes_echo.py --write-repo DIR        # only write the model repository

Triton's most-reported Python-backend complaint is the cost of string tensors
(issue 15 item 5). This writes ``bytes_echo`` (``model.py`` returns its BYTES
input as its BYTES output, nothing else) into a scratch repository, starts each
server on it in turn (this checkout's tritond; Triton 2.51 from the anchors
environment as ``bench/cpu_cost.py --triton`` does), and measures one connection:
HTTP with the binary tensor extension (wrk -c1, p50/p99 from wrk) and gRPC
(tritonclient.grpc, one request at a time, p50/p99 over the run). Each server's
CPU µs per request (all its processes, /proc) is printed with it; ``--processes``
also prints it per process (``--threads``: per thread kind), and ``--profile ROLES``
py-spies those processes during each run (``bench/pyspy.py``). The last table
is tritond ÷ Triton for each p50 (goal ≤ 0.5).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cpu_cost  # noqa: E402  (a sibling script: server start, /proc readings)
import pyspy  # noqa: E402  (py-spy recorders, --profile)

MODEL_PY = '''import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Echo INPUT0 (BYTES) as OUTPUT0: the Python backend's own cost, nothing else."""

    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
            "OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())])
            for r in requests]
'''
CONFIG = '''name: "{name}"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
'''


def write_repo(root: pathlib.Path, name: str = "bytes_echo") -> pathlib.Path:
    """The echo model as ``name`` in repository ``root`` (bench/bytes_large.py's too)."""
    model = root / name
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "config.pbtxt").write_text(CONFIG.replace("{name}", name))
    (model / "1" / "model.py").write_text(MODEL_PY)
    return root


FIXED = False     # --fixed: every element 14 bytes; default: 9 to 12 bytes (element-<i>)


def elements(n: int) -> list[bytes]:
    return [(f"element-{i:06d}" if FIXED else f"element-{i}").encode() for i in range(n)]


def http_body(tmp: pathlib.Path, n: int) -> tuple[pathlib.Path, str]:
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements(n))
    head = json.dumps({
        "inputs": [{"name": "INPUT0", "shape": [n], "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}).encode()
    (tmp / "body").write_bytes(head + raw)
    return tmp / "body", str(len(head))


LUA = cpu_cost.LUA + """
function done(summary, latency, requests)
  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,\\"errors\\":%d}\\n",
    summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.read + summary.errors.connect))
end
"""


def http_run(port: int, tmp: pathlib.Path, n: int, seconds: int) -> dict:
    body, hlen = http_body(tmp, n)
    (tmp / "post.lua").write_text(LUA)
    env = dict(os.environ, BODY=str(body), HDR_LEN=hlen)
    url = f"http://127.0.0.1:{port}/v2/models/bytes_echo/infer"
    wrk = ["wrk", "-t1", "-c1", "-s", str(tmp / "post.lua")]
    subprocess.run(wrk + ["-d1s", url], env=env, capture_output=True, timeout=60)
    out = subprocess.run(wrk + [f"-d{seconds}s", url], env=env, capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRKJSON"))
    rec = json.loads(line.split(" ", 1)[1])
    if rec["errors"] or rec["requests"] == 0:
        raise SystemExit(f"wrk saw errors: {out[-400:]}")
    return {"p50_ms": rec["p50_us"] / 1e3, "p99_ms": rec["p99_us"] / 1e3,
            "rps": rec["requests"] / seconds}


def grpc_run(port: int, n: int, seconds: int) -> dict:
    import numpy as np
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    data = np.array(elements(n), dtype=object)
    inp = grpcclient.InferInput("INPUT0", [n], "BYTES")
    inp.set_data_from_numpy(data)
    outs = [grpcclient.InferRequestedOutput("OUTPUT0")]
    for _ in range(50):
        client.infer("bytes_echo", [inp], outputs=outs)
    lat = []
    cpu0 = time.process_time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        result = client.infer("bytes_echo", [inp], outputs=outs)
        lat.append(time.perf_counter() - t0)
    client_us = (time.process_time() - cpu0) / len(lat) * 1e6    # this process: the client
    if result.as_numpy("OUTPUT0")[-1] != data[-1]:
        raise SystemExit("gRPC echo returned other data")
    client.close()
    lat.sort()
    return {"p50_ms": statistics.median(lat) * 1e3, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
            "rps": len(lat) / seconds, "client_us": client_us}


def run_server(kind: str, repo: pathlib.Path, args, tmp: pathlib.Path) -> dict:
    port, gport = cpu_cost.free_port(), cpu_cost.free_port()
    if kind == "triton":
        cmd = cpu_cost.triton_command(str(repo), port, gport)
    else:   # "tritond" (this checkout) or "LABEL=PATH/TO/tritond" (e.g. another checkout's)
        binary = kind.split("=", 1)[1] if "=" in kind else str(cpu_cost.ROOT / ".venv/bin/tritond")
        cmd = [binary, "--model-repository", str(repo),
               "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1",
               "--metrics-address", "127.0.0.1", f"--http-port={port}",
               f"--grpc-port={gport}", f"--metrics-port={cpu_cost.free_port()}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        cpu_cost.wait_ready(port, proc)
        pids = cpu_cost.process_tree(proc.pid)
        roles = {p: cpu_cost.role(p) for p in pids}
        profiles = (pyspy.Profiles(args.profile, pathlib.Path(args.profile_dir))
                    if args.profile else None)
        out = {}
        for name, fn in (("HTTP", lambda: http_run(port, tmp, args.elements, args.seconds)),
                         ("gRPC", lambda: grpc_run(gport, args.elements, args.seconds))):
            cpu0 = {p: cpu_cost.usage(p)[0] for p in pids}
            n0 = cpu_cost.served(port, "bytes_echo")
            threads0 = {p: cpu_cost.thread_usage(p) for p in pids} if args.threads else {}
            if profiles is not None:
                profiles.start(roles, f"{kind.split('=')[0]}-{name}")
            out[name] = fn()
            if profiles is not None:
                profiles.stop()
            n = max(cpu_cost.served(port, "bytes_echo") - n0, 1)
            per = {p: (cpu_cost.usage(p)[0] - cpu0[p]) / n for p in pids}
            out[name]["cpu_us"] = sum(per.values())
            out[name]["per_process"] = {f"{roles[p]} ({p})": us for p, us in per.items() if us}
            out[name]["threads"] = {roles[p]: cpu_cost.thread_summary(t0, cpu_cost.thread_usage(p), n)
                                    for p, t0 in threads0.items()}
        if profiles is not None:
            print("\n".join(profiles.reports))
        return out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", default="tritond,triton")
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--elements", type=int, default=1000)
    ap.add_argument("--fixed", action="store_true", help="fixed-width elements (14 bytes each)")
    ap.add_argument("--write-repo", help="write the model repository here and exit")
    ap.add_argument("--processes", action="store_true", help="CPU per request of each process")
    ap.add_argument("--threads", action="store_true", help="with --processes: per thread kind")
    ap.add_argument("--profile", metavar="ROLES", help="py-spy these roles during each run "
                    "(bench/pyspy.py; e.g. frontend,w)")
    ap.add_argument("--profile-dir", default="/tmp/bytes-echo-profiles")
    args = ap.parse_args()
    if args.write_repo:
        print(write_repo(pathlib.Path(args.write_repo)))
        return 0
    global FIXED
    FIXED = args.fixed
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bytes-echo-"))
    try:
        repo = write_repo(tmp / "models")
        results = {k.split("=")[0]: run_server(k, repo, args, tmp) for k in args.servers.split(",")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"bytes_echo, {args.elements} {'fixed-width ' if args.fixed else ''}BYTES elements "
          f"in and out, 1 connection, "
          f"{args.seconds} s per protocol")
    print("| server | protocol | p50 ms | p99 ms | req/s | CPU µs/req (all processes) |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, res in results.items():
        for proto, r in res.items():
            print(f"| {kind} | {proto} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                  f"{r['rps']:,.0f} | {r['cpu_us']:.0f} |")
    if args.processes:
        for kind, res in results.items():
            for proto, r in res.items():
                print(f"{kind} {proto} CPU µs/req: " + ", ".join(
                    f"{k} {v:.0f}" for k, v in sorted(r["per_process"].items(), key=lambda kv: -kv[1])))
                if "client_us" in r:
                    print(f"  client (tritonclient.grpc, this process): {r['client_us']:.0f}")
                for role, text in r.get("threads", {}).items():
                    print(f"  {role}: {text}")
    if "triton" in results:
        for kind in (k for k in results if k != "triton"):
            for proto in ("HTTP", "gRPC"):
                ratio = results[kind][proto]["p50_ms"] / results["triton"][proto]["p50_ms"]
                print(f"p50 ratio {kind}/Triton {proto}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
