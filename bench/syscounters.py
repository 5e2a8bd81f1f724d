"""Syscalls and context switches of a server's processes over a measured window:
``perf stat`` (in-kernel counters, cheap) or ``strace -c`` (slow; top syscalls)
attached to each pid (bench/cpu_cost.py's columns)."""
from __future__ import annotations

import pathlib
import signal
import subprocess
import time


class Counters:
    """``perf stat`` (syscalls, context switches) or ``strace -c`` attached to each pid."""

    def __init__(self, pids: list[int], tmp: pathlib.Path, strace: bool) -> None:
        self.pids, self.tmp, self.strace = pids, tmp, strace
        self.procs: dict[int, subprocess.Popen] = {}
        self.profiles = None            # bench/pyspy.Profiles (--profile)
        self.roles: dict[int, str] = {}
        self.window = 0

    def start(self) -> None:
        self.window += 1
        if self.profiles is not None:
            self.profiles.start(self.roles, f"w{self.window}")
        for p in self.pids:
            out = self.tmp / f"count-{p}.txt"
            if self.strace:
                cmd = ["strace", "-c", "-f", "-q", "-o", str(out), "-p", str(p)]
            else:
                cmd = ["perf", "stat", "-x,", "-o", str(out), "-e",
                       "raw_syscalls:sys_enter,context-switches", "-p", str(p)]
            try:
                self.procs[p] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL)
            except OSError:
                pass
        time.sleep(0.3)     # let them attach before the window opens

    def stop(self) -> dict[int, tuple[float, float, str]]:
        """pid -> (syscalls, context switches, top syscalls) over the window; NaN if unknown."""
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        out = {}
        for p, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            text = (self.tmp / f"count-{p}.txt").read_text() if (self.tmp / f"count-{p}.txt").exists() else ""
            out[p] = _strace(text) if self.strace else _perf(text)
        if self.profiles is not None:
            self.profiles.stop()
        return out


def _perf(text: str) -> tuple[float, float, str]:
    vals = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) >= 3 and f[0].replace(".", "").isdigit():
            vals[f[2]] = float(f[0])
        elif len(f) >= 3 and f[0] == "<not counted>":     # it never ran in the window
            vals[f[2]] = 0.0
    return (vals.get("raw_syscalls:sys_enter", float("nan")),
            vals.get("context-switches", float("nan")), "")


def _strace(text: str) -> tuple[float, float, str]:
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1] != "total" and f[3].isdigit():
            rows.append((int(f[3]), f[-1]))
    rows.sort(reverse=True)
    total = float(sum(n for n, _ in rows)) if rows or text else float("nan")  # attached, idle: 0
    return total, float("nan"), " ".join(f"{name}:{n}" for n, name in rows[:3])
