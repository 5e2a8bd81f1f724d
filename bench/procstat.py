"""Readings of /proc for the benchmarks: a server's process tree, each process's role,
CPU time and context switches, per process and per thread kind."""
from __future__ import annotations

import os
import pathlib
import re

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


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


def usage(pid: int) -> tuple[float, int, float]:
    """(CPU µs, context switches, system-mode CPU µs) of ``pid`` so far."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_bytes()
        fields = stat[stat.rindex(b")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) * TICK_US
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        switches = sum(int(v) for v in re.findall(r"ctxt_switches:\s+(\d+)", status))
        return cpu, switches, int(fields[12]) * TICK_US
    except OSError:
        return 0.0, 0, 0.0


def thread_usage(pid: int) -> dict[int, tuple[str, float, int]]:
    """tid -> (kind, CPU µs, context switches) of every thread of ``pid`` so far.

    kind: "main" for the main thread (the event loop in a frontend), else the
    thread's name (``comm``): grpcio core's threads are "event_engine"; a
    Python thread (the gRPC queue poller) keeps the process's name, "other".
    """
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    proc_name = pathlib.Path(f"/proc/{pid}/comm").read_text().strip() if tids else ""
    for tid in tids:
        try:
            base = pathlib.Path(f"/proc/{pid}/task/{tid}")
            stat = (base / "stat").read_bytes()
            fields = stat[stat.rindex(b")") + 2:].split()
            status = (base / "status").read_text()
            name = (base / "comm").read_text().strip()
        except OSError:
            continue
        kind = "main" if int(tid) == pid else "other" if name == proc_name else name
        out[int(tid)] = (kind, (int(fields[11]) + int(fields[12])) * TICK_US,
                         sum(int(v) for v in re.findall(r"ctxt_switches:\s+(\d+)", status)))
    return out


def thread_summary(before: dict, after: dict, n: int) -> str:
    """CPU µs and context switches per request of each kind of thread, busiest first."""
    kinds: dict[str, list] = {}
    for tid, (kind, cpu, sw) in after.items():
        _, cpu0, sw0 = before.get(tid, (kind, 0.0, 0))
        k = kinds.setdefault(kind, [0.0, 0, 0])
        k[0] += (cpu - cpu0) / max(n, 1)
        k[1] += (sw - sw0) / max(n, 1)
        k[2] += 1
    rows = sorted(kinds.items(), key=lambda kv: -kv[1][0])
    return ", ".join(f"{kind}{f' ×{c}' if c > 1 else ''} {cpu:.1f} µs ({sw:.2f} sw)"
                     for kind, (cpu, sw, c) in rows if cpu >= 0.5 or sw >= 0.05)
