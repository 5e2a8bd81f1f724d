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

    def rows_list(self) -> list[list]:
        """The rows as FrontendStatsAnswer.first: [model, version, counts..., sum]."""
        return [[m, v, *row] for (m, v), row in self.rows.items()]

    def families(self, extra: list | None = None) -> list[Metric]:
        """The histogram; ``extra``: other frontends' rows_list(), summed in."""
        rows = {k: list(r) for k, r in self.rows.items()}
        for m, v, *row in extra or ():
            mine = rows.setdefault((m, v), [0] * (len(BUCKETS) + 1) + [0.0])
            for i, n in enumerate(row):
                mine[i] += n
        if not rows:
            return []
        fam = Metric(NAME, "Duration from request to first response in milliseconds",
                     "histogram")
        for (model, version), row in sorted(rows.items()):
            labels = {"model": model, "version": version}
            total = 0
            for le, n in zip((*BUCKETS, "+Inf"), row):
                total += n
                fam.add_sample(NAME + "_bucket", {**labels, "le": str(le)}, total)
            fam.add_sample(NAME + "_count", labels, total)
            fam.add_sample(NAME + "_sum", labels, row[-1])
        return [fam]
