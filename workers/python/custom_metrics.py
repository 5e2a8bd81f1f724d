"""``pb_utils.MetricFamily`` / ``pb_utils.Metric``: a model's custom metrics, on /metrics.

Triton keeps one registry in the server (prometheus-cpp's): a family asked for
twice by name is the same family (the first description stays; another kind is
refused), a metric asked for twice with the same labels is the same series, and a
series leaves ``/metrics`` when the last ``MetricFamily`` object that made it is
deleted. Here each worker keeps that registry for its own model and publishes it
after every change as one small file in /dev/shm (``tritond-<server>-<pid>-metrics``,
so the parent's clean-up of a worker's segments removes it too); the frontends read
those files on each scrape (frontend/custommetrics.py). Publishing on every change,
not on a timer, keeps Triton's guarantee that a value a model just set is what the
next scrape shows.
"""
from __future__ import annotations

import os
import re
import threading
import time
from typing import Optional

import msgspec

from .inference import TritonModelException

COUNTER, GAUGE, HISTOGRAM = 0, 1, 2
KIND_NAMES = {COUNTER: "counter", GAUGE: "gauge", HISTOGRAM: "histogram"}
_CORE_KIND = {COUNTER: "TRITONSERVER_METRIC_KIND_COUNTER", GAUGE: "TRITONSERVER_METRIC_KIND_GAUGE",
              HISTOGRAM: "TRITONSERVER_METRIC_KIND_HISTOGRAM"}
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")      # prometheus' metric names
_DELETED = ("Invalid metric operation as the corresponding 'MetricFamily' has been deleted. "
            "The 'MetricFamily' object should be deleted AFTER its corresponding 'Metric' "
            "objects have been deleted.")


class Series(msgspec.Struct, array_like=True):
    """One labelled series as published: a histogram's ``counts`` per bucket (+Inf last)."""
    labels: dict
    value: float = 0.0
    buckets: Optional[list] = None
    counts: Optional[list] = None
    sum: float = 0.0
    count: int = 0
    updated_ns: int = 0          # a gauge set by two instances: the latest wins
    refs: int = 0


class Family(msgspec.Struct, array_like=True):
    name: str
    description: str
    kind: int
    series: dict[str, Series] = {}    # json of the sorted labels -> Series


_lock = threading.RLock()
_registry: dict[str, Family] = {}
_path: Optional[str] = None      # set in a worker (configure): no file in unit tests


def configure(server_id: str) -> None:
    """Publish to /dev/shm/tritond-<server_id>-<pid>-metrics from now on."""
    global _path
    _path = f"/dev/shm/tritond-{server_id}-{os.getpid()}-metrics"


def close() -> None:
    """The model unloads: its series leave /metrics now (as its stub's exit does in Triton)."""
    with _lock:
        _registry.clear()
        if _path is not None:
            try:
                os.unlink(_path)
            except FileNotFoundError:
                pass


def _publish() -> None:
    # Under _lock. Written whole and renamed: a scrape never reads half a file.
    if _path is None:
        return
    data = msgspec.json.encode([f for f in _registry.values() if f.series])
    tmp = _path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, _path)


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
    counts = property(lambda self: self._series.counts)
    sum = property(lambda self: self._series.sum)
    count = property(lambda self: self._series.count)

    def _apply(self, what: str, op: str, fn) -> None:
        with _lock:
            if self._cleared:
                raise TritonModelException(f"Failed to {what} metric value: {_DELETED}")
            error = fn(self._series)
            if error:
                raise TritonModelException(
                    f"Failed to {what} metric value: {_CORE_KIND[self._family.kind]} {error}")
            self._series.updated_ns = time.time_ns()
            _publish()

    def increment(self, value: float) -> None:
        kind = self._family.kind

        def inc(s: Series):
            if kind == HISTOGRAM:
                return "does not support Increment"
            if kind == COUNTER and value < 0:
                return "can only be incremented monotonically by non-negative values."
            s.value += float(value)
        self._apply("increment", "Increment", inc)

    def set(self, value: float) -> None:
        kind = self._family.kind

        def put(s: Series):
            if kind != GAUGE:
                return "does not support Set"
            s.value = float(value)
        self._apply("set", "Set", put)

    def observe(self, value: float) -> None:
        kind = self._family.kind

        def obs(s: Series):
            if kind != HISTOGRAM:
                return "does not support Observe"
            s.sum += float(value)
            s.count += 1
            i = next((i for i, b in enumerate(s.buckets) if value <= b), len(s.buckets))
            s.counts[i] += 1
        self._apply("observe", "Observe", obs)

    def value(self) -> float:
        with _lock:
            if self._cleared:
                raise TritonModelException(f"Failed to get metric value: {_DELETED}")
            if self._family.kind == HISTOGRAM:
                raise TritonModelException(f"Failed to get metric value: "
                                           f"{_CORE_KIND[HISTOGRAM]} does not support Value")
            return self._series.value

    def _clear(self) -> None:
        """Its MetricFamily object went: the series leaves with its last maker."""
        # Under _lock.
        if self._cleared:
            return
        self._cleared = True
        self._series.refs -= 1
        if self._series.refs <= 0:
            self._family.series.pop(self._key, None)


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
                    series.counts = [0] * (len(bounds) + 1)
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
