#!/usr/bin/env python3
"""Sequence batcher benchmark: 32 concurrent sequences of 20 steps on an accumulator model,
tritond vs Triton 2.51 in one run (issue 11).

    bench/sequences.py [--kinds triton,tritond] [--duration 10] [--sequences 32] [--steps 20]
                       [--protocol grpc|http]

Each kind is started on 127.0.0.1 with the same temporary repository (one Python model,
``seq_accum``: direct strategy, max_batch_size 32, START/END/READY int32 and CORRID uint64,
an accumulator per batch row), warmed up, then loaded by ``--sequences`` asyncio clients
(tritonclient.grpc.aio or .http.aio), each sending sequences of ``--steps`` requests one after
the other until ``--duration`` seconds have passed; every answer is checked. Prints one
Markdown row per kind (steps/s, p50 and p99 per step, errors) and the tritond/Triton ratio;
``--cpu`` adds, per kind, the CPU µs per step of each server process and of this load
generator (user+system from ``/proc/<pid>/stat`` around the measured run), the load
generator's context switches per step (all its threads) and the rows per execution
(statistics extension). Triton comes from the anchors environment
(/tmp/anchors-env/triton, ``anchors/setup.sh``); tritond from this checkout's .venv (or
TRITOND_CHECKOUT).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

HERE = pathlib.Path(__file__).resolve().parents[1]
ENV_ROOT = pathlib.Path(os.environ.get("ANCHORS_ENV", "/tmp/anchors-env"))

MODEL_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


def value(request, name):
    return int(pb_utils.get_input_tensor_by_name(request, name).as_numpy().flat[0])


class TritonPythonModel:
    def initialize(self, args):
        self.acc = {}

    def execute(self, requests):
        out = []
        for row, request in enumerate(requests):
            x, ready = value(request, "INPUT"), value(request, "READY")
            start = value(request, "START")
            if ready:
                self.acc[row] = x if start else self.acc.get(row, 0) + x
            y = np.full((1, 1), self.acc.get(row, 0) if ready else 0, np.int32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", y)]))
        return out
'''

CONFIG = '''name: "seq_accum"
backend: "python"
max_batch_size: 32
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  direct { }
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
}
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
'''


def write_repo(root: pathlib.Path) -> pathlib.Path:
    d = root / "seq_accum"
    (d / "1").mkdir(parents=True)
    (d / "config.pbtxt").write_text(CONFIG)
    (d / "1" / "model.py").write_text(MODEL_PY)
    return root


def command(kind: str, repo: pathlib.Path, port: int) -> tuple[list[str], dict]:
    env = dict(os.environ)
    if kind == "triton":
        py = ENV_ROOT / "triton" / "bin" / "python"
        sp = subprocess.check_output(
            [str(py), "-c", "import site; print(site.getsitepackages()[0])"], text=True).strip()
        ts = pathlib.Path(sp) / "pytriton" / "tritonserver"
        env["LD_LIBRARY_PATH"] = f"{sp}/nvidia_pytriton.libs:" + env.get("LD_LIBRARY_PATH", "")
        env["PATH"] = f"{ENV_ROOT}/triton/bin:" + env["PATH"]
        return [str(ts / "bin" / "tritonserver"), f"--model-repository={repo}",
                f"--backend-directory={ts}/backends", f"--cache-directory={ts}/caches",
                "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
                "--metrics-address=127.0.0.1", f"--http-port={port}", f"--grpc-port={port + 1}",
                f"--metrics-port={port + 2}", "--allow-gpu-metrics=false", "--log-verbose=0"], env
    checkout = pathlib.Path(os.environ.get("TRITOND_CHECKOUT", HERE))
    return [str(checkout / ".venv" / "bin" / "tritond"), "--model-repository", str(repo),
            "--http-port", str(port), "--grpc-port", str(port + 1),
            "--metrics-port", str(port + 2), "--http-address", "127.0.0.1",
            "--grpc-address", "127.0.0.1", "--metrics-address", "127.0.0.1"], env


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server not ready in time")


async def load(url: str, sequences: int, steps: int, duration: float, protocol: str) -> dict:
    if protocol == "grpc":
        import tritonclient.grpc.aio as aio
        from tritonclient.grpc import InferInput
    else:
        import tritonclient.http.aio as aio
        from tritonclient.http import InferInput

    client = aio.InferenceServerClient(url)
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration

    async def one(worker: int) -> None:
        nonlocal errors
        seq = 0
        while time.monotonic() < stop_at:
            seq += 1
            cid = 1 + worker * 1_000_000 + seq
            acc = 0
            for step in range(steps):
                value = (worker + step) % 7 + 1
                inp = InferInput("INPUT", [1, 1], "INT32")
                inp.set_data_from_numpy(np.full((1, 1), value, np.int32))
                t0 = time.perf_counter()
                try:
                    res = await client.infer("seq_accum", [inp], sequence_id=cid,
                                             sequence_start=step == 0,
                                             sequence_end=step == steps - 1)
                except Exception:  # noqa: BLE001 - counted, the run goes on
                    errors += 1
                    break
                latencies.append(time.perf_counter() - t0)
                acc = value if step == 0 else acc + value
                if int(res.as_numpy("OUTPUT")[0][0]) != acc:
                    errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one(w) for w in range(sequences)))
    elapsed = time.monotonic() - t0
    await client.close()
    lat = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {"steps_per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "errors": errors, "steps": len(latencies)}


def cpu_ticks(root: int) -> dict[str, int]:
    """user+system clock ticks of ``root`` and every process below it, by "pid name"."""
    kids: dict[int, list[int]] = {}
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                raw = pathlib.Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            name, rest = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
            kids.setdefault(int(rest[1]), []).append(int(d))
            stats[int(d)] = (name, int(rest[11]) + int(rest[12]))
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[f"{pid} {stats[pid][0]}"] = stats[pid][1]
        todo += kids.get(pid, [])
    return out


def switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all threads of ``pid``."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def exec_counts(port: int) -> tuple[int, int]:
    """(inferences, executions) of seq_accum so far (statistics extension)."""
    import json
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/seq_accum/stats",
                                timeout=5) as r:
        st = json.load(r)["model_stats"][0]
    return int(st["inference_count"]), int(st["execution_count"])


def run_kind(kind: str, repo: pathlib.Path, port: int, args) -> dict:
    cmd, env = command(kind, repo, port)
    log = open(repo.parent / f"{kind}.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_ready(port, proc)
        url = f"127.0.0.1:{port + 1 if args.protocol == 'grpc' else port}"
        shape = (args.sequences, args.steps)
        asyncio.run(load(url, *shape, min(2.0, args.duration), args.protocol))   # warm-up
        if not args.cpu:
            return asyncio.run(load(url, *shape, args.duration, args.protocol))
        before, counts = {**cpu_ticks(proc.pid), **cpu_ticks(os.getpid())}, exec_counts(port)
        sw0 = switches(os.getpid())
        row = asyncio.run(load(url, *shape, args.duration, args.protocol))
        sw1 = switches(os.getpid())
        after, (infers, execs) = {**cpu_ticks(proc.pid), **cpu_ticks(os.getpid())}, exec_counts(port)
        steps = max(infers - counts[0], 1)
        hz = os.sysconf("SC_CLK_TCK")
        row["cpu_us"] = {k: (after[k] - before.get(k, 0)) / hz * 1e6 / steps for k in after}
        row["rows_per_exec"] = steps / max(execs - counts[1], 1)
        row["client_switches"] = (sw1 - sw0) / steps
        return row
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="triton,tritond")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--sequences", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--port", type=int, default=18300)
    ap.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    ap.add_argument("--cpu", action="store_true",
                    help="also print CPU µs per step per process and rows per execution")
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tritond-seqbench-") as tmp:
        repo = write_repo(pathlib.Path(tmp) / "repo")
        for i, kind in enumerate(args.kinds.split(",")):
            rows[kind] = run_kind(kind, repo, args.port + 10 * i, args)
    print(f"## sequences: {args.sequences} concurrent x {args.steps} steps, "
          f"{args.duration:g} s ({args.protocol} aio client)\n")
    print("| server | steps/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
    for kind, r in rows.items():
        print(f"| {kind} | {r['steps_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
              f"| {r['errors']} |")
    for kind, r in rows.items():
        if "cpu_us" in r:
            procs = ", ".join(f"{k}: {v:.0f}" for k, v in r["cpu_us"].items() if v >= 0.5)
            print(f"\n{kind}: CPU µs per step ({procs}); "
                  f"{r['rows_per_exec']:.1f} rows per execution; load generator "
                  f"{r['client_switches']:.2f} context switches per step")
    if "triton" in rows and "tritond" in rows and rows["triton"]["steps_per_s"]:
        print(f"\ntritond/Triton throughput: "
              f"{rows['tritond']['steps_per_s'] / rows['triton']['steps_per_s']:.2f}x")
    return 1 if any(r["errors"] for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
