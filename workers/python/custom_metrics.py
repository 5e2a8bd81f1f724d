"""``pb_utils.MetricFamily`` / ``pb_utils.Metric``: a model's custom metrics, on /metrics.

Triton keeps one registry in the server (prometheus-cpp's): a family asked for
twice by name is the same family (the first description stays; another kind is
refused), a metric asked for twice with the same labels is the same series, and a
series leaves ``/metrics`` when the last ``MetricFamily`` object that made it is
deleted. Here each worker keeps that registry for its own model and publishes its
shape (families, labels, buckets, each series' slot) as one small file in /dev/shm
(``tritond-<server>-<pid>-metrics``, so the parent's clean-up of a worker's segments
removes it too) when a series comes or goes, and the numbers in place in a
fixed-layout file next to it (``metricvalues.py``): an update is a few stores into a
shared mapping, no file write. The frontends read both on each scrape
(frontend/custommetrics.py, ``read``). Nothing is deferred, so Triton's guarantee
holds: a value a model just set is what the next scrape shows.
"""
from __future__ import annotations

import os
import re
import threading
import time
from bisect import bisect_left
from typing import Optional

import msgspec

from . import metricvalues
from .inference import TritonModelException
from .metricvalues import COUNT, SUM, UPDATED, VALUE

COUNTER, GAUGE, HISTOGRAM = 0, 1, 2
KIND_NAMES = {COUNTER: "counter", GAUGE: "gauge", HISTOGRAM: "histogram"}
_CORE_KIND = {COUNTER: "TRITONSERVER_METRIC_KIND_COUNTER", GAUGE: "TRITONSERVER_METRIC_KIND_GAUGE",
              HISTOGRAM: "TRITONSERVER_METRIC_KIND_HISTOGRAM"}
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")      # prometheus' metric names
_DELETED = ("Invalid metric operation as the corresponding 'MetricFamily' has been deleted. "
            "The 'MetricFamily' object should be deleted AFTER its corresponding 'Metric' "
            "objects have been deleted.")


class Series(msgspec.Struct, array_like=True):
    """One labelled series: its shape as published, and where its numbers are (``slot``
    of series ``uid`` in the values file); ``read`` fills in the numbers, a histogram's
    ``counts`` per bucket (+Inf last)."""
    labels: dict
    value: float = 0.0
    buckets: Optional[list] = None
    counts: Optional[list] = None
    sum: float = 0.0
    count: int = 0
    updated_ns: int = 0          # a gauge set by two instances: the latest wins
    refs: int = 0
    slot: int = -1
    uid: int = 0


class Family(msgspec.Struct, array_like=True):
    name: str
    description: str
    kind: int
    series: dict[str, Series] = {}    # json of the sorted labels -> Series


_lock = threading.RLock()
_registry: dict[str, Family] = {}
_path: Optional[str] = None      # set in a worker (configure): no file in unit tests
_values = metricvalues.Values()  # every series' numbers (in a file once _path is set)


def configure(server_id: str) -> None:
    """Publish to /dev/shm/tritond-<server_id>-<pid>-metrics from now on."""
    global _path
    _path = f"/dev/shm/tritond-{server_id}-{os.getpid()}-metrics"


def close() -> None:
    """The model unloads: its series leave /metrics now (as its stub's exit does in Triton)."""
    with _lock:
        _registry.clear()
        _publish()


_publishing = _again = False


def _publish() -> None:
    """The registry's shape changed (a series came or went). Under _lock (an RLock: a
    MetricFamily collected by the garbage collector while we write publishes from its
    ``__del__`` on this very thread, so that nested call only asks for one more round)."""
    global _publishing, _again
    if _path is None:
        return
    if _publishing:
        _again = True
        return
    _publishing = True
    try:
        _again = True
        while _again:
            _again = False
            _write_shape()
    finally:
        _publishing = False


def _write_shape() -> None:
    live = [f for f in _registry.values() if f.series]
    if not live:                 # nothing to show (the model unloaded): no files left
        _values.close()
        _unlink(_path)
        return
    if _values.path != _path + metricvalues.SUFFIX:      # first publication: into the file
        _values.to_file(_path + metricvalues.SUFFIX)
    # Written whole and renamed: a scrape never reads half a file.
    tmp = _path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(msgspec.json.encode(live))
    os.replace(tmp, _path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read(path: str, attempts: int = 3) -> list[Family]:
    """A worker's published families with their numbers (the frontend's scrape). A slot
    freed or reused since the shape was written names another uid: read both again;
    a series that never matches is left out of this scrape."""
    for attempt in range(attempts):
        with open(path, "rb") as f:
            families = _decode_families(f.read())
        values = metricvalues.read(path + metricvalues.SUFFIX)
        stale = [s for fam in families for s in fam.series.values() if not _fill(s, values)]
        if not stale:
            return families
    for fam in families:
        fam.series = {k: s for k, s in fam.series.items() if s not in stale}
    return [fam for fam in families if fam.series]     # (a worker just closing its files)


_decode_families = msgspec.json.Decoder(list[Family]).decode


def _fill(s: Series, v) -> bool:
    end = s.slot + metricvalues.width(s.buckets)
    if s.slot < 0 or end > len(v) or v[s.slot] != s.uid:
        return False
    s.updated_ns, s.value = int(v[s.slot + UPDATED]), v[s.slot + VALUE]
    s.sum, s.count = v[s.slot + SUM], int(v[s.slot + COUNT])
    if s.buckets is not None:
        s.counts = [int(n) for n in v[s.slot + metricvalues.HEAD:end]]
    return True


class Metric:
    """One series of a family (``MetricFamily.Metric(labels, buckets)``); thread-safe."""

    def __init__(self, family: Family, key: str, series: Series) -> None:
        self._family = family
        self._key = key
        self._series = series
        self._cleared = False

    # Read-only views of the series (tests and models that peek).
    labels = property(lambda self: dict(self._series.labels))
    buckets = property(lambda self: self._series.buckets)

    @property
    def counts(self) -> Optional[list]:
        s = self._series
        if s.buckets is None:
            return None
        with _lock:
            at = s.slot + metricvalues.HEAD
            return [int(n) for n in _values.v[at:at + len(s.buckets) + 1]]

    sum = property(lambda self: _values.v[self._series.slot + SUM])
    count = property(lambda self: int(_values.v[self._series.slot + COUNT]))

    def _refuse(self, what: str, error: str = "") -> None:
        if self._cleared:
            raise TritonModelException(f"Failed to {what} metric value: {_DELETED}")
        if error:
            raise TritonModelException(
                f"Failed to {what} metric value: {_CORE_KIND[self._family.kind]} {error}")

    # Each update: a few stores into the values file, in place (metricvalues.py).
    def increment(self, value: float) -> None:
        kind = self._family.kind
        with _lock:
            if self._cleared or kind == HISTOGRAM or (kind == COUNTER and value < 0):
                self._refuse("increment", "does not support Increment" if kind == HISTOGRAM
                             else "can only be incremented monotonically by non-negative "
                                  "values.")
            v, slot = _values.v, self._series.slot
            v[slot + VALUE] += float(value)
            v[slot + UPDATED] = time.time_ns()

    def set(self, value: float) -> None:
        with _lock:
            if self._cleared or self._family.kind != GAUGE:
                self._refuse("set", "does not support Set")
            v, slot = _values.v, self._series.slot
            v[slot + VALUE] = float(value)
            v[slot + UPDATED] = time.time_ns()

    def observe(self, value: float) -> None:
        with _lock:
            if self._cleared or self._family.kind != HISTOGRAM:
                self._refuse("observe", "does not support Observe")
            v, slot = _values.v, self._series.slot
            v[slot + metricvalues.HEAD + bisect_left(self._series.buckets, value)] += 1
            v[slot + SUM] += float(value)
            v[slot + COUNT] += 1
            v[slot + UPDATED] = time.time_ns()

    def value(self) -> float:
        with _lock:
            if self._cleared or self._family.kind == HISTOGRAM:
                self._refuse("get", "does not support Value")
            return _values.v[self._series.slot + VALUE]

    def _clear(self) -> None:
        """Its MetricFamily object went: the series leaves with its last maker."""
        # Under _lock.
        if self._cleared:
            return
        self._cleared = True
        self._series.refs -= 1
        if self._series.refs <= 0 and self._family.series.get(self._key) is self._series:
            del self._family.series[self._key]
            _values.release(self._series.slot, metricvalues.width(self._series.buckets))


class MetricFamily:
    """``MetricFamily(name, description, kind)``; ``.Metric(labels=None, buckets=None)``."""

    COUNTER = COUNTER
    GAUGE = GAUGE
    HISTOGRAM = HISTOGRAM

    def __init__(self, name: str, description: str, kind: int) -> None:
        self._metrics: list[Metric] = []
        if kind not in KIND_NAMES:
            raise TritonModelException("Error when creating MetricFamily: Unsupported kind "
                                       "passed to MetricFamily constructor.")
        if not isinstance(name, str) or not _NAME.match(name):
            raise TritonModelException("Error when creating MetricFamily: Invalid metric name")
        with _lock:
            family = _registry.get(name)
            if family is None:
                family = _registry[name] = Family(name, str(description), kind, {})
            elif family.kind != kind:
                raise TritonModelException("Error when creating MetricFamily: Family name "
                                           "already exists with different type")
        self._family = family
        self.name, self.description, self.kind = name, description, kind

    def Metric(self, labels: Optional[dict] = None,  # noqa: N802 - Triton's name
               buckets: Optional[list] = None) -> Metric:
        if labels is not None and not isinstance(labels, dict):
            raise TritonModelException("Failed to create metric. Labels must be a dictionary.")
        if buckets is not None:
            if not isinstance(buckets, list):
                raise TritonModelException("Failed to create metric. Buckets must be a list.")
            if self.kind != HISTOGRAM:
                raise TritonModelException("Failed to create metric. Unexpected buckets found.")
        elif self.kind == HISTOGRAM:
            raise TritonModelException("Failed to create metric. Missing required buckets.")
        labels = dict(labels or {})
        for k, v in labels.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TritonModelException(
                    f"Error when creating Metric: Parameter [{k}] must have a type of "
                    f"TRITONSERVER_PARAMETER_STRING to be added as a label.")
        if buckets is not None:
            bounds = [float(b) for b in buckets]
            if any(a >= b for a, b in zip(bounds, bounds[1:])):
                raise TritonModelException(
                    "Error when creating Metric: Bucket Boundaries must be strictly sorted")
        key = msgspec.json.encode(dict(sorted(labels.items()))).decode()
        with _lock:
            series = self._family.series.get(key)
            if series is None:      # prometheus: the same labels are the same series
                series = Series(dict(sorted(labels.items())))
                if self.kind == HISTOGRAM:
                    series.buckets = bounds
                series.slot, series.uid = _values.allocate(metricvalues.width(series.buckets))
                self._family.series[key] = series
            series.refs += 1
            metric = Metric(self._family, key, series)
            self._metrics.append(metric)
            _publish()
        return metric

    def __del__(self) -> None:
        metrics = getattr(self, "_metrics", ())
        if not metrics:
            return
        try:
            with _lock:
                for metric in metrics:
                    metric._clear()
                _publish()
        except Exception:  # noqa: BLE001 - at interpreter exit the module may be half gone
            pass
