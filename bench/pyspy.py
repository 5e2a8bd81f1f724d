"""py-spy profiles of server processes over bench/cpu_cost.py's measured window.

    python bench/cpu_cost.py --repository bench/pipelines/models --model pipeline \
        --conc 8 --profile scheduler,w --profile-dir /tmp/prof

``--profile ROLES`` (comma-separated prefixes of cpu_cost's role names, e.g.
``scheduler``, ``frontend``, ``w`` for every worker) records each matching
process with ``py-spy record --nonblocking`` (sampling from outside: the
process is not paused, so its CPU figures stay comparable) with ``--gil``
(only samples of the thread holding the GIL: a loop blocked in epoll or select
has released it, so idle time drops out) while the load runs, then prints, per process, the functions with the most *self* samples
and the most *inclusive* samples (a function and everything it called), as a
share of those samples.
Raw stacks (py-spy's "raw" format, one stack per line with a count) are kept
in ``--profile-dir`` for flame graphs. py-spy is not a test dependency:
``pip install py-spy``.
"""
from __future__ import annotations

import collections
import pathlib
import shutil
import signal
import subprocess

IDLE = ("select", "epoll", "poll (", "_run_once", "recv_into", "wait (")   # leaf frames


class Profiles:
    """``py-spy record`` attached to each pid whose role starts with one of ``roles``."""

    def __init__(self, roles: str, out: pathlib.Path, py_spy: str = "") -> None:
        self.roles = [r for r in roles.split(",") if r]
        self.out = out
        self.py_spy = py_spy or shutil.which("py-spy") or str(
            pathlib.Path(__file__).resolve().parents[1] / ".venv/bin/py-spy")
        self.procs: dict[int, tuple[subprocess.Popen, pathlib.Path, str]] = {}
        self.reports: list[str] = []     # one summary per process per window
        out.mkdir(parents=True, exist_ok=True)

    def start(self, pids: dict[int, str], tag: str) -> None:
        self.tag = tag
        for pid, role in pids.items():
            if not any(role.startswith(r) for r in self.roles):
                continue
            path = self.out / f"{tag}-{role.replace(' ', '_')}-{pid}.txt"
            cmd = [self.py_spy, "record", "--nonblocking", "--gil", "-r", "250", "-f", "raw",
                   "-o", str(path), "--pid", str(pid)]
            self.procs[pid] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL), path, role)

    def stop(self, top: int = 12) -> None:
        """Stop every recorder; keep each process's hottest functions in ``reports``."""
        for proc, _, _ in self.procs.values():
            proc.send_signal(signal.SIGINT)
        for pid, (proc, path, role) in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            if path.exists():
                self.reports.append(summary(path, f"window {self.tag}, {role} (pid {pid})", top))
        self.procs.clear()


def summary(path: pathlib.Path, title: str, top: int) -> str:
    """Self and inclusive shares of the busy samples in one raw py-spy file."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        if any(frames[-1].startswith(i) for i in IDLE):
            continue                      # waiting for a message, not working
        count = int(n)
        busy += count
        own[_short(frames[-1])] += count
        for f in set(_short(f) for f in frames):
            incl[f] += count
    rows = [f"\n### {title}: {busy} busy samples", "| self % | function | | incl % | function |",
            "|---:|---|---|---:|---|"]
    inc = [kv for kv in incl.most_common() if kv[1] < busy][:top]   # not the loop itself
    for (f1, n1), (f2, n2) in zip(own.most_common(top), inc):
        rows.append(f"| {100 * n1 / max(busy, 1):.1f} | {f1} | | {100 * n2 / max(busy, 1):.1f} | {f2} |")
    return "\n".join(rows)


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: per function, not line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0].rstrip(')')})" if where else name
