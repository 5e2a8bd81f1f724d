"""Latency summaries (``--metrics-config summary_latencies=true``), Triton's
``nv_inference_*_summary_us`` families: quantiles over a sliding time window.

Triton uses prometheus-cpp's Summary: a 60 s window in 5 age buckets, quantiles
from ``summary_quantiles`` (default 0.5, 0.9, 0.95, 0.99, 0.999), plus a running
``_count`` and ``_sum``. Here each age bucket keeps its observations (at most
``CAP``, a uniform reservoir beyond that, so memory stays bounded under load) and
a quantile is read from the sorted union of the live buckets: exact below the
cap, well within Triton's error targets above it. Observed by ``ModelStats``
per successful request (the scheduler sees every timestamp), only when enabled.
"""
from __future__ import annotations

import math
import random
import re

MAX_AGE_NS = 60 * 10**9          # prometheus-cpp's default max_age
AGE_BUCKETS = 5                  # ... and age_buckets
CAP = 4096                       # observations kept per age bucket
DEFAULT_QUANTILES = ((0.5, 0.05), (0.9, 0.01), (0.95, 0.001), (0.99, 0.001), (0.999, 0.001))

# Triton's family of each observed duration, in ModelStats' order.
FAMILIES = ("request", "queue", "compute_input", "compute_infer", "compute_output")


def parse_quantiles(text: str) -> tuple[tuple[float, float], ...]:
    """``"0.5:0.05,0.9:0.01"`` -> ((0.5, 0.05), (0.9, 0.01)); ValueError names the bad pair."""
    out = []
    for pair in text.split(","):
        q, colon, err = pair.partition(":")
        if not colon:
            raise ValueError(f"Invalid option: [{pair}]. No ':' delimiter found. Expected "
                             f"format is <quantile>:<error>")
        try:
            qv, ev = _stod(q), _stod(err)
        except ValueError:
            raise ValueError(f"Invalid option: [{pair}]: not numbers") from None
        if not (0.0 <= qv <= 1.0 and 0.0 <= ev <= 1.0):
            raise ValueError(f"Invalid option: [{pair}]: quantile and error must be in [0, 1]")
        out.append((qv, ev))
    return tuple(out)


def quantiles_of(settings: list[str]) -> tuple[tuple[float, float], ...] | None:
    """The quantiles when --metrics-config enables summaries, else None (last one wins)."""
    on, quantiles = False, DEFAULT_QUANTILES
    for entry in settings:
        key, _, value = entry.partition("=")
        if key == "summary_latencies":
            on = value.strip().lower() in ("true", "1", "on", "yes")
        elif key == "summary_quantiles":
            quantiles = parse_quantiles(value.strip('"'))
    return quantiles if on else None


# The decimal number at the front of a string, as C++'s std::stod reads it (Triton parses
# the quantiles with it: "0.0.1" is 0.0, "0.5x" is 0.5).
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _stod(text: str) -> float:
    found = _NUMBER.match(text)
    if found is None:
        raise ValueError(text)
    return float(found.group())


class Window:
    """One summary: count, sum and the observations of the last MAX_AGE_NS, in age
    buckets of MAX_AGE_NS / AGE_BUCKETS: [start_ns, offered, values]."""

    __slots__ = ("count", "sum", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.buckets: list[list] = []

    def observe(self, value: float, now_ns: int) -> None:
        self.count += 1
        self.sum += value
        buckets = self.buckets
        if not buckets or now_ns - buckets[-1][0] >= MAX_AGE_NS // AGE_BUCKETS:
            buckets.append([now_ns, 0, []])
            self._expire(now_ns)
        bucket = buckets[-1]
        bucket[1] += 1
        values = bucket[2]
        if len(values) < CAP:
            values.append(value)
        else:                           # reservoir: every observation equally likely kept
            i = random.randrange(bucket[1])
            if i < CAP:
                values[i] = value

    def _expire(self, now_ns: int) -> None:
        while self.buckets and self.buckets[0][0] <= now_ns - MAX_AGE_NS:
            del self.buckets[0]

    def live(self, now_ns: int) -> list[float]:
        """The observations still inside the window (what another process merges in)."""
        self._expire(now_ns)
        return [v for b in self.buckets for v in b[2]]

    def quantiles(self, qs, now_ns: int) -> list[float]:
        return quantiles_from(self.live(now_ns), qs)


def quantiles_from(values: list[float], qs) -> list[float]:
    """Each quantile of ``values``; NaN when there are none (as prometheus-cpp)."""
    if not values:
        return [math.nan] * len(qs)
    values = sorted(values)
    n = len(values)
    return [values[min(n - 1, max(0, math.ceil(q * n) - 1))] for q, _ in qs]


class Summaries:
    """The five latency summaries of one model version (microseconds)."""

    __slots__ = ("windows", "cached")

    def __init__(self) -> None:
        self.windows = {name: Window() for name in FAMILIES}
        self.cached = False     # a cached model has no request summary (as Triton)

    def observe(self, now_ns: int, request_us: float, queue_us: float, ci_us: float,
                cf_us: float, co_us: float) -> None:
        w = self.windows
        w["request"].observe(request_us, now_ns)
        w["queue"].observe(queue_us, now_ns)
        w["compute_input"].observe(ci_us, now_ns)
        w["compute_infer"].observe(cf_us, now_ns)
        w["compute_output"].observe(co_us, now_ns)

    def rows(self, qs, now_ns: int) -> dict[str, list[float]]:
        """family -> [count, sum, quantile values...] (messages.ModelMetrics.summaries)."""
        return {name: [float(w.count), w.sum, *w.quantiles(qs, now_ns)]
                for name, w in self.windows.items()
                if not (self.cached and name == "request")}
