"""Prometheus metrics with Triton's ``nv_*`` names, served on ``--metrics-port``.

Numbers come from the scheduler's statistics (the same source as the
statistics extension), so ``/metrics`` and ``/v2/models/stats`` always agree.
prometheus_client holds the metric families; the text is written here because
prometheus_client's writer appends ``_total`` to counter names in HELP/TYPE
lines, and Triton's dashboards expect ``nv_inference_count`` etc. as is.
"""
from __future__ import annotations


from prometheus_client.metrics_core import Metric

from . import gpumetrics

# The per-request counters: name, HELP (Triton r26.06's words), how to read one model_stats
# entry. The latency ones (latency=True) go with --metrics-config counter_latencies=false.
_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes",
     lambda s: s["inference_stats"]["success"]["count"], False),
    ("nv_inference_count", "Number of inferences performed (does not include cached requests)",
     lambda s: s["inference_count"], False),
    ("nv_inference_exec_count",
     "Number of model executions performed (does not include cached requests)",
     lambda s: s["execution_count"], False),
    ("nv_inference_request_duration_us",
     "Cumulative inference request duration in microseconds (includes cached requests)",
     lambda s: s["inference_stats"]["success"]["ns"] // 1000, True),
    ("nv_inference_queue_duration_us",
     "Cumulative inference queuing duration in microseconds (includes cached requests)",
     lambda s: s["inference_stats"]["queue"]["ns"] // 1000, True),
    ("nv_inference_compute_input_duration_us",
     "Cumulative compute input duration in microseconds (does not include cached requests)",
     lambda s: s["inference_stats"]["compute_input"]["ns"] // 1000, True),
    ("nv_inference_compute_infer_duration_us",
     "Cumulative compute inference duration in microseconds (does not include cached requests)",
     lambda s: s["inference_stats"]["compute_infer"]["ns"] // 1000, True),
    ("nv_inference_compute_output_duration_us",
     "Cumulative inference compute output duration in microseconds (does not include cached "
     "requests)",
     lambda s: s["inference_stats"]["compute_output"]["ns"] // 1000, True),
)
FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")   # Triton pre-creates all four
# Per-model response cache counters, only for versions whose responses are cached.
_CACHE = (
    ("nv_cache_num_hits_per_model", "Number of cache hits per model",
     lambda s: s["inference_stats"]["cache_hit"]["count"]),
    ("nv_cache_hit_duration_per_model", "Total cache hit duration per model, in microseconds",
     lambda s: s["inference_stats"]["cache_hit"]["ns"] // 1000),
    ("nv_cache_num_misses_per_model", "Number of cache misses per model",
     lambda s: s["inference_stats"]["cache_miss"]["count"]),
    ("nv_cache_miss_duration_per_model",
     "Total cache miss (insert+lookup) duration per model, in microseconds",
     lambda s: s["inference_stats"]["cache_miss"]["ns"] // 1000),
)


def families(stats: dict, rows: list | None = None, *, latencies: bool = True,
             cpu: "CpuSampler | None" = None, cached: set = frozenset(),
             load_seconds: dict | None = None) -> list[Metric]:
    """Metric families for every model version in a ``{"model_stats": [...]}`` dict;
    ``rows`` (messages.ModelMetrics) add failures per reason and pending counts."""
    out = []
    entries = stats.get("model_stats", [])
    by_key = {(r.name, str(r.version)): r for r in rows or ()}
    for name, doc, read, latency in _COUNTERS:
        if latency and not latencies:
            continue
        fam = Metric(name, doc, "counter")
        for s in entries:
            fam.add_sample(name, {"model": s["name"], "version": s["version"]}, read(s))
        out.append(fam)
        if name == "nv_inference_request_success":
            out.append(_failures(entries, by_key))
    out.append(_load_durations(entries, load_seconds or {}))
    gauge = Metric("nv_inference_pending_request_count",
                   "Instantaneous number of pending requests awaiting execution per-model.",
                   "gauge")
    for s in entries:
        row = by_key.get((s["name"], s["version"]))
        gauge.add_sample(gauge.name, {"model": s["name"], "version": s["version"]},
                         row.pending if row is not None else 0)
    out.append(gauge)
    if any(r.direct for r in rows or ()):      # tritond's own family: absent until used
        out.append(_direct_answers(rows))
    cache_entries = [s for s in entries if (s["name"], s["version"]) in cached]
    for name, doc, read in _CACHE if cache_entries else ():
        fam = Metric(name, doc, "counter")
        for s in cache_entries:
            fam.add_sample(name, {"model": s["name"], "version": s["version"]}, read(s))
        out.append(fam)
    out.extend(pinned_pool())
    if cpu is not None:
        out.extend(cpu.families())
    return out


def _direct_answers(rows) -> Metric:
    """tritond's own: ensemble requests whose final step's worker answered the caller
    directly (one hop less than through the scheduler; scheduler/ensembles.py)."""
    name = "tritond_ensemble_direct_answers"
    fam = Metric(name, "Ensemble requests answered by the final step's worker directly",
                 "counter")
    for row in rows:
        if row.direct:
            fam.add_sample(name, {"model": row.name, "version": str(row.version)}, row.direct)
    return fam


def _load_durations(entries: list, seconds: dict) -> Metric:
    fam = Metric("nv_model_load_duration_secs", "Model load time in seconds", "gauge")
    for s in entries:
        fam.add_sample(fam.name, {"model": s["name"], "version": s["version"]},
                       seconds.get((s["name"], s["version"]), 0.0))
    return fam


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


def _failures(entries: list, by_key: dict) -> Metric:
    name = "nv_inference_request_failure"
    fam = Metric(name, "Number of failed inference requests, all batch sizes", "counter")
    for s in entries:
        row = by_key.get((s["name"], s["version"]))
        counts = row.failures if row is not None else {"OTHER": s["inference_stats"]["fail"]["count"]}
        for reason in FAILURE_REASONS:
            fam.add_sample(name, {"model": s["name"], "reason": reason, "version": s["version"]},
                           counts.get(reason, 0))
    return fam


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


def render(fams: list[Metric]) -> bytes:
    """Prometheus text exposition format 0.0.4."""
    lines = []
    for fam in fams:
        lines.append(f"# HELP {fam.name} {_escape_help(fam.documentation)}")
        lines.append(f"# TYPE {fam.name} {fam.type}")
        for sample in fam.samples:
            labels = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in sample.labels.items())
            value = sample.value
            text = str(int(value)) if float(value).is_integer() else repr(float(value))
            lines.append(f"{sample.name}{{{labels}}} {text}" if labels else f"{sample.name} {text}")
    return ("\n".join(lines) + "\n").encode()


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def build_app(core):
    """A tiny Starlette app for ``GET /metrics`` (Triton also accepts a trailing slash)."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    opts = core.control.options
    latencies = counter_latencies(opts.metrics_config)
    histograms = setting(opts.metrics_config, "histogram_latencies", False)
    cpu = CpuSampler() if opts.allow_cpu_metrics else None
    gpu = gpumetrics.sampler() if opts.allow_gpu_metrics else None

    polling = []        # the poll task, started by the first scrape (uvicorn runs no lifespan)

    async def metrics(request):
        if (cpu is not None or gpu is not None) and not polling:
            polling.append(asyncio.get_running_loop().create_task(poll()))
            await poll_once()
        stats, rows, first = await core.control.metrics_snapshot()
        fams = families(stats, rows, latencies=latencies, cpu=cpu,
                        cached=core.control.cached_versions(),
                        load_seconds=core.models.load_seconds())
        if histograms:          # Triton: histograms only with histogram_latencies=true
            fams += core.first_response.families(first)
        if gpu is not None:
            fams += gpu.families()
        return Response(render(fams), media_type=CONTENT_TYPE)

    async def not_found(request, exc):
        return JSONResponse({"error": "Not Found"}, status_code=404)

    async def poll_once():
        if cpu is not None:
            cpu.poll()                   # two small /proc reads
        if gpu is not None:
            await asyncio.to_thread(gpu.poll)    # NVML blocks: never on the loop

    async def poll():
        while True:
            await asyncio.sleep(opts.metrics_interval_ms / 1000)
            await poll_once()

    return Starlette(routes=[Route("/metrics", metrics), Route("/metrics/", metrics)],
                     exception_handlers={404: not_found})


def counter_latencies(settings: list[str]) -> bool:
    """--metrics-config counter_latencies=<bool> (the last one wins; default true)."""
    return setting(settings, "counter_latencies", True)


def setting(settings: list[str], name: str, default: bool) -> bool:
    """A boolean --metrics-config setting (the last one wins)."""
    from tritond.options import parse_bool

    on = default
    for entry in settings:
        key, _, value = entry.partition("=")
        if key == name:
            on = parse_bool(value)
    return on
