"""Host gauges of ``/metrics``: CPU utilization and memory read from /proc, and Triton's
pinned memory pool (always 0 here)."""
from __future__ import annotations

from prometheus_client.metrics_core import Metric


def pinned_pool() -> list[Metric]:
    """Triton's pinned memory pool gauges. tritond has no pinned (page-locked) pool: tensors
    live in POSIX shared memory, so both are 0, as on a Triton without CUDA."""
    out = []
    for name, doc in (("nv_pinned_memory_pool_total_bytes",
                       "Pinned memory pool total memory size, in bytes"),
                      ("nv_pinned_memory_pool_used_bytes",
                       "Pinned memory pool used memory size, in bytes")):
        fam = Metric(name, doc, "gauge")
        fam.add_sample(name, {}, 0)
        out.append(fam)
    return out


class CpuSampler:
    """nv_cpu_utilization (busy share of all cores since the previous poll) and
    nv_cpu_memory_* (MemTotal, MemTotal - MemAvailable), polled every
    --metrics-interval-ms from /proc as Triton does."""

    def __init__(self) -> None:
        self.utilization = 0.0
        self.total = self.used = 0
        self._last = _cpu_times()

    def poll(self) -> None:
        now = _cpu_times()
        if now is not None and self._last is not None:
            busy = sum(max(a - b, 0) for a, b in zip(now[0], self._last[0]))
            idle = sum(max(a - b, 0) for a, b in zip(now[1], self._last[1]))
            self.utilization = busy / (busy + idle) if busy + idle else 0.0
        self._last = now
        self.total, self.used = _memory()

    def families(self) -> list[Metric]:
        out = []
        for name, doc, value in (
                ("nv_cpu_utilization", "CPU utilization rate [0.0 - 1.0]", self.utilization),
                ("nv_cpu_memory_total_bytes", "CPU total memory (RAM), in bytes", self.total),
                ("nv_cpu_memory_used_bytes", "CPU used memory (RAM), in bytes", self.used)):
            fam = Metric(name, doc, "gauge")
            fam.add_sample(name, {}, value)
            out.append(fam)
        return out


def _cpu_times():
    """(busy, idle) jiffies of the aggregate 'cpu' line of /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[1:9])
    except (OSError, ValueError):
        return None
    if fields[0] != "cpu":
        return None
    return (user, nice, system, irq, softirq, steal), (idle, iowait)


def _memory() -> tuple[int, int]:
    """(total, used) bytes from /proc/meminfo; zeros when it cannot be read (as Triton)."""
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    total, available = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    return (total, total - available) if available <= total else (0, 0)
