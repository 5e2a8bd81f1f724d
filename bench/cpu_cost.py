"""CPU time per request of every server process, at fixed concurrencies.

    python bench/cpu_cost.py [--triton | --server CMD...] [--conc 1,8,64] [--seconds 5]
                             [--binary | --grpc]

Throughput on a shared 2-core host swings by 10 % between runs; CPU time per
request moves far less, and on 2 cores it *is* throughput. This starts a server
(default: this checkout's ``.venv/bin/tritond`` on ``model_repository/``, or any
command given after ``--server`` with ``{port}`` for the HTTP port and ``{free}``
for each other port, e.g. another checkout's tritond or Triton's
``tritonserver``), loads ``add_sub`` with wrk (HTTP JSON, or the binary-tensor
extension with ``--binary``) for a fixed time per concurrency, and reads, for
the server and every process it started, user+system CPU (``/proc/<pid>/stat``)
and voluntary + involuntary context switches (``/proc/<pid>/status``) before and
after; divided by the requests the server counted (statistics extension).
Roles come from each process's listening sockets (tritond's ``@tritond-*-<role>``)
or its command line. ``--grpc`` loads gRPC ModelInfer instead, with h2load (one
HTTP/2 connection, ``-m`` concurrent streams, as bench/vs_triton.sh's scenario
c; ``{grpc}`` in ``--server`` is the gRPC port then). Loopback only; each load run is bounded by ``--seconds``.

Syscalls and wake-ups per request come from ``perf stat -e
raw_syscalls:sys_enter,context-switches -p <pid>`` attached to each process
(all its threads) for the measured window (cheap: in-kernel counters); where
perf cannot attach, the columns say "n/a". ``--strace`` adds each process's
three most frequent syscalls from ``strace -c -f`` (it slows the server a
lot: its CPU figures are then not comparable). ``--threads`` adds each frontend's (or
tritonserver's) CPU and context switches per request by thread: the main
thread (a frontend's event loop), other Python threads (the gRPC queue poller)
and grpcio core's ``event_engine`` threads. ``--triton`` starts Triton 2.51
from the anchors environment (``$ANCHORS_ENV``, default /tmp/anchors-env) on
``--repository`` instead, so its server and Python stub processes get the same rows.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# sibling scripts; their names stay importable here (cpu_cost.usage etc., other benches)
from procstat import (process_tree, role, thread_summary,  # noqa: E402,F401
                      thread_usage, usage)
from syscounters import Counters  # noqa: E402

LUA = """
local f = assert(io.open(os.getenv("BODY"), "rb")); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/octet-stream"
local h = os.getenv("HDR_LEN"); if h and h ~= "" then wrk.headers["Inference-Header-Content-Length"] = h end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(tmp: pathlib.Path, binary: bool) -> tuple[pathlib.Path, str]:
    a = [float(i) for i in range(16)]
    b = [1.0] * 16
    if not binary:
        doc = {"inputs": [{"name": n, "shape": [16], "datatype": "FP32", "data": d}
                          for n, d in (("INPUT0", a), ("INPUT1", b))]}
        (tmp / "body").write_bytes(json.dumps(doc).encode())
        return tmp / "body", ""
    import struct
    doc = {"inputs": [{"name": n, "shape": [16], "datatype": "FP32",
                       "parameters": {"binary_data_size": 64}} for n in ("INPUT0", "INPUT1")],
           "outputs": [{"name": n, "parameters": {"binary_data": True}}
                       for n in ("OUTPUT0", "OUTPUT1")]}
    head = json.dumps(doc).encode()
    (tmp / "body").write_bytes(head + struct.pack("<16f", *a) + struct.pack("<16f", *b))
    return tmp / "body", str(len(head))


def grpc_body(tmp: pathlib.Path) -> pathlib.Path:
    """add_sub's ModelInfer (two FP32[16] in raw_input_contents), gRPC-framed for h2load."""
    import struct
    from tritond.protos import grpc_service_pb2 as pb
    req = pb.ModelInferRequest(model_name="add_sub")
    for name, data in (("INPUT0", range(16)), ("INPUT1", [1.0] * 16)):
        req.inputs.add(name=name, datatype="FP32", shape=[16])
        req.raw_input_contents.append(struct.pack("<16f", *data))
    msg = req.SerializeToString()
    (tmp / "body.grpc").write_bytes(struct.pack(">BI", 0, len(msg)) + msg)
    return tmp / "body.grpc"


def h2load(grpc_port: int, body, conc: int, seconds: int) -> None:
    """One HTTP/2 connection with ``conc`` concurrent ModelInfer calls for ``seconds``."""
    cmd = ["h2load", "-c1", f"-m{conc}", "-t1", "-D", str(seconds), "-d", str(body),
           "-H", "content-type: application/grpc", "-H", "te: trailers",
           f"http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not m or int(m.group(2)) or int(m.group(3)):
        raise SystemExit(f"h2load failed: {out[-400:]}")


def model_inputs(port: int, model: str) -> list[tuple[str, list]]:
    """(name, shape) of each input of ``model`` from its metadata (-1 dims as 1)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}") as r:
        meta = json.load(r)
    for i in meta["inputs"]:
        if i["datatype"] != "FP32":
            raise SystemExit(f"{model}: input {i['name']} is {i['datatype']}, not FP32")
    return [(i["name"], [max(int(d), 1) for d in i["shape"]]) for i in meta["inputs"]]


def json_body(tmp: pathlib.Path, inputs: list) -> pathlib.Path:
    """A JSON body for any FP32 model (e.g. an ensemble or a BLS model, not add_sub)."""
    docs = []
    for k, (name, shape) in enumerate(inputs):
        n = 1
        for d in shape:
            n *= d
        docs.append({"name": name, "shape": shape, "datatype": "FP32",
                     "data": [float(i) for i in range(n)] if k == 0 else [1.0] * n})
    (tmp / "body").write_bytes(json.dumps({"inputs": docs}).encode())
    return tmp / "body"


def triton_command(repository: str, port: int, grpc_port: int) -> list[str]:
    """Triton 2.51 (pytriton's build) as the anchors harness starts it."""
    env_root = pathlib.Path(os.environ.get("ANCHORS_ENV", "/tmp/anchors-env")) / "triton"
    py = env_root / "bin/python"
    if not py.exists():
        raise SystemExit(f"no Triton environment at {env_root} (run the anchors' setup.sh)")
    sp = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                        capture_output=True, text=True, check=True).stdout.strip()
    ts = f"{sp}/pytriton/tritonserver"
    libs = f"{sp}/nvidia_pytriton.libs"
    ld = os.environ.get("LD_LIBRARY_PATH")
    return ["env", f"LD_LIBRARY_PATH={libs}{':' + ld if ld else ''}",
            f"PATH={env_root}/bin:{os.environ['PATH']}",    # the stub finds the venv's python3
            f"{ts}/bin/tritonserver", f"--model-repository={repository}",
            f"--backend-directory={ts}/backends", f"--cache-directory={ts}/caches",
            "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
            f"--http-port={port}", f"--grpc-port={grpc_port}", f"--metrics-port={free_port()}",
            "--allow-gpu-metrics=false", "--log-verbose=0"]


def served(port: int, model: str, executions: bool = False):
    """Requests the server counted for ``model`` (and its executions, if asked)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats") as r:
        stats = json.load(r)["model_stats"]
    n = sum(int(s["inference_count"]) for s in stats)
    return (n, sum(int(s["execution_count"]) for s in stats)) if executions else n


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server not ready in time")


def measure(port: int, pids: list[int], conc: int, seconds: float, body, hlen, lua, model,
            counters: Counters, grpc_port: int | None = None, threads: tuple = ()) -> dict:
    env = dict(os.environ, BODY=str(body), HDR_LEN=hlen)
    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
    wrk = ["wrk", "-t1", f"-c{conc}", "-s", str(lua), url]

    def load(secs: int) -> None:
        if grpc_port is not None:
            h2load(grpc_port, body, conc, secs)
            return
        done = subprocess.run(wrk[:3] + [f"-d{secs}s"] + wrk[3:], env=env, capture_output=True,
                              text=True, timeout=secs + 60)
        if done.returncode != 0 or "Non-2xx" in done.stdout:
            raise SystemExit(f"wrk failed: {done.stdout[-400:]} {done.stderr[-400:]}")
    load(1)                                   # warm-up
    counters.start()
    before = {p: usage(p) for p in pids}
    threads_before = {p: thread_usage(p) for p in threads}
    (n0, e0), t0 = served(port, model, True), time.monotonic()
    load(int(seconds))
    n, e = served(port, model, True)
    n, e = n - n0, e - e0
    wall = time.monotonic() - t0
    after = {p: usage(p) for p in pids}
    threads_after = {p: thread_usage(p) for p in threads}
    counted = counters.stop()
    rows = {}
    for p in pids:
        (cpu1, sw1, sys1), (cpu0, sw0, sys0) = after[p], before[p]
        calls, wakes, top = counted.get(p, (float("nan"), float("nan"), ""))
        # /proc's switch counts cover the main thread only; perf's cover every thread.
        rows[p] = ((cpu1 - cpu0) / max(n, 1), (sw1 - sw0) / max(n, 1),
                   calls / max(n, 1), wakes / max(n, 1), top, (sys1 - sys0) / max(n, 1))
    per_thread = {p: thread_summary(threads_before[p], threads_after[p], n) for p in threads}
    return {"requests": n, "rps": n / wall, "per_pid": rows, "batch": n / max(e, 1),
            "threads": per_thread}


def _n(x: float) -> str:
    return "n/a" if x != x else f"{x:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conc", default="1,8,64")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--binary", action="store_true")
    ap.add_argument("--grpc", action="store_true",
                    help="gRPC ModelInfer for add_sub with h2load instead of HTTP with wrk")
    ap.add_argument("--model", default="add_sub",
                    help="model to load; other than add_sub: a JSON body from its metadata "
                    "(FP32 inputs), e.g. an ensemble or a BLS model")
    ap.add_argument("--body", help="request body file instead of add_sub's (e.g. the anchors' "
                    "bodies.py output); binary if FILE.hlen holds its JSON header length")
    ap.add_argument("--repository", default=str(ROOT / "model_repository"))
    ap.add_argument("--triton", action="store_true", help="measure Triton 2.51 (anchors env)")
    ap.add_argument("--strace", action="store_true",
                    help="strace -c instead of perf: top syscalls by name (slows the server)")
    ap.add_argument("--profile", metavar="ROLES", help="py-spy the processes whose role "
                    "starts with one of these (comma-separated, e.g. scheduler,w) during "
                    "each window; prints their hottest functions (bench/pyspy.py)")
    ap.add_argument("--profile-dir", default="/tmp/cpu-cost-profiles",
                    help="where --profile keeps py-spy's raw stacks")
    ap.add_argument("--threads", action="store_true",
                    help="also print each frontend's CPU per request by thread (event loop, "
                    "other Python threads, grpcio core's event_engine threads)")
    ap.add_argument("--server", nargs=argparse.REMAINDER,
                    help="server command (HTTP port given as {port}); default: this tritond")
    args = ap.parse_args()
    tool = "h2load" if args.grpc else "wrk"
    if not shutil.which(tool):
        raise SystemExit(f"{tool} is needed (apt-get install {'nghttp2-client' if args.grpc else 'wrk'})")
    port = free_port()
    grpc_port = free_port()
    if args.triton:
        cmd = triton_command(args.repository, port, grpc_port)
    elif args.server:
        # {port}: the HTTP port; {grpc}: the gRPC port (--grpc); {free}: another free port each
        cmd = [c.replace("{port}", str(port)).replace("{grpc}", str(grpc_port))
               .replace("{free}", str(free_port())) for c in args.server]
    else:
        cmd = [
        str(ROOT / ".venv/bin/tritond"), "--model-repository", args.repository,
            "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1",
            "--metrics-address", "127.0.0.1", f"--http-port={port}",
            f"--grpc-port={grpc_port}", f"--metrics-port={free_port()}"]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="cpu-cost-"))
    body, hlen = bodies(tmp, args.binary)
    if args.grpc:
        if args.model != "add_sub" or args.body or args.binary:
            raise SystemExit("--grpc is built for add_sub only")
        body = grpc_body(tmp)
    if args.body:
        body = pathlib.Path(args.body)
        hfile = pathlib.Path(args.body + ".hlen")
        hlen = hfile.read_text().strip() if hfile.exists() else ""
    lua = tmp / "post.lua"
    lua.write_text(LUA)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_ready(port, proc)
        if args.model != "add_sub" and not args.body:
            if args.binary:
                raise SystemExit("--binary is built for add_sub only (or give --body)")
            body, hlen = json_body(tmp, model_inputs(port, args.model)), ""
        pids = process_tree(proc.pid)
        roles = {p: role(p) for p in pids}
        counters = Counters(pids, tmp, args.strace)
        if args.profile:
            from pyspy import Profiles      # bench/pyspy.py, next to this script
            counters.profiles = Profiles(args.profile, pathlib.Path(args.profile_dir))
            counters.roles = roles
        name = "tritonserver" if args.triton else os.path.basename(cmd[0])
        kind = "gRPC (h2load)" if args.grpc else "binary" if args.binary else "JSON"
        print(f"server: {name}  model {args.model}, {kind}, {args.seconds:g} s per concurrency")
        extra = " top syscalls |" if args.strace else ""
        print(f"| conc | req/s | process | CPU µs/req (of it kernel) | syscalls/req | ctx switches/req "
              f"(all threads) | main-thread switches/req |{extra}")
        print("|---:|---:|---|---:|---:|---:|---:|" + ("---|" if args.strace else ""))
        threads_seen: list = []
        for conc in [int(c) for c in args.conc.split(",")]:
            r = measure(port, pids, conc, args.seconds, body, hlen, lua, args.model, counters,
                        grpc_port if args.grpc else None,
                        tuple(p for p in pids if args.threads and
                              roles[p].startswith(("frontend", "tritonserver"))))
            rows = r["per_pid"].values()
            total = [sum(row[i] for row in rows) for i in (0, 2, 3, 5)]
            for p, (cpu, sw, calls, wakes, top, sys_us) in sorted(r["per_pid"].items(),
                                                          key=lambda kv: -kv[1][0]):
                if cpu > 0.5 or calls > 0.05:
                    tail = f" {top} |" if args.strace else ""
                    print(f"| {conc} | {r['rps']:,.0f} | {roles[p]} | {cpu:.1f} ({sys_us:.0f}) | "
                          f"{_n(calls)} | "
                          f"{_n(wakes)} | {sw:.2f} |{tail}")
            print(f"| {conc} | {r['rps']:,.0f} | **all** | **{total[0]:.1f}** ({total[3]:.0f}) | **{_n(total[1])}** "
                  f"| **{_n(total[2])}** | avg batch {r['batch']:.1f} |" + (" |" if args.strace else ""))
            threads_seen.extend((conc, roles[p], text) for p, text in r["threads"].items())
        for conc, who, text in threads_seen:
            print(f"\nconc {conc}, {who} by thread, per request: {text}")
        if counters.profiles is not None:
            print("\n".join(counters.profiles.reports))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
