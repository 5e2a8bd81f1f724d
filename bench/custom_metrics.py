#!/usr/bin/env python3
"""Updates per second of a Python model's custom metrics (``pb_utils.Metric``), in process.

    bench/custom_metrics.py [--seconds 2] [--server-id benchcm]

A model that counts every request pays one ``Metric.increment`` (or ``set``,
``observe``) per request; this times each in a loop against the real
``workers/python/custom_metrics.py`` publishing to /dev/shm as in a worker
(``configure``), with a scrape's read (``frontend/custommetrics.families``)
checked to see the last value, then removes its files.
"""
from __future__ import annotations

import argparse
import time

from tritond.frontend import custommetrics
from tritond.workers.python import custom_metrics
from tritond.workers.python.custom_metrics import MetricFamily as MF


def rate(call, seconds: float) -> float:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            call()
        n += 100
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--server-id", default="benchcm")
    args = ap.parse_args()
    custom_metrics.configure(args.server_id)
    fams = [MF("bench_count", "c", MF.COUNTER), MF("bench_gauge", "g", MF.GAUGE),
            MF("bench_hist", "h", MF.HISTOGRAM)]
    labels = {"model": "bench", "version": "1"}
    c, g = fams[0].Metric(labels=labels), fams[1].Metric(labels=labels)
    h = fams[2].Metric(labels=labels, buckets=[0.1, 1.0, 2.5, 5.0, 10.0])
    try:
        for what, call in (("counter increment", lambda: c.increment(1)),
                           ("gauge set", lambda: g.set(2.5)),
                           ("histogram observe", lambda: h.observe(0.7))):
            print(f"{what:18s} {rate(call, args.seconds):12,.0f} updates/s")
        seen = {f.name: f.samples[0].value for f in custommetrics.families(args.server_id)}
        assert seen["bench_count"] == c.value() and seen["bench_gauge"] == 2.5, seen
        print(f"scrape sees counter={seen['bench_count']:.0f} gauge={seen['bench_gauge']}")
    finally:
        custom_metrics.close()


if __name__ == "__main__":
    main()
