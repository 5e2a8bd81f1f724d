"""What tritond logs: Triton's --log-info/--log-warning/--log-error switches and the
--log-verbose level and the --log-format, the same in every process and changed live
by ``/v2/logging``.

Verbose level N enables Python levels down to ``11 - N`` (1: DEBUG, 2: 9, ...), so a
line logged with ``log.log(verbose(2), ...)`` shows from --log-verbose=2 on, as
Triton's LOG_VERBOSE(2). The info/warning/error switches drop those lines (a
filter on the process's one handler). A change made through the logging API goes
frontend -> parent -> every other process as one ``messages.LogLevels``.
"""
from __future__ import annotations

import logging

from . import logline


def verbose(n: int) -> int:
    """The Python level of Triton's LOG_VERBOSE(n) (n >= 1)."""
    return max(1, 11 - n)


class _Switches(logging.Filter):
    """Drops INFO/WARNING/ERROR records whose switch is off."""

    def __init__(self) -> None:
        super().__init__()
        self.off: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno not in self.off


_switches = _Switches()


def apply(info: bool = True, warning: bool = True, error: bool = True,
          verbose_level: int = 0, log_format: str = "") -> None:
    """Set this process's logging (root logger level, the switches filter and, when
    ``log_format`` is given, the line format)."""
    root = logging.getLogger()
    if log_format:
        for handler in root.handlers:
            if isinstance(handler.formatter, logline.LineFormat):
                handler.setFormatter(logline.LineFormat(log_format, handler.formatter.escaped))
    root.setLevel(verbose(verbose_level) if verbose_level > 0 else logging.INFO)
    _switches.off = {lvl for lvl, on in ((logging.INFO, info), (logging.WARNING, warning),
                                         (logging.ERROR, error)) if not on}
    for handler in root.handlers:
        if _switches not in handler.filters:
            handler.addFilter(_switches)


def from_message(msg) -> None:
    """Apply a ``messages.LogLevels``."""
    apply(msg.info, msg.warning, msg.error, msg.verbose, msg.format)
