"""``pb_utils.Logger`` (and the custom metrics of custom_metrics.py, re-exported).

Logger writes to the worker's logging (Triton's log line, ``tritond.logline``, as
every tritond process), with the calling model.py line as the line's source.
"""
from __future__ import annotations

import enum
import logging

from .custom_metrics import Metric, MetricFamily  # noqa: F401 - pb_utils' names

_log = logging.getLogger("tritond.model")


class LogLevel(enum.Enum):
    """python_backend's ``Logger.LogLevel``: a level is one of these, not an int (its
    binding refuses ``log(msg, 1)`` with TypeError); ``int()`` reads it as pybind11 does."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    VERBOSE = 3

    def __int__(self) -> int:
        return self.value

    __index__ = __int__


class Logger:
    """Static logging helpers with Triton's level constants."""

    LogLevel = LogLevel
    INFO = LogLevel.INFO
    WARNING = LogLevel.WARNING
    ERROR = LogLevel.ERROR
    VERBOSE = LogLevel.VERBOSE

    _LEVELS = {INFO: logging.INFO, WARNING: logging.WARNING,
               ERROR: logging.ERROR, VERBOSE: logging.DEBUG}

    @staticmethod
    def log(message, level: LogLevel = LogLevel.INFO) -> None:
        Logger._write(message, level)

    @staticmethod
    def log_info(message) -> None:
        Logger._write(message, Logger.INFO)

    @staticmethod
    def log_warn(message) -> None:
        Logger._write(message, Logger.WARNING)

    @staticmethod
    def log_error(message) -> None:
        Logger._write(message, Logger.ERROR)

    @staticmethod
    def log_verbose(message) -> None:
        Logger._write(message, Logger.VERBOSE)

    @staticmethod
    def _write(message, level) -> None:
        """Log with the model's own file and line as the line's source (python_backend
        reads the caller's frame): 3 frames up, past this and the public method."""
        if not isinstance(message, str) or not isinstance(level, LogLevel):
            raise TypeError(f"Logger.log(): expected (str, Logger.LogLevel), got "
                            f"({type(message).__name__}, {type(level).__name__})")
        _log.log(Logger._LEVELS[level], "%s", message, stacklevel=3)
