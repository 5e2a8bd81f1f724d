"""Prometheus metrics with Triton's ``nv_*`` names, served on ``--metrics-port``.

Numbers come from the scheduler's statistics (the same source as the
statistics extension), so ``/metrics`` and ``/v2/models/stats`` always agree.
prometheus_client holds the metric families; ``promtext`` writes the text and
``hostmetrics`` samples the host gauges.
"""
from __future__ import annotations


from prometheus_client.metrics_core import Metric

from tritond.scheduler.summary import quantiles_from, quantiles_of

from . import custommetrics, gpumetrics
from .hostmetrics import CpuSampler, pinned_pool
from .metriclabels import with_namespaces, with_tags  # noqa: F401 - tests import them here
from .promtext import CONTENT_TYPE, render

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
# summary_latencies=true: ModelMetrics.summaries key -> Triton's family and HELP (core's words)
_SUMMARIES = (
    ("request", "nv_inference_request_summary_us",
     "Summary of inference request duration in microseconds (includes cached requests)"),
    ("queue", "nv_inference_queue_summary_us",
     "Summary of inference queuing duration in microseconds (includes cached requests)"),
    ("compute_input", "nv_inference_compute_input_summary_us",
     "Cumulative compute input duration in microseconds (does not include cached requests)"),
    ("compute_infer", "nv_inference_compute_infer_summary_us",
     "Cumulative compute inference duration in microseconds (does not include cached "
     "requests)"),
    ("compute_output", "nv_inference_compute_output_summary_us",
     "Cumulative inference compute output duration in microseconds (does not include cached "
     "requests)"),
)
# summary_latencies=true and a cached version: the response cache's summaries (core's words)
_CACHE_SUMMARIES = (
    ("hit", "nv_cache_hit_summary_per_model",
     "Summary of cache hit counts/durations per model, in microseconds."),
    ("miss", "nv_cache_miss_summary_per_model",
     "Summary of cache miss counts/durations per model, in microseconds."),
)
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
             load_seconds: dict | None = None, quantiles=None,
             cache_summaries: list | None = None) -> list[Metric]:
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
    if quantiles:
        out.extend(summaries(rows or (), quantiles))
    if any(r.direct for r in rows or ()):      # tritond's own family: absent until used
        out.append(_direct_answers(rows))
    cache_entries = [s for s in entries if (s["name"], s["version"]) in cached]
    for name, doc, read in _CACHE if cache_entries else ():
        fam = Metric(name, doc, "counter")
        for s in cache_entries:
            fam.add_sample(name, {"model": s["name"], "version": s["version"]}, read(s))
        out.append(fam)
    if quantiles and cache_entries:
        out.extend(cache_summary_families(cache_entries, cache_summaries or (), quantiles))
    out.extend(pinned_pool())
    if cpu is not None:
        out.extend(cpu.families())
    return out


def summaries(rows, quantiles) -> list[Metric]:
    """Triton's latency summaries (``--metrics-config summary_latencies=true``): per model
    version ``_count``, ``_sum`` and one sample per quantile, from the scheduler's windows."""
    out = []
    for key, name, doc in _SUMMARIES:
        fam = Metric(name, doc, "summary")
        for r in sorted(rows, key=lambda r: (r.name, r.version)):
            values = r.summaries.get(key)
            if values is None:
                continue
            labels = {"model": r.name, "version": str(r.version)}
            fam.add_sample(name + "_count", labels, values[0])
            fam.add_sample(name + "_sum", labels, values[1])
            for (q, _), v in zip(quantiles, values[2:]):
                fam.add_sample(name, {**labels, "quantile": f"{q:g}"}, v)
        if fam.samples:
            out.append(fam)
    return out


def cache_summary_families(entries: list, rows, quantiles) -> list[Metric]:
    """``nv_cache_hit/miss_summary_per_model`` of every cached version (Triton creates them
    at load: count 0 and NaN quantiles before the first lookup), merged over ``rows``:
    every frontend's [model, version, "hit"|"miss", count, sum, observations...]."""
    merged: dict[tuple, list] = {}
    for m, v, kind, count, total, *values in rows:
        acc = merged.setdefault((m, v, kind), [0, 0.0, []])
        acc[0] += count
        acc[1] += total
        acc[2].extend(values)
    out = []
    for kind, name, doc in _CACHE_SUMMARIES:
        fam = Metric(name, doc, "summary")
        for s in sorted(entries, key=lambda s: (s["name"], s["version"])):
            count, total, values = merged.get((s["name"], s["version"], kind), (0, 0.0, []))
            labels = {"model": s["name"], "version": s["version"]}
            fam.add_sample(name + "_count", labels, count)
            fam.add_sample(name + "_sum", labels, total)
            for (q, _), x in zip(quantiles, quantiles_from(values, quantiles)):
                fam.add_sample(name, {**labels, "quantile": f"{q:g}"}, x)
        out.append(fam)
    return out
def _direct_answers(rows) -> Metric:
    """tritond's own: ensemble requests whose final step's worker answered the caller
    directly (one hop less than through the scheduler; scheduler/direct.py)."""
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


def build_app(core):
    """A tiny Starlette app for ``GET /metrics`` (Triton also accepts a trailing slash)."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    opts = core.control.options
    latencies = counter_latencies(opts.metrics_config)
    quantiles = quantiles_of(opts.metrics_config)      # None unless summary_latencies=true
    cpu = CpuSampler() if opts.allow_cpu_metrics else None
    gpu = gpumetrics.sampler() if opts.allow_gpu_metrics else None

    polling = []        # the poll task, started by the first scrape (uvicorn runs no lifespan)

    async def metrics(request):
        if (cpu is not None or gpu is not None) and not polling:
            polling.append(asyncio.get_running_loop().create_task(poll()))
            await poll_once()
        stats, rows, first, cache_rows = await core.control.metrics_snapshot()
        fams = families(stats, rows, latencies=latencies, cpu=cpu,
                        cached=core.control.cached_versions(),
                        load_seconds=core.models.load_seconds(), quantiles=quantiles,
                        cache_summaries=cache_rows)
        if core.first_response.on:      # Triton: only with histogram_latencies=true
            fams += core.first_response.families(first, core.models.ready())
        if gpu is not None:
            fams += gpu.families()
        with_tags(fams, core.models.ready())
        if opts.model_namespacing:
            with_namespaces(fams, core.models.namespaces(opts.model_repository))
        fams += custommetrics.families(core.server_id)    # Python models' MetricFamily, as made
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
