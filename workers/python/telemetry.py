"""``pb_utils.Logger`` and ``pb_utils.MetricFamily``/``Metric``.

Logger writes to the worker's logging (the same Triton-like lines as every
tritond process). Metrics are kept locally for now: values are tracked and
readable with ``value()`` so models that use custom metrics run unchanged;
exporting them to ``/metrics`` is a later step.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from .inference import TritonModelException

_log = logging.getLogger("tritond.model")


class Logger:
    """Static logging helpers with Triton's level constants."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    VERBOSE = 3

    _LEVELS = {INFO: logging.INFO, WARNING: logging.WARNING,
               ERROR: logging.ERROR, VERBOSE: logging.DEBUG}

    @staticmethod
    def log(message, level: int = INFO) -> None:
        _log.log(Logger._LEVELS.get(level, logging.INFO), "%s", message)

    @staticmethod
    def log_info(message) -> None:
        Logger.log(message, Logger.INFO)

    @staticmethod
    def log_warn(message) -> None:
        Logger.log(message, Logger.WARNING)

    @staticmethod
    def log_error(message) -> None:
        Logger.log(message, Logger.ERROR)

    @staticmethod
    def log_verbose(message) -> None:
        Logger.log(message, Logger.VERBOSE)


class Metric:
    """One labelled series of a family; thread-safe (models may use threads)."""

    def __init__(self, family: "MetricFamily", labels: Optional[dict],
                 buckets: Optional[list]) -> None:
        self.family = family
        self.labels = dict(labels or {})
        self.buckets = sorted(buckets) if buckets else None
        self.counts = [0] * (len(self.buckets) + 1) if self.buckets else None
        self.sum = 0.0
        self.count = 0
        self._value = 0.0
        self._lock = threading.Lock()

    def _require(self, *kinds: int, op: str) -> None:
        if self.family.kind not in kinds:
            raise TritonModelException(
                f"{op}() is not supported for metric family '{self.family.name}' of this kind")

    def increment(self, value: float) -> None:
        self._require(MetricFamily.COUNTER, MetricFamily.GAUGE, op="increment")
        if self.family.kind == MetricFamily.COUNTER and value < 0:
            raise TritonModelException("Counter metrics cannot be decremented")
        with self._lock:
            self._value += value

    def set(self, value: float) -> None:
        self._require(MetricFamily.GAUGE, op="set")
        with self._lock:
            self._value = value

    def observe(self, value: float) -> None:
        self._require(MetricFamily.HISTOGRAM, op="observe")
        with self._lock:
            self.sum += value
            self.count += 1
            i = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
            self.counts[i] += 1

    def value(self) -> float:
        self._require(MetricFamily.COUNTER, MetricFamily.GAUGE, op="value")
        return self._value


class MetricFamily:
    """``MetricFamily(name, description, kind)``; ``.Metric(labels, buckets)``."""

    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2

    _families: dict[str, "MetricFamily"] = {}

    def __init__(self, name: str, description: str, kind: int) -> None:
        if kind not in (self.COUNTER, self.GAUGE, self.HISTOGRAM):
            raise TritonModelException(f"metric family '{name}': unknown kind {kind}")
        known = MetricFamily._families.get(name)
        if known is not None and (known.kind, known.description) != (kind, description):
            raise TritonModelException(
                f"metric family '{name}' already exists with a different kind or description")
        self.name = name
        self.description = description
        self.kind = kind
        self.metrics: list[Metric] = []
        MetricFamily._families[name] = self

    def Metric(self, labels: Optional[dict] = None, buckets: Optional[list] = None) -> Metric:  # noqa: N802
        if self.kind == self.HISTOGRAM and not buckets:
            raise TritonModelException(
                f"histogram metric of family '{self.name}' needs 'buckets'")
        metric = Metric(self, labels, buckets)
        self.metrics.append(metric)
        return metric
