"""The custom metrics of Python models (``pb_utils.MetricFamily``) on ``/metrics``.

Each Python worker publishes its registry's shape as a file in /dev/shm and the
numbers in place in a file next to it (workers/python/custom_metrics.py); a scrape
reads them all (``custom_metrics.read``). Triton holds one
registry for the server, so instances of a model (one worker each) that make the
same family and labels share one series: here counters and histograms of the same
series add up across workers and a gauge shows the value set last. A family name
one worker made with another kind than the first file read is skipped (Triton
would have refused it at creation).
"""
from __future__ import annotations

import os

import msgspec
from prometheus_client.metrics_core import Metric

from tritond.shm import region
from tritond.workers.python.custom_metrics import KIND_NAMES, Family, Series, read


def families(server_id: str) -> list[Metric]:
    merged: dict[str, Family] = {}
    for name in region.list_segments(server_id):
        if not name.endswith("-metrics"):
            continue
        try:
            published = read(os.path.join(region.SHM_DIR, name.lstrip("/")))
        except (OSError, msgspec.DecodeError):
            continue                 # its worker is just leaving
        for fam in published:
            _merge(merged, fam)
    return [_family(fam) for fam in merged.values()]


def _merge(merged: dict, fam: Family) -> None:
    known = merged.setdefault(fam.name, Family(fam.name, fam.description, fam.kind, {}))
    if known.kind != fam.kind:
        return
    for key, s in fam.series.items():
        have = known.series.get(key)
        if have is None:
            known.series[key] = s
        elif fam.kind == 1:                                   # gauge: the latest set
            if s.updated_ns > have.updated_ns:
                known.series[key] = s
        elif fam.kind == 0:
            have.value += s.value
        elif have.buckets == s.buckets:
            have.sum += s.sum
            have.count += s.count
            have.counts = [a + b for a, b in zip(have.counts, s.counts)]


def _family(fam: Family) -> Metric:
    out = Metric(fam.name, fam.description, KIND_NAMES[fam.kind])
    for s in fam.series.values():
        if fam.kind == 2:
            _histogram(out, s)
        else:
            out.add_sample(fam.name, s.labels, s.value)
    return out


def _histogram(out: Metric, s: Series) -> None:
    # prometheus' order: count, sum, then the cumulative buckets with le last among labels
    out.add_sample(out.name + "_count", s.labels, s.count)
    out.add_sample(out.name + "_sum", s.labels, s.sum)
    total = 0
    for bound, n in zip([*s.buckets, float("inf")], s.counts):
        total += n
        le = "+Inf" if bound == float("inf") else _number(bound)
        out.add_sample(out.name + "_bucket", {**s.labels, "le": le}, total)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
