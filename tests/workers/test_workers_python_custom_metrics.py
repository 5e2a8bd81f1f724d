"""pb_utils.MetricFamily / Metric: the registry rules of Triton's custom metrics
(python_backend's QA model ``custom_metrics``), and what a worker publishes."""
from __future__ import annotations

import os

import pytest

from tritond.workers.python import custom_metrics
from tritond.workers.python import pb_utils

MF = pb_utils.MetricFamily


def test_same_labels_are_one_series():
    fam = MF("t_dup_metric", "dup metric", MF.COUNTER)
    one, two = fam.Metric(labels={"a": "1"}), fam.Metric(labels={"a": "1"})
    one.increment(7.5)
    assert one.value() == two.value() == 7.5
    empty1, empty2 = fam.Metric(), fam.Metric(labels={})
    empty1.increment(1)
    assert empty2.value() == 1


def test_a_family_asked_for_twice_is_the_first():
    first = MF("t_dup_desc", "first description", MF.COUNTER)
    second = MF("t_dup_desc", "second description", MF.COUNTER)
    metric = second.Metric()
    first.Metric().increment(3)           # the same series: no labels
    del first                             # second still holds its own metric
    assert metric.value() == 3
    assert custom_metrics._registry["t_dup_desc"].description == "first description"
    with pytest.raises(pb_utils.TritonModelException, match="already exists with different type"):
        MF("t_dup_desc", "x", MF.GAUGE)


def test_kind_rules_and_messages():
    counters = MF("t_kinds_c", "c", MF.COUNTER)
    c = counters.Metric()
    with pytest.raises(pb_utils.TritonModelException) as err:
        c.increment(-23.5)
    assert err.value.message() == (
        "Failed to increment metric value: TRITONSERVER_METRIC_KIND_COUNTER can only be "
        "incremented monotonically by non-negative values.")
    for call in (lambda: c.set(1), lambda: c.observe(0.05)):
        with pytest.raises(pb_utils.TritonModelException):
            call()
    gauges = MF("t_kinds_g", "g", MF.GAUGE)
    g = gauges.Metric()
    g.increment(2023.0)
    g.increment(-23.5)
    assert g.value() == 1999.5
    g.set(999.9)
    assert g.value() == 999.9
    with pytest.raises(pb_utils.TritonModelException, match="GAUGE does not support Observe"):
        g.observe(0.05)
    hists = MF("t_kinds_h", "h", MF.HISTOGRAM)
    h = hists.Metric(labels={}, buckets=[0.1, 1.0, 2.5, 5.0, 10.0])
    for call, what in ((h.value, "Value"), (lambda: h.increment(1), "Increment"),
                       (lambda: h.set(1), "Set")):
        with pytest.raises(pb_utils.TritonModelException, match=f"does not support {what}"):
            call()
    for v in (0.05, 1.5, 6.0):
        h.observe(v)
    assert (h.count, h.sum, h.counts) == (3, 7.55, [1, 0, 1, 0, 1, 0])


def test_metric_arguments_are_checked_as_by_triton():
    hists = MF("t_hist_args", "h", MF.HISTOGRAM)
    with pytest.raises(pb_utils.TritonModelException, match="Missing required buckets"):
        hists.Metric(labels={})
    for bad in ([2.5, 0.1, 1.0, 10.0, 5.0], [1, 1, 2, 5, 5]):
        with pytest.raises(pb_utils.TritonModelException, match="strictly sorted"):
            hists.Metric(labels={}, buckets=bad)
    hists.Metric(labels={}, buckets=[])             # only +Inf
    counters = MF("t_counter_args", "c", MF.COUNTER)
    with pytest.raises(pb_utils.TritonModelException, match="Unexpected buckets found"):
        counters.Metric(buckets=[1.0])
    with pytest.raises(pb_utils.TritonModelException, match="Labels must be a dictionary"):
        counters.Metric(labels=["a"])


def test_a_metric_outliving_its_family_is_refused():
    for kind, name in ((MF.COUNTER, "t_life_c"), (MF.GAUGE, "t_life_g")):
        fam = MF(name, "lifetime", kind)
        metric = fam.Metric(labels={"example1": "counter_label1"})
        del fam
        text = "Invalid metric operation as the corresponding 'MetricFamily' has been deleted."
        for call in (lambda: metric.increment(10), metric.value) + (
                (lambda: metric.set(10),) if kind == MF.GAUGE else ()):
            with pytest.raises(pb_utils.TritonModelException, match=text):
                call()


def test_a_worker_publishes_its_series(tmp_path, monkeypatch):
    path = tmp_path / "metrics"
    monkeypatch.setattr(custom_metrics, "_path", str(path))
    fam = MF("t_published", "published", MF.GAUGE)
    metric = fam.Metric(labels={"b": "2", "a": "1"})
    metric.set(4.5)
    families = custom_metrics.read(str(path))
    mine = [f for f in families if f.name == "t_published"]
    assert len(mine) == 1 and mine[0].kind == MF.GAUGE
    (series,) = mine[0].series.values()
    assert (series.labels, series.value) == ({"a": "1", "b": "2"}, 4.5)
    del fam, metric                        # its last maker went: the series leaves
    families = custom_metrics.read(str(path)) if path.exists() else []
    assert "t_published" not in [f.name for f in families]


def test_updates_are_written_in_place_and_read_back_at_once(tmp_path, monkeypatch):
    """An update rewrites no file (the shape file keeps its inode and bytes), yet the next
    read sees it: the numbers live in the values file, in place."""
    path = tmp_path / "metrics"
    monkeypatch.setattr(custom_metrics, "_path", str(path))
    fam = MF("t_in_place", "in place", MF.HISTOGRAM)
    metric = fam.Metric(labels={"m": "x"}, buckets=[1.0, 2.0])
    shape = (os.stat(path).st_ino, path.read_bytes())
    for v in (0.5, 1.5, 1.5, 9.0):
        metric.observe(v)
    assert (os.stat(path).st_ino, path.read_bytes()) == shape
    (series,) = [f for f in custom_metrics.read(str(path)) if f.name == "t_in_place"][0] \
        .series.values()
    assert (series.count, series.sum, series.counts) == (4, 12.5, [1, 2, 1])
    assert (metric.count, metric.sum, metric.counts) == (4, 12.5, [1, 2, 1])


def test_many_series_grow_the_values_and_freed_slots_are_never_misread(tmp_path, monkeypatch):
    path = tmp_path / "metrics"
    monkeypatch.setattr(custom_metrics, "_path", str(path))
    fam = MF("t_many", "many", MF.COUNTER)
    metrics = [fam.Metric(labels={"i": str(i)}) for i in range(300)]    # > 512 doubles
    for i, m in enumerate(metrics):
        m.increment(i)
    stale_shape = path.read_bytes()
    values = {s.labels["i"]: s.value for s in
              [f for f in custom_metrics.read(str(path)) if f.name == "t_many"][0]
              .series.values()}
    assert values == {str(i): float(i) for i in range(300)}
    # a series goes and another takes its slot: a reader with the old shape must not
    # show the new series' number under the old labels
    other = MF("t_many_other", "other", MF.COUNTER)
    del fam, metrics
    reused = other.Metric(labels={"new": "1"})
    reused.increment(77)
    shape_path = tmp_path / "stale"
    shape_path.write_bytes(stale_shape)
    os.link(str(path) + ".values", str(shape_path) + ".values")
    got = custom_metrics.read(str(shape_path), attempts=1)
    assert all(not f.series for f in got if f.name == "t_many")
    assert [s.value for f in custom_metrics.read(str(path)) if f.name == "t_many_other"
            for s in f.series.values()] == [77.0]


def test_close_removes_both_files(tmp_path, monkeypatch):
    path = tmp_path / "metrics"
    monkeypatch.setattr(custom_metrics, "_path", str(path))
    fam = MF("t_closing", "c", MF.GAUGE)
    metric = fam.Metric()
    metric.set(1)
    assert path.exists() and os.path.exists(str(path) + ".values")
    custom_metrics.close()
    metric.set(2)                          # a model's stale object: harmless
    assert not path.exists() and not os.path.exists(str(path) + ".values")


def test_a_family_collected_while_the_shape_is_written_publishes_after_it(tmp_path,
                                                                          monkeypatch):
    """The garbage collector may delete a MetricFamily (its __del__ publishes) in the middle
    of a publication, on the same thread: the nested one must not pull the file away."""
    import gc

    path = tmp_path / "metrics"
    monkeypatch.setattr(custom_metrics, "_path", str(path))
    calls = []

    def open_collecting(name, mode="r"):
        f = open(name, mode)
        calls.append(name)
        if len(calls) == 1:
            gc.collect()                   # t_doomed's __del__ publishes now
        return f
    gc.collect()
    gc.disable()                           # no collection but the one the test makes
    try:
        doomed = MF("t_doomed", "collected mid-write", MF.COUNTER)
        doomed_metric = doomed.Metric()
        doomed_metric.increment(1)
        doomed.cycle = doomed              # only the cycle collector frees it
        del doomed, doomed_metric
        monkeypatch.setattr(custom_metrics, "open", open_collecting, raising=False)
        family = MF("t_kept", "kept", MF.GAUGE)
        kept = family.Metric()             # publishes: the collection happens inside
        kept.set(3)
    finally:
        gc.enable()
    names = [f.name for f in custom_metrics.read(str(path))]
    assert "t_kept" in names and "t_doomed" not in names and len(calls) >= 2
