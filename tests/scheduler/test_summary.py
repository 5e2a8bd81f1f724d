"""Latency summary windows (scheduler/summary.py): quantiles, the 60 s window, bounds."""
import math

import pytest

from tritond.scheduler import summary
from tritond.scheduler.summary import MAX_AGE_NS, Summaries, Window, parse_quantiles, quantiles_of

QS = ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001))


def test_quantiles_of_the_observations():
    w = Window()
    for v in range(1, 101):
        w.observe(float(v), 10**9)
    assert w.quantiles(QS, 10**9) == [50.0, 90.0, 99.0]
    assert (w.count, w.sum) == (100, 5050.0)


def test_old_observations_leave_the_window_but_not_count_and_sum():
    w = Window()
    w.observe(1000.0, 1)
    for v in range(10):
        w.observe(float(v), MAX_AGE_NS // 2)
    assert w.quantiles(((0.999, 0.001),), MAX_AGE_NS // 2) == [1000.0]
    assert w.quantiles(((0.999, 0.001),), MAX_AGE_NS + 2) == [9.0]       # the first aged out
    assert all(math.isnan(q) for q in w.quantiles(QS, 3 * MAX_AGE_NS))   # empty: NaN
    assert w.count == 11


def test_memory_stays_bounded(monkeypatch):
    monkeypatch.setattr(summary, "CAP", 100)
    w = Window()
    for v in range(10_000):
        w.observe(float(v), 5)
    assert len(w.buckets[-1][2]) == 100 and w.count == 10_000
    assert 3000 < w.quantiles(((0.5, 0.05),), 5)[0] < 7000     # a uniform sample's median


def test_cached_models_have_no_request_summary():
    s = Summaries()
    s.observe(1, 10, 1, 2, 3, 4)
    assert set(s.rows(QS, 1)) == set(summary.FAMILIES)
    s.cached = True
    assert "request" not in s.rows(QS, 1)


def test_settings():
    assert quantiles_of(["counter_latencies=false"]) is None
    assert quantiles_of(["summary_latencies=true"]) == summary.DEFAULT_QUANTILES
    assert quantiles_of(["summary_latencies=true", 'summary_quantiles="0.5:0.1"']) == ((0.5, 0.1),)
    for bad in ("0.5", "x:0.1", "1.5:0.1"):
        with pytest.raises(ValueError):
            parse_quantiles(bad)


def test_numbers_are_read_as_tritons_std_stod_reads_them():
    """QA L0_metrics starts Triton with summary_quantiles=0.1:0.0.1,...: std::stod reads
    the longest number at the front ("0.0.1" is 0.0), so those quantiles are served."""
    assert parse_quantiles("0.1:0.0.1,0.7:0.01,0.75:0.01") == ((0.1, 0.0), (0.7, 0.01),
                                                               (0.75, 0.01))
    assert parse_quantiles(" 0.5x:1e-2") == ((0.5, 0.01),)
    from tritond.options import metrics_setting
    assert metrics_setting("summary_quantiles=0.1:0.0.1") == "summary_quantiles=0.1:0.0.1"
