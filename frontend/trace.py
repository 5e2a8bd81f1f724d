"""Request tracing as Triton does it: sampling, settings, and Triton's trace JSON.

The frontend samples a request (``Tracer.start``), stamps what it sees
(HTTP_RECV_*/GRPC_WAITREAD_*, REQUEST_START, REQUEST_END, *_SEND_*), and the
scheduler and worker add theirs as data: a traced ``messages.Request`` carries
``trace=[id]``, the scheduler appends QUEUE_START, the worker answers
``Response.trace`` (QUEUE_START, COMPUTE_START, COMPUTE_INPUT_END,
COMPUTE_OUTPUT_START, COMPUTE_END). Every process stamps with CLOCK_MONOTONIC,
one clock system-wide, as Triton's steady clock. Untraced requests carry nothing
(``Request.trace`` is empty and never encoded). The requests a traced request
spawned (ensemble steps, BLS calls) come back as ``Response.children``; they get
trace ids here and are written in the same trace with ``parent_id``
(tritond/tracechildren.py, frontend/tracetree.py).

Settings follow Triton's TraceManager: a global setting, per-model overrides
falling back to it, each setting with its own counters; replacing a setting
writes what it collected. Triton mode collects each trace's JSON objects and
writes them to ``file`` when the setting ends (``log_frequency`` 0: one JSON
array, closed at exit) or to ``file.<i>`` every ``log_frequency`` traces (and
when ``count`` runs out). OpenTelemetry mode hands spans to ``otel.Exporter``.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Optional

from tritond import traceconfig
from tritond.tracechildren import stamp_names

from . import tracetree
from .tracetensors import tensor_object

log = logging.getLogger("tritond.frontend.trace")

_KEYS = ("trace_level", "trace_rate", "trace_count", "log_frequency", "trace_file",
         "trace_mode")


class Trace:
    """One sampled request: its id, model and timestamps (name, ns)."""

    __slots__ = ("id", "setting", "model", "version", "request_id", "stamps", "context",
                 "tensors", "children", "ids")

    def __init__(self, trace_id: int, setting: "Setting", model: str, context=None):
        self.id = trace_id
        self.setting = setting
        self.model = model
        self.version = 0
        self.request_id = ""
        self.stamps: list[tuple[str, int]] = []
        self.context = context      # an OpenTelemetry parent context (propagated)
        # level TENSORS (triton mode): the tensor objects, else None
        self.tensors: list[str] | None = (
            [] if "TENSORS" in setting.level and setting.mode == "triton" else None)
        self.children: list = []        # messages.TraceChild: ensemble steps, BLS calls
        self.ids: dict[int, int] = {}   # child ref -> its trace id (Tracer.finish)

    def tensor(self, activity: str, name: str, datatype: str, shape: list, data) -> None:
        self.tensors.append(tensor_object(self.id, activity, name, datatype, shape, data))

    def stamp(self, name: str, ns: int | None = None) -> None:
        self.stamps.append((name, time.monotonic_ns() if ns is None else ns))

    def worker(self, stamps: list[int], children: list = ()) -> None:
        """Add the scheduler's and worker's timestamps from ``Response.trace`` and the
        child traces of ``Response.children``."""
        self.stamps.extend(zip(stamp_names(stamps), stamps))
        if children:
            self.children = children

    def json_objects(self) -> list[str]:
        """Triton's objects for this trace: the model line, then one per timestamp."""
        head = {"id": self.id, "model_name": self.model, "model_version": self.version}
        if self.request_id:
            head["request_id"] = self.request_id
        out = [json.dumps(head, separators=(",", ":"))]
        if "TIMESTAMPS" in self.setting.level:
            for name, ns in sorted(self.stamps, key=lambda s: s[1]):
                out.append(f'{{"id":{self.id},"timestamps":[{{"name":"{name}","ns":{ns}}}]}}')
        if self.tensors:
            out.extend(self.tensors)
        if self.children:
            out.extend(tracetree.child_objects(self))
        return out


class TraceFile:
    """One trace file path: the JSON array written at exit, and its indexed files."""

    def __init__(self, path: str):
        self.path = path
        self.index = 0
        self._file = None

    def save(self, objects: list[str], indexed: bool) -> None:
        try:
            if indexed:
                with open(f"{self.path}.{self.index}", "w") as f:
                    f.write("[" + ",".join(objects) + "]")
                self.index += 1
                return
            if self._file is None:
                self._file = open(self.path, "w")
                self._file.write("[")
            else:
                self._file.write(",")
            self._file.write(",".join(objects))
            self._file.flush()
        except OSError as exc:
            log.error("failed creating trace file: %s", exc)

    def close(self) -> None:
        if self._file is not None:
            self._file.write("]")
            self._file.close()
            self._file = None


class Setting:
    """One effective trace setting and its counters (Triton's TraceSetting)."""

    def __init__(self, values: dict, file: Optional[TraceFile]):
        self.level = values["trace_level"]
        self.rate = int(values["trace_rate"])
        self.count = int(values["trace_count"])
        self.log_frequency = int(values["log_frequency"])
        self.mode = values["trace_mode"]
        self.file = file
        self.sample = self.collected = 0
        self.stream: list[str] = []        # objects not written yet
        self.in_stream = 0                  # traces in ``stream``
        self.on = ("OFF" not in self.level and self.rate != 0
                   and (self.mode != "triton" or file is not None))

    def take(self, force: bool = False) -> bool:
        """Whether this request is traced (every rate-th while count lasts)."""
        hit = False
        if self.rate != 0:
            if not (self.on and self.count != 0) and not force:
                return False
            self.sample += 1
            hit = self.sample % self.rate == 0
            if hit and self.count > 0:
                self.count -= 1
            elif hit and self.count == 0:
                hit = False
        return hit or force

    def write(self, trace: Trace) -> None:
        self.stream.extend(trace.json_objects())
        self.in_stream += 1
        self.collected += 1
        if ((self.count == 0 and self.collected == self.sample)
                or (self.log_frequency and self.in_stream >= self.log_frequency)):
            self._flush(indexed=True)

    def close(self) -> None:
        """The setting is replaced or the server stops: write what is left."""
        if self.mode == "triton" and self.in_stream:
            self._flush(indexed=self.log_frequency != 0)

    def _flush(self, indexed: bool) -> None:
        objects, self.stream, self.in_stream = self.stream, [], 0
        if self.file is not None:
            self.file.save(objects, indexed)


class Tracer:
    """The frontend's trace manager: settings API, sampling, writing."""

    def __init__(self, options, suffix: str = ""):
        cfg = traceconfig.resolve(options)
        self.config = cfg
        self.suffix = suffix            # a second frontend writes <file><suffix>
        self.global_ = {"trace_level": cfg.level, "trace_rate": str(cfg.rate),
                        "trace_count": str(cfg.count), "log_frequency": str(cfg.log_frequency),
                        "trace_file": cfg.file, "trace_mode": cfg.mode}
        self.start_values = dict(self.global_)     # what a cleared global setting returns to
        self.overrides: dict[str, dict] = {}
        self.files: dict[str, TraceFile] = {}
        self.next_id = 1
        self.exporter = None
        if cfg.mode == "opentelemetry":
            from .otel import Exporter

            try:
                self.exporter = Exporter(cfg)
            except RuntimeError:
                if "OFF" not in cfg.level:     # preflight refused this already
                    raise
                log.warning("opentelemetry tracing cannot be turned on: no SDK installed")
        self.default = self._setting(self.global_)
        self.models: dict[str, Setting] = {}
        self._refresh()

    # ---------------------------------------------------------------- sampling

    def start(self, model: str, headers=None) -> Optional[Trace]:
        """A Trace when this request is sampled; None otherwise (the common case: one
        attribute test when tracing is off everywhere)."""
        if not self.maybe:
            return None
        setting = self.models.get(model, self.default)
        context = None
        if self.exporter is not None and headers is not None and "OFF" not in setting.level:
            context = self.exporter.extract(headers)    # W3C traceparent: always sampled
        if not setting.take(force=context is not None):
            return None
        trace = Trace(self.next_id, setting, model, context)
        self.next_id += 1
        return trace

    def finish(self, trace: Trace) -> None:
        """The response was sent: write (triton) or export (opentelemetry) the trace."""
        if trace.children:          # Triton numbers children from the same counter
            self.next_id = tracetree.number(trace, self.next_id)
        if trace.setting.mode == "triton":
            trace.setting.write(trace)
        elif self.exporter is not None:
            self.exporter.export(trace)

    def close(self) -> None:
        for setting in (self.default, *self.models.values()):
            setting.close()
        for f in self.files.values():
            f.close()
        if self.exporter is not None:
            self.exporter.shutdown()

    # ---------------------------------------------------------------- settings

    def get(self, model: str = "") -> dict:
        """Triton's trace settings answer (remaining count, as Triton reports it)."""
        values = self._values(model)
        setting = self.models.get(model, self.default) if model else self.default
        values["trace_count"] = str(setting.count)
        out = {k: values[k] for k in _KEYS}
        if out["trace_mode"] != "triton":
            out.pop("log_frequency")
            out.pop("trace_file")
        return out

    def apply(self, model: str, update: dict) -> None:
        """Checked values (frontend/settings.py) -> new settings, as Triton replaces its
        setting objects (the old ones write what they collected; counters restart)."""
        if model:
            target = self.overrides.setdefault(model, {})
            for key, value in update.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
            if not target:
                del self.overrides[model]
            self._refresh([model])
            return
        for key, value in update.items():     # null: the value at start (Triton's default)
            self.global_[key] = self.start_values[key] if value is None else value
        self.default.close()
        self.default = self._setting(self.global_)
        self._refresh(list(self.models))     # the overrides fall back to the new values

    def _values(self, model: str) -> dict:
        values = dict(self.global_)
        if model:
            values.update(self.overrides.get(model, {}))
        return values

    def _setting(self, values: dict) -> Setting:
        path = values["trace_file"]
        file = None
        if path and values["trace_mode"] == "triton":
            path += self.suffix
            file = self.files.get(path)
            if file is None:
                file = self.files[path] = TraceFile(path)
        return Setting(values, file)

    def _refresh(self, names: list[str] = ()) -> None:
        """Rebuild the per-model settings of ``names`` (every override at start)."""
        for name in names or list(self.overrides):
            old = self.models.pop(name, None)
            if old is not None:
                old.close()
            if name in self.overrides:
                self.models[name] = self._setting(self._values(name))
        self.maybe = self.default.on or any(s.on for s in self.models.values()) or (
            self.exporter is not None and "OFF" not in self.default.level)
