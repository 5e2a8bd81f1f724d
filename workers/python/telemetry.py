"""``pb_utils.Logger`` (and the custom metrics of custom_metrics.py, re-exported).

Logger writes to the worker's logging (the same Triton-like lines as every
tritond process).
"""
from __future__ import annotations

import logging

from .custom_metrics import Metric, MetricFamily  # noqa: F401 - pb_utils' names

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
