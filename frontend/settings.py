"""Logging and trace settings extensions: Triton's shapes and checks;
with several frontends an update is applied by all of them before it is answered
(``ControlPlane._tell_peers``, ``messages.SettingsUpdate``).

Trace settings drive this frontend's ``trace.Tracer``; log settings are applied
to every process (``tritond.loglevels``).
"""
from __future__ import annotations

import re
from typing import Optional

from tritond import loglevels, messages
from tritond.errors import internal, invalid_arg, unavailable, unsupported

_INT_KEYS = ("trace_rate", "trace_count", "log_frequency")
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
# The range Triton's out-of-range message quotes for each (its text, not the int32
# bound its std::stoi enforces).
_RANGES = {"trace_rate": (0, (1 << 32) - 1), "trace_count": (-1, _INT32_MAX),
           "log_frequency": (0, (1 << 32) - 1)}
# What Triton's HTTP server answers for a value of the wrong JSON type (triton_json's
# words, as INTERNAL errors) and for a log_file or trace_file update.
NOT_BOOL = "attempt to access JSON non-boolean as boolean"
NOT_UINT = "attempt to access JSON non-unsigned-integer as unsigned-integer"
NOT_STRING = "attempt to access JSON non-string as string"
NOT_ARRAY = "attempt to access JSON non-array as array"
LOG_FILE_FIXED = "log file location can not be updated through network protocol"
TRACE_FILE_FIXED = "trace file location can not be updated through network protocol"
_IGNORED = object()        # a key or value Triton reads past
_STOI = re.compile(r"\s*[+-]?\d+")     # the number std::stoi reads at the front


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
            # Triton's words: --log-format is read without regard to case here
            "log_format": "ISO8601" if options.log_format == "iso8601" else "default",
        }

    def update(self, update: Optional[dict]) -> dict:
        """Triton's HandleLogging: the known keys are read (a null is passed over), every
        value checked before any is applied."""
        if update:
            new = dict(self.values)
            for key, value in update.items():
                if key in new and key != "log_file" and value is not None:
                    new[key] = self._check(key, value)
                elif key == "log_file" and value is not None:
                    raise unsupported(LOG_FILE_FIXED)
            self.values = new
            levels = messages.LogLevels(new["log_info"], new["log_warning"], new["log_error"],
                                        new["log_verbose_level"], format=new["log_format"])
            loglevels.from_message(levels)
        return dict(self.values)

    def applied(self, levels) -> None:
        """Another frontend changed them (``messages.LogLevels`` from the parent)."""
        loglevels.from_message(levels)
        self.values.update(log_info=levels.info, log_warning=levels.warning,
                           log_error=levels.error, log_verbose_level=levels.verbose)
        if levels.format:
            self.values["log_format"] = levels.format

    @staticmethod
    def _check(key: str, value):
        if key in ("log_info", "log_warning", "log_error"):
            if type(value) is not bool:
                raise internal(NOT_BOOL)
            return value
        if key == "log_verbose_level":
            if type(value) is not int or not 0 <= value < 1 << 64:     # Triton's AsUInt
                raise internal(NOT_UINT)
            return value
        if not isinstance(value, str):                                  # log_format
            raise internal(NOT_STRING)
        if value not in ("default", "ISO8601"):
            raise unavailable(f"invalid argument for --log_format, got: {value}")
        return value


class TraceSettings:
    """``/v2/trace/setting`` and per-model overrides (``null`` clears a model's override,
    or a global setting back to its value at start, as Triton), checked here and applied to the frontend's :class:`frontend.trace.Tracer`."""

    def __init__(self, tracer):
        self.tracer = tracer

    def get(self, model: str = "") -> dict:
        return self.tracer.get(model)

    def update(self, model: str, update: Optional[dict]) -> dict:
        """Triton's HandleTrace: trace_file refused, null clears, the other known keys
        checked (every one before any is applied), the rest passed over."""
        if update:
            checked = {}
            for key, value in update.items():
                if key == "trace_file":
                    raise unsupported(TRACE_FILE_FIXED)
                if key not in _KNOWN:
                    continue
                value = None if value is None else self._check(key, value)
                if value is not _IGNORED:
                    checked[key] = value
            if checked:
                self.tracer.apply(model, checked)
        return self.get(model)

    @staticmethod
    def _check(key: str, value):
        if key == "trace_level":
            if not isinstance(value, list):
                raise internal(NOT_ARRAY)
            on = []
            for level in value:
                if not isinstance(level, str):
                    raise internal(NOT_STRING)
                if level == "OFF":
                    if len(value) > 1:
                        raise invalid_arg("Expect only one trace level 'OFF' is specified")
                    return ["OFF"]
                if level in ("TIMESTAMPS", "TENSORS") and level not in on:
                    on.append(level)
            # unknown levels are passed over; none known: no change
            return [v for v in ("TIMESTAMPS", "TENSORS") if v in on] or _IGNORED
        if type(value) is not str:
            raise internal(NOT_STRING)
        found = _STOI.match(value)
        if found is None:
            raise invalid_arg(f"Unable to parse '{key}', got: {value}")
        n = int(found.group())
        if not _INT32_MIN <= n <= _INT32_MAX:    # Triton parses them with std::stoi
            low, high = _RANGES[key]
            raise invalid_arg(f"Unable to parse '{key}', value is out of range "
                              f"[ {low}, {high} ], got: {value}")
        if key == "trace_count" and n < -1:
            raise invalid_arg(f"Unable to parse 'trace_count'. Expecting value >= -1, "
                              f"got:{value}")
        if n < 0:        # Triton would wrap it into an unsigned rate: refused here
            raise invalid_arg(f"invalid value for '{key}', got: {value}")
        return str(n)


_KNOWN = ("trace_level", *_INT_KEYS)
