"""Leak soak: one real tritond, each scenario of ``bench/soak_scenarios.py`` run ``N``
requests in two halves, and per tritond process RSS, open fds, threads and memory
mappings read before, after each half and after a settle, with the server's /dev/shm
segments (count, bytes allocated) and its ``nv_inference_pending_request_count`` sum.

Growth is reported per 10k requests for the whole run and for the second half alone: a
leak keeps climbing in the second half; a warm-up (caches, arenas, grpc pools) does not.

    .venv/bin/python bench/soak.py -n 2000                # every scenario
    .venv/bin/python bench/soak.py -n 20000 -s shm_cycles,disconnects
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from bench import soak_repo  # noqa: E402
from bench.procstat import process_tree, role  # noqa: E402
from bench.soak_scenarios import SCENARIOS  # noqa: E402
from tests.server import Server, server_id_of  # noqa: E402

FIELDS = ("rss_kb", "fds", "threads", "maps")


def proc_reading(pid: int) -> dict[str, int] | None:
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        fds = len(list(pathlib.Path(f"/proc/{pid}/fd").iterdir()))
        maps = pathlib.Path(f"/proc/{pid}/maps").read_text().count("\n")
    except OSError:
        return None
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return {"rss_kb": rss, "fds": fds, "threads": threads, "maps": maps}


def shm_reading(srv: Server) -> dict[str, int]:
    segs = list(pathlib.Path("/dev/shm").glob(f"tritond-{server_id_of(srv.proc.pid)}-*"))
    return {"count": len(segs), "bytes": sum(p.stat().st_blocks * 512 for p in segs)}


def gauges(srv: Server) -> dict[str, float]:
    """Sums over models of the pending-request gauge and of cancelled requests."""
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()

    def total(pattern: str) -> float:
        return sum(float(m) for m in re.findall(pattern, text, re.M))
    return {"pending": total(r"^nv_inference_pending_request_count\{[^}]*\} (\S+)$"),
            "cancelled": total(r'^nv_inference_request_failure\{[^}]*reason="CANCELED"'
                               r"[^}]*\} (\S+)$")}


def label(pid: int) -> str:
    """A worker's title names its model instance; other processes go by their role."""
    try:
        title = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return "gone"
    return title[len("tritond: "):] if title.startswith("tritond: worker") else role(pid)


def snapshot(srv: Server) -> dict:
    """Readings keyed by role (pid too: a restarted worker shows as a new row)."""
    procs = {}
    for pid in process_tree(srv.proc.pid):
        reading = proc_reading(pid)
        if reading is not None:
            procs[f"{label(pid)}[{pid}]"] = reading
    return {"procs": procs, "shm": shm_reading(srv), **gauges(srv)}


def per_10k(a: float, b: float, n: int) -> float:
    return (b - a) * 10_000 / max(n, 1)


def report(name: str, n: int, ok: int, secs: float, snaps: list[dict]) -> list[str]:
    """Markdown rows: per process, whole-run and second-half growth per 10k requests."""
    before, mid, after, settled = snaps
    rows = []
    for proc in sorted(settled["procs"]):
        if proc not in before["procs"] or proc not in mid["procs"]:
            rows.append(f"| {name} | {proc} | new during the run | | | |")
            continue
        cells, grew = [], False
        for f in FIELDS:
            b, m, s = before["procs"][proc][f], mid["procs"][proc][f], settled["procs"][proc][f]
            grew |= s != b
            cells.append(f"{per_10k(b, s, n):+.0f} / {per_10k(m, s, n - n // 2):+.0f}")
        if not grew:
            continue
        rows.append(f"| {name} | {proc} | " + " | ".join(cells) + " |")
    flat = len(settled["procs"]) - len(rows)
    gone = set(before["procs"]) - set(settled["procs"])
    rows += [f"| {name} | {proc} | gone during the run | | | |" for proc in sorted(gone)]
    sb, sm, ss = before["shm"], mid["shm"], settled["shm"]
    rows.append(f"| {name} | /dev/shm | segments {sb['count']} → {sm['count']} → "
                f"{after['shm']['count']} → {ss['count']}, KiB {sb['bytes'] >> 10} → "
                f"{sm['bytes'] >> 10} → {after['shm']['bytes'] >> 10} → {ss['bytes'] >> 10}; "
                f"pending {settled['pending']:.0f}, cancelled "
                f"+{settled['cancelled'] - before['cancelled']:.0f}; {flat} processes unchanged; "
                f"{ok}/{n} as expected, {n / secs:.0f}/s | | | |")
    return rows


def run(srv: Server, name: str, n: int, settle: float) -> list[str]:
    fn = SCENARIOS[name]
    fn(srv, min(200, n))                     # warm-up: first-use arenas, pools, caches
    time.sleep(settle)
    snaps = [snapshot(srv)]
    t0 = time.monotonic()
    ok = fn(srv, n // 2)
    snaps.append(snapshot(srv))
    ok += fn(srv, n - n // 2)
    secs = time.monotonic() - t0
    snaps.append(snapshot(srv))
    time.sleep(settle)
    snaps.append(snapshot(srv))
    return report(name, n, ok, secs, snaps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20_000, help="requests per scenario")
    ap.add_argument("-s", "--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--settle", type=float, default=2.0, help="seconds before the last reading")
    ap.add_argument("--start-settle", type=float, default=15.0,
                    help="seconds idle after start: an idle ONNX worker maps ~14 more "
                         "regions once, some 10 s after start, which is no request's doing")
    args = ap.parse_args()
    names = args.scenarios.split(",")
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="tritond-soak-") as tmp:
        srv = Server((soak_repo.write(pathlib.Path(tmp)),), "--allow-client-shm=true")
        try:
            time.sleep(args.start_settle)
            print("| scenario | process | RSS KiB | fds | threads | maps |")
            print("|---|---|---:|---:|---:|---:|")
            for name in names:
                for row in run(srv, name, args.n, args.settle):
                    print(row, flush=True)
        finally:
            srv.stop()
    print("\ncells: growth per 10k requests, whole run / second half, after a "
          f"{args.settle:g} s settle; /dev/shm: before → half → end → settled")


if __name__ == "__main__":
    main()
