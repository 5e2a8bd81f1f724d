"""``nv_inference_first_response_histogram_ms``: request to first response, per model version.

As Triton with ``--metrics-config histogram_latencies=true``: every READY version has
the histogram from its load (zero counts), the first response of each request is
observed, decoupled model or not, in whole milliseconds (core's integer division), and
a model's ``model_metrics`` may set its buckets (default 100, 500, 2000, 5000 ms). The
frontend measures it itself: it sees each request arrive and its first response come
back, so ensemble steps and BLS calls, which never pass a frontend, are not observed.
"""
from __future__ import annotations

import json
from bisect import bisect_left

from prometheus_client.metrics_core import Metric

NAME = "nv_inference_first_response_histogram_ms"
BUCKETS = (100.0, 500.0, 2000.0, 5000.0)


def histograms_on(metrics_config: list[str]) -> bool:
    """--metrics-config histogram_latencies=<bool> (the last one wins; default false)."""
    from tritond.options import parse_bool

    on = False
    for entry in metrics_config:
        key, _, value = entry.partition("=")
        if key == "histogram_latencies":
            on = parse_bool(value)
    return on


def buckets_of(spec) -> tuple[float, ...]:
    """The model's ``model_metrics`` buckets for this family, else Triton's default."""
    if spec is None or '"model_metrics"' not in spec.config_json:
        return BUCKETS
    controls = json.loads(spec.config_json).get("model_metrics", {}).get("metric_control", [])
    for control in controls:
        if control.get("metric_identifier", {}).get("family") == NAME:
            found = control.get("histogram_options", {}).get("buckets")
            if found:
                return tuple(sorted(set(float(b) for b in found)))
    return BUCKETS


class FirstResponse:
    """Per (model key, version): [count per bucket..., +Inf count, sum in ms]."""

    def __init__(self, on: bool = False) -> None:
        self.on = on                    # histogram_latencies=true
        self.rows: dict[tuple[str, str], list] = {}
        self.buckets: dict[tuple[str, str], tuple] = {}

    def observe(self, mv, ns: int) -> None:
        """A request to ``mv`` (a ModelVersion) got its first response ``ns`` after it came."""
        key = (mv.key, mv.version_str)
        row = self.rows.get(key)
        if row is None:
            bounds = self.buckets[key] = buckets_of(mv.spec)
            row = self.rows[key] = [0] * (len(bounds) + 1) + [0]
        ms = ns // 1_000_000
        row[bisect_left(self.buckets[key], ms)] += 1
        row[-1] += ms

    def rows_list(self) -> list[list]:
        """The rows as FrontendStatsAnswer.first: [model, version, counts..., sum]."""
        return [[m, v, *row] for (m, v), row in self.rows.items()]

    def families(self, extra: list | None = None, versions=()) -> list[Metric]:
        """The histogram of every READY version in ``versions`` (ModelVersions);
        ``extra``: other frontends' rows_list(), summed in."""
        rows = {k: list(r) for k, r in self.rows.items()}
        for m, v, *row in extra or ():
            mine = rows.get((m, v))
            if mine is None:
                rows[(m, v)] = list(row)
            elif len(mine) == len(row):
                for i, n in enumerate(row):
                    mine[i] += n
        fam = Metric(NAME, "Duration from request to first response in milliseconds",
                     "histogram")
        for mv in sorted(versions, key=lambda mv: (mv.key, mv.version)):
            bounds = buckets_of(mv.spec)
            row = rows.get((mv.key, mv.version_str))
            if row is None or len(row) != len(bounds) + 2:    # none yet (or a reload's)
                row = [0] * (len(bounds) + 1) + [0]
            labels = {"model": mv.key, "version": mv.version_str}
            total = 0
            for le, n in zip((*map(_le, bounds), "+Inf"), row):
                total += n
                fam.add_sample(NAME + "_bucket", {**labels, "le": le}, total)
            fam.add_sample(NAME + "_count", labels, total)
            fam.add_sample(NAME + "_sum", labels, row[-1])
        return [fam] if fam.samples else []


def _le(bound: float) -> str:
    """A bucket bound as prometheus-cpp writes it (16 significant digits: 2.5, 100, -1)."""
    return format(bound, ".16g")
