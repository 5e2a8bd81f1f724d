"""``nv_inference_first_response_histogram_ms``: request to first response, per model version.

Observed by ``FrontendCore.infer_stream`` (gRPC streams, generate), where a
first response differs from the last (decoupled models); Triton's buckets
(100, 500, 2000, 5000 ms). The frontend measures it itself: it sees each
request arrive and its first response leave the worker.
"""
from __future__ import annotations

from bisect import bisect_left

from prometheus_client.metrics_core import Metric

NAME = "nv_inference_first_response_histogram_ms"
BUCKETS = (100, 500, 2000, 5000)


class FirstResponse:
    """Per (model, version): [count per bucket..., +Inf count, sum in ms]."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list] = {}

    def observe(self, model: str, version: str, ms: float) -> None:
        row = self.rows.get((model, version))
        if row is None:
            row = self.rows[(model, version)] = [0] * (len(BUCKETS) + 1) + [0.0]
        row[bisect_left(BUCKETS, ms)] += 1
        row[-1] += ms

    def families(self) -> list[Metric]:
        if not self.rows:
            return []
        fam = Metric(NAME, "Duration from request to first response in milliseconds",
                     "histogram")
        for (model, version), row in sorted(self.rows.items()):
            labels = {"model": model, "version": version}
            total = 0
            for le, n in zip((*BUCKETS, "+Inf"), row):
                total += n
                fam.add_sample(NAME + "_bucket", {**labels, "le": str(le)}, total)
            fam.add_sample(NAME + "_count", labels, total)
            fam.add_sample(NAME + "_sum", labels, row[-1])
        return [fam]
