"""Prometheus metrics with Triton's ``nv_*`` names, served on ``--metrics-port``.

Numbers come from the scheduler's statistics (the same source as the
statistics extension), so ``/metrics`` and ``/v2/models/stats`` always agree.
prometheus_client holds the metric families; the text is written here because
prometheus_client's writer appends ``_total`` to counter names in HELP/TYPE
lines, and Triton's dashboards expect ``nv_inference_count`` etc. as is.
"""
from __future__ import annotations


from prometheus_client.metrics_core import Metric

_COUNTERS = (
    # name, help, how to read it from one model_stats entry
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes",
     lambda s: s["inference_stats"]["success"]["count"]),
    ("nv_inference_count", "Number of inferences performed (does not include cached requests)",
     lambda s: s["inference_count"]),
    ("nv_inference_exec_count", "Number of model executions performed (does not include cached requests)",
     lambda s: s["execution_count"]),
    ("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds",
     lambda s: s["inference_stats"]["success"]["ns"] // 1000),
    ("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds",
     lambda s: s["inference_stats"]["queue"]["ns"] // 1000),
    ("nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds",
     lambda s: s["inference_stats"]["compute_input"]["ns"] // 1000),
    ("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds",
     lambda s: s["inference_stats"]["compute_infer"]["ns"] // 1000),
    ("nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds",
     lambda s: s["inference_stats"]["compute_output"]["ns"] // 1000),
)


def families(stats: dict, pending: dict | None = None) -> list[Metric]:
    """Metric families for every model version in a ``{"model_stats": [...]}`` dict."""
    out = []
    entries = stats.get("model_stats", [])
    for name, doc, read in _COUNTERS:
        fam = Metric(name, doc, "counter")
        for s in entries:
            fam.add_sample(name, {"model": s["name"], "version": s["version"]}, read(s))
        out.append(fam)
    fail = Metric("nv_inference_request_failure", "Number of failed inference requests, all batch sizes",
                  "counter")
    for s in entries:
        fail.add_sample("nv_inference_request_failure",
                        {"model": s["name"], "reason": "BACKEND", "version": s["version"]},
                        s["inference_stats"]["fail"]["count"])
    out.append(fail)
    if pending is not None:
        gauge = Metric("nv_inference_pending_request_count",
                       "Instantaneous number of pending requests awaiting execution per-model.", "gauge")
        for (model, version), n in sorted(pending.items()):
            gauge.add_sample("nv_inference_pending_request_count", {"model": model, "version": version}, n)
        out.append(gauge)
    out.extend(cpu_families())
    return out


def cpu_families() -> list[Metric]:
    """nv_cpu_memory_* from /proc/meminfo (Linux)."""
    try:
        info = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return []
    total = info.get("MemTotal", 0)
    used = total - info.get("MemAvailable", 0)
    out = []
    for name, doc, value in (("nv_cpu_memory_total_bytes", "CPU total memory (RAM), in bytes", total),
                             ("nv_cpu_memory_used_bytes", "CPU used memory (RAM), in bytes", used)):
        fam = Metric(name, doc, "gauge")
        fam.add_sample(name, {}, value)
        out.append(fam)
    return out


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
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def metrics(request):
        stats = await core.control.model_statistics()
        return Response(render(families(stats) + core.first_response.families()),
                        media_type=CONTENT_TYPE)

    async def not_found(request, exc):
        return JSONResponse({"error": "Not Found"}, status_code=404)

    return Starlette(routes=[Route("/metrics", metrics), Route("/metrics/", metrics)],
                     exception_handlers={404: not_found})


