"""``pb_utils.Logger`` (and the custom metrics of custom_metrics.py, re-exported).

Logger writes to the worker's logging (the same Triton-like lines as every
tritond process).
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
        if not isinstance(message, str) or not isinstance(level, LogLevel):
            raise TypeError(f"Logger.log(): expected (str, Logger.LogLevel), got "
                            f"({type(message).__name__}, {type(level).__name__})")
        _log.log(Logger._LEVELS[level], "%s", message)

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
