"""Logging and trace settings extensions (protocol.md §1.15), kept per frontend process;
with several frontends an update is applied by all of them before it is answered
(``ControlPlane._tell_peers``, ``messages.SettingsUpdate``).

Tracing is not implemented: the settings round-trip with Triton's shapes and
validation so clients that read or write them keep working.
"""
from __future__ import annotations

import logging
from typing import Optional

from tritond.errors import invalid_arg, unavailable, unsupported

_LEVELS = {"OFF", "TIMESTAMPS", "TENSORS"}
_INT_KEYS = ("trace_rate", "trace_count", "log_frequency")


class LogSettings:
    """``/v2/logging``: the verbose level really changes this process's log level."""

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
            logging.getLogger().setLevel(
                logging.DEBUG if new["log_verbose_level"] > 0 else logging.INFO)
        return dict(self.values)

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
            if type(value) is not int or value < 0:
                raise invalid_arg("expect the value of 'log_verbose_level' to be an unsigned integer")
            return value
        if key == "log_format":
            if value not in ("default", "ISO8601"):
                raise unavailable(f"invalid argument for log_format, got: {value}")
            return value
        raise invalid_arg(f"unknown logging setting '{key}'")


class TraceSettings:
    """``/v2/trace/setting`` and per-model overrides (``null`` clears an override)."""

    def __init__(self, options):
        self.global_ = {
            "trace_level": list(options.trace_level),
            "trace_rate": str(options.trace_rate),
            "trace_count": str(options.trace_count),
            "log_frequency": str(options.trace_log_frequency),
            "trace_file": options.trace_file,
            "trace_mode": options.trace_mode,
        }
        self.models: dict[str, dict] = {}

    def get(self, model: str = "") -> dict:
        out = dict(self.global_)
        if model:
            out.update(self.models.get(model, {}))
        if out["trace_mode"] != "triton":
            out.pop("log_frequency", None)
            out.pop("trace_file", None)
        return out

    def update(self, model: str, update: Optional[dict]) -> dict:
        if update:
            target = self.models.setdefault(model, {}) if model else self.global_
            for key, value in update.items():
                if value is None:
                    if model:
                        target.pop(key, None)
                    continue
                target[key] = self._check(key, value)
        return self.get(model)

    @staticmethod
    def _check(key: str, value):
        if key == "trace_file":
            raise unsupported("trace file location can not be updated through network protocol")
        if key == "trace_level":
            if not isinstance(value, list) or any(v not in _LEVELS for v in value):
                raise invalid_arg("expect the value of 'trace_level' to be an array of "
                                  "'OFF', 'TIMESTAMPS' or 'TENSORS'")
            return list(value)
        if key in _INT_KEYS:
            if type(value) is not str:
                raise invalid_arg(f"expect the value of '{key}' to be a string")
            try:
                n = int(value)
            except ValueError:
                raise invalid_arg(f"unable to parse '{key}', got: {value}") from None
            if n < (-1 if key == "trace_count" else 0):
                raise invalid_arg(f"invalid value for '{key}', got: {value}")
            return value
        if key == "trace_mode":
            raise unsupported("trace mode can not be updated through network protocol")
        raise invalid_arg(f"unknown trace setting '{key}'")
