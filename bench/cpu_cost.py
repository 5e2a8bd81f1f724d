"""CPU time per request of every server process, at fixed concurrencies.

    python bench/cpu_cost.py [--server CMD...] [--conc 1,8,64] [--seconds 5] [--binary]

Throughput on a shared 2-core host swings by 10 % between runs; CPU time per
request moves far less, and on 2 cores it *is* throughput. This starts a server
(default: this checkout's ``.venv/bin/tritond`` on ``model_repository/``, or any
command given after ``--server``, e.g. another checkout's tritond or Triton's
``tritonserver``), loads ``--model`` (default ``add_sub``; any FP32 model: the
body fills each input its metadata names, ``-1`` dims as 1) with wrk (HTTP JSON, or the binary-tensor
extension with ``--binary``) for a fixed time per concurrency, and reads, for
the server and every process it started, user+system CPU (``/proc/<pid>/stat``)
and voluntary + involuntary context switches (``/proc/<pid>/status``) before and
after; divided by the requests the server counted (statistics extension).
Roles come from each process's listening sockets (tritond's ``@tritond-*-<role>``)
or its command line. Loopback only; each load run is bounded by ``--seconds``.
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
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
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


def model_inputs(port: int, model: str) -> list[tuple[str, list]]:
    """(name, shape) of each input of ``model`` from its metadata (-1 dims as 1)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}") as r:
        meta = json.load(r)
    for i in meta["inputs"]:
        if i["datatype"] != "FP32":
            raise SystemExit(f"{model}: input {i['name']} is {i['datatype']}, not FP32")
    return [(i["name"], [max(int(d), 1) for d in i["shape"]]) for i in meta["inputs"]]


def json_body(tmp: pathlib.Path, inputs: list) -> pathlib.Path:
    docs = []
    for k, (name, shape) in enumerate(inputs):
        n = 1
        for d in shape:
            n *= d
        docs.append({"name": name, "shape": shape, "datatype": "FP32",
                     "data": [float(i) for i in range(n)] if k == 0 else [1.0] * n})
    (tmp / "body").write_bytes(json.dumps({"inputs": docs}).encode())
    return tmp / "body"


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


def process_tree(root: int) -> list[int]:
    """``root`` and every descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = pathlib.Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def role(pid: int) -> str:
    """tritond's role from the abstract socket the process listens on, else its command."""
    unix = {}
    for line in pathlib.Path("/proc/net/unix").read_text().splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[7].startswith("@tritond-"):
            unix[f[6]] = f[7].split("-", 2)[-1]
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            m = re.match(r"socket:\[(\d+)\]", link)
            if m and m.group(1) in unix:
                return unix[m.group(1)]
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    names = [os.path.basename(c.decode(errors="replace")) for c in cmd if c]
    return " ".join(names[:2])[:40]


def usage(pid: int) -> tuple[float, int]:
    """(CPU µs, context switches) of ``pid`` so far."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_bytes()
        fields = stat[stat.rindex(b")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) * TICK_US
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        switches = sum(int(v) for v in re.findall(r"ctxt_switches:\s+(\d+)", status))
        return cpu, switches
    except OSError:
        return 0.0, 0


def served(port: int, model: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats") as r:
        stats = json.load(r)["model_stats"]
    return sum(int(s["inference_count"]) for s in stats)


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


def measure(port: int, pids: list[int], conc: int, seconds: float, body, hlen, lua, model) -> dict:
    env = dict(os.environ, BODY=str(body), HDR_LEN=hlen)
    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
    wrk = ["wrk", "-t1", f"-c{conc}", "-s", str(lua), url]
    subprocess.run(wrk[:3] + ["-d1s"] + wrk[3:], env=env, capture_output=True, timeout=60)
    before = {p: usage(p) for p in pids}
    n0, t0 = served(port, model), time.monotonic()
    done = subprocess.run(wrk[:3] + [f"-d{int(seconds)}s"] + wrk[3:], env=env, capture_output=True,
                          text=True, timeout=seconds + 60)
    if done.returncode != 0 or "Non-2xx" in done.stdout:
        raise SystemExit(f"wrk failed: {done.stdout[-400:]} {done.stderr[-400:]}")
    n = served(port, model) - n0
    wall = time.monotonic() - t0
    rows = {}
    for p in pids:
        cpu1, sw1 = usage(p)
        cpu0, sw0 = before[p]
        rows[p] = ((cpu1 - cpu0) / max(n, 1), (sw1 - sw0) / max(n, 1))
    return {"requests": n, "rps": n / wall, "per_pid": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conc", default="1,8,64")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--binary", action="store_true")
    ap.add_argument("--model", default="add_sub", help="comma-separated models")
    ap.add_argument("--repository", default=str(ROOT / "model_repository"))
    ap.add_argument("--server", nargs=argparse.REMAINDER,
                    help="server command (HTTP port given as {port}); default: this tritond")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in args.server] if args.server else [
        str(ROOT / ".venv/bin/tritond"), "--model-repository", args.repository,
        "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1",
        "--metrics-address", "127.0.0.1", f"--http-port={port}",
        f"--grpc-port={free_port()}", f"--metrics-port={free_port()}"]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="cpu-cost-"))
    lua = tmp / "post.lua"
    lua.write_text(LUA)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_ready(port, proc)
        pids = process_tree(proc.pid)
        roles = {p: role(p) for p in pids}
        print(f"server: {' '.join(cmd[:1])}  {'binary' if args.binary else 'JSON'}, "
              f"{args.seconds:g} s per concurrency")
        print("| model | conc | req/s | process | CPU µs/req | switches/req |")
        print("|---|---:|---:|---|---:|---:|")
        for model in args.model.split(","):
            if model == "add_sub":
                body, hlen = bodies(tmp, args.binary)
            elif args.binary:
                raise SystemExit("--binary is only built for add_sub")
            else:
                body, hlen = json_body(tmp, model_inputs(port, model)), ""
            for conc in [int(c) for c in args.conc.split(",")]:
                r = measure(port, pids, conc, args.seconds, body, hlen, lua, model)
                total = sum(cpu for cpu, _ in r["per_pid"].values())
                for p, (cpu, sw) in sorted(r["per_pid"].items(), key=lambda kv: -kv[1][0]):
                    if cpu > 0.5:
                        print(f"| {model} | {conc} | {r['rps']:,.0f} | {roles[p]} | {cpu:.1f} "
                              f"| {sw:.2f} |")
                print(f"| {model} | {conc} | {r['rps']:,.0f} | **all** | **{total:.1f}** | |",
                      flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
