"""Logging and trace settings extensions: Triton's shapes and checks;
with several frontends an update is applied by all of them before it is answered
(``ControlPlane._tell_peers``, ``messages.SettingsUpdate``).

Trace settings drive this frontend's ``trace.Tracer``; log settings are applied
to every process (``tritond.loglevels``).
"""
from __future__ import annotations

from typing import Optional

from tritond import loglevels, messages
from tritond.errors import invalid_arg, unavailable, unsupported

_LEVELS = {"OFF", "TIMESTAMPS", "TENSORS"}
_INT_KEYS = ("trace_rate", "trace_count", "log_frequency")
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
# The range Triton's out-of-range message quotes for each (its text, not the int32
# bound its std::stoi enforces).
_RANGES = {"trace_rate": (0, (1 << 32) - 1), "trace_count": (-1, _INT32_MAX),
           "log_frequency": (0, (1 << 32) - 1)}


class LogSettings:
    """``/v2/logging``: log_info/warning/error and the verbose level change what every
    process logs (here at once, elsewhere through the parent: ``ControlPlane``)."""

    def __init__(self, options):
        self.values = {
            "log_file": options.log_file,
            "log_info": options.log_info,
            "log_warning": options.log_warning,
            "log_error": options.log_error,
            "log_verbose_level": options.log_verbose,
            "log_format": options.log_format,
        }

    def update(self, update: Optional[dict]) -> dict:
        if update:
            new = dict(self.values)
            for key, value in update.items():
                new[key] = self._check(key, value)
            self.values = new
            levels = messages.LogLevels(new["log_info"], new["log_warning"], new["log_error"],
                                        new["log_verbose_level"])
            loglevels.from_message(levels)
        return dict(self.values)

    def applied(self, levels) -> None:
        """Another frontend changed them (``messages.LogLevels`` from the parent)."""
        loglevels.from_message(levels)
        self.values.update(log_info=levels.info, log_warning=levels.warning,
                           log_error=levels.error, log_verbose_level=levels.verbose)

    def _check(self, key: str, value):
        if key == "log_file":
            if value is not None:
                raise unsupported("log file location can not be updated through network protocol")
            return self.values["log_file"]
        if key in ("log_info", "log_warning", "log_error"):
            if type(value) is not bool:
                raise invalid_arg(f"expect the value of '{key}' to be a boolean")
            return value
        if key == "log_verbose_level":
            if type(value) is not int or not 0 <= value < 1 << 64:     # Triton's AsUInt
                raise invalid_arg("expect the value of 'log_verbose_level' to be an unsigned integer")
            return value
        if key == "log_format":
            if value not in ("default", "ISO8601"):
                raise unavailable(f"invalid argument for log_format, got: {value}")
            return value
        raise invalid_arg(f"unknown logging setting '{key}'")


class TraceSettings:
    """``/v2/trace/setting`` and per-model overrides (``null`` clears a model's override,
    or a global setting back to its value at start, as Triton), checked here and applied to the frontend's :class:`frontend.trace.Tracer`."""

    def __init__(self, tracer):
        self.tracer = tracer

    def get(self, model: str = "") -> dict:
        return self.tracer.get(model)

    def update(self, model: str, update: Optional[dict]) -> dict:
        if update:
            checked = {key: None if value is None else self._check(key, value)
                       for key, value in update.items()}
            self.tracer.apply(model, checked)
        return self.get(model)

    @staticmethod
    def _check(key: str, value):
        if key == "trace_file":
            raise unsupported("trace file location can not be updated through network protocol")
        if key == "trace_level":
            if not isinstance(value, list) or any(v not in _LEVELS for v in value):
                raise invalid_arg("expect the value of 'trace_level' to be an array of "
                                  "'OFF', 'TIMESTAMPS' or 'TENSORS'")
            on = [v for v in ("TIMESTAMPS", "TENSORS") if v in value]
            return on or ["OFF"]
        if key in _INT_KEYS:
            if type(value) is not str:
                raise invalid_arg(f"expect the value of '{key}' to be a string")
            try:
                n = int(value)
            except ValueError:
                raise invalid_arg(f"unable to parse '{key}', got: {value}") from None
            if not _INT32_MIN <= n <= _INT32_MAX:    # Triton parses them with std::stoi
                low, high = _RANGES[key]
                raise invalid_arg(f"Unable to parse '{key}', value is out of range "
                                  f"[ {low}, {high} ], got: {value}")
            if n < (-1 if key == "trace_count" else 0):
                raise invalid_arg(f"invalid value for '{key}', got: {value}")
            return value
        if key == "trace_mode":
            raise unsupported("trace mode can not be updated through network protocol")
        raise invalid_arg(f"unknown trace setting '{key}'")
