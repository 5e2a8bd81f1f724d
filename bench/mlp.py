"""Scenario e of the anchors harness: dynamic batching under 64 concurrent HTTP clients.

Serves the anchors' ``mlp_batched`` (dynamic batching, max 64) and
``mlp_unbatched`` Python models from a temporary copy of the repository, drives
each with wrk (the anchors' Lua script and pre-encoded bodies, JSON and binary
tensors) and reports req/s, latency and the average executed batch
(inference_count / execution_count from the statistics endpoint).

    .venv/bin/python bench/mlp.py [--duration 5] [--conc 64] [--profile DIR]

``--profile DIR`` records py-spy collapsed stacks (``PID.txt``, raw format) of every
server process during the binary mlp_batched run.
Triton 2.51 on this machine: ~12-15k req/s binary (avg batch ~28-35), ~8.3k JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
# As bench/vs_triton.sh: $ANCHORS, else the shared folder beside the checkout.
ANCHORS = pathlib.Path(os.environ.get("ANCHORS", ROOT.parent / "shared" / "anchors"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ANCHORS / "lib"))

from tests.server import Server  # noqa: E402

MODELS = ("mlp_batched", "mlp_unbatched")


def copy_models(dest: pathlib.Path) -> pathlib.Path:
    """Copy the anchors' models; a model.py that only names another file (a symlink
    checked out as text) is replaced by that file."""
    repo = dest / "repo"
    for name in MODELS:
        shutil.copytree(ANCHORS / "models" / "triton" / name, repo / name)
        py = repo / name / "1" / "model.py"
        py.chmod(0o644)
        text = py.read_text().strip()
        if "\n" not in text and text.endswith(".py"):
            py.write_text((ANCHORS / "models" / "triton" / name / "1" / text).resolve().read_text())
    return repo


def stats(srv: Server, model: str) -> tuple[int, int]:
    with urllib.request.urlopen(f"http://{srv.url}/v2/models/{model}/stats") as r:
        (s,) = json.load(r)["model_stats"]
    return s["inference_count"], s["execution_count"]


def pids(srv: Server) -> dict[str, int]:
    """Role -> pid for the frontend, the scheduler and the mlp_batched worker (by cmdline)."""
    out = {}
    for pid in srv.children():
        try:
            cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        out[cmd] = pid
    return out


def run(args) -> None:
    import loadgen  # the anchors' wrk wrapper

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        repo = copy_models(tmp)
        bodies = tmp / "bodies"
        subprocess.run([sys.executable, str(ANCHORS / "lib" / "bodies.py"), str(bodies)],
                       check=True, capture_output=True)
        srv = Server([repo], "--log-verbose=0")
        try:
            rows = []
            for enc, body, ctype in (("json", "mlp.json", "application/json"),
                                     ("binary", "mlp.bin", "application/octet-stream")):
                hlen = (bodies / "mlp.bin.hlen").read_text().strip() if enc == "binary" else ""
                for model in MODELS:
                    before = stats(srv, model)
                    prof = None
                    if args.profile and enc == "binary" and model == "mlp_batched":
                        prof = profile(srv, args.profile, args.warmup + args.duration)
                    r = loadgen.wrk(f"http://{srv.url}/v2/models/{model}/infer",
                                    str(bodies / body), args.conc, args.duration, args.warmup,
                                    ctype, hlen)
                    for p in prof or ():
                        p.wait()
                    after = stats(srv, model)
                    execs = after[1] - before[1]
                    avg = (after[0] - before[0]) / execs if execs else 0.0
                    rows.append((model, enc, r["rps"], r["p50_ms"], r["p99_ms"], r["errors"], avg))
        finally:
            srv.stop()
    print("| model | encoding | conc | req/s | p50 ms | p99 ms | errors | avg batch |")
    print("|---|---|---|---|---|---|---|---|")
    for model, enc, rps, p50, p99, err, avg in rows:
        print(f"| {model} | {enc} | {args.conc} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {err} "
              f"| {avg:.1f} |")


def profile(srv: Server, outdir: str, seconds: float) -> list:
    """py-spy record of each interesting process, in the background."""
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    spy = ROOT / ".venv" / "bin" / "py-spy"
    procs = []
    for cmd, pid in pids(srv).items():
        role = next((r for r in ("frontend", "scheduler", "w") if f"-{r}" in cmd or r in cmd),
                    str(pid))
        procs.append(subprocess.Popen(
            [str(spy), "record", "-d", str(int(seconds)), "-r", "200", "--pid", str(pid),
             "-f", "raw", "-o", str(out / f"{pid}.txt")], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        print(f"profiling pid {pid} ({role}): {out}/{pid}.txt", file=sys.stderr)
    return procs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--profile", default="")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
