"""Triton's log line, field by field, in every process.

``I1130 17:24:22.123456 1234 loader.py:123] "msg"``: level letter (``I`` also for
verbose lines, as Triton's LOG_VERBOSE), MMDD and UTC time with microseconds, the
pid of the process that wrote it, the Python file and line that logged it (a Python
model's ``pb_utils.Logger`` call: its model.py line, as python_backend reports it),
``] `` and the message. ``--log-format=ISO8601``: ``2026-11-30T17:24:22Z I 1234
loader.py:123] "msg"``.

The message is written as a JSON string (triton-common's TritonJson::SerializeString,
i.e. rapidjson's writer), so a newline or quote in a model name, request id, error or
model log text cannot start a line of its own that a log reader would take for a
real one. ``TRITON_SERVER_ESCAPE_LOG_MESSAGES=0`` turns that off, as in Triton.
Tables (the start-up model table) are written as they are, as Triton's
LOG_TABLE_INFO: their lines start with ``+`` or ``|``, never a level letter.
"""
from __future__ import annotations

import logging
import os
import sys
import time

ESCAPE_ENV = "TRITON_SERVER_ESCAPE_LOG_MESSAGES"
# rapidjson's writer escapes '"', '\\' and every control character below 0x20 (the
# short forms where JSON has one, else \u00XX with upper-case hex); DEL, '/' and
# non-ASCII characters pass as they are.
_ESCAPES = {i: f"\\u{i:04X}" for i in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\b"): "\\b", ord("\f"): "\\f",
                 ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
UNESCAPED = {"unescaped": True}     # ``log.info(table, extra=UNESCAPED)``: a table


def escaping_on(environ=os.environ) -> bool:
    """Triton's rule: escape unless the variable is exactly ``0``."""
    return environ.get(ESCAPE_ENV) != "0"


def escape(text: str) -> str:
    """``text`` as Triton's SerializeString writes it: a quoted JSON string. rapidjson
    reads a C string, so the text ends at its first NUL."""
    return '"' + text.split("\0", 1)[0].translate(_ESCAPES) + '"'


def letter(levelno: int) -> str:
    """Triton has three letters: verbose lines are ``I``."""
    return "E" if levelno >= logging.ERROR else "W" if levelno >= logging.WARNING else "I"


class LineFormat(logging.Formatter):
    """One record as Triton's LogMessage writes it (``fmt``: ``default`` or ``iso8601``)."""

    def __init__(self, fmt: str = "default", escaped: bool | None = None) -> None:
        super().__init__()
        self.iso8601 = fmt.lower() == "iso8601"
        self.escaped = escaping_on() if escaped is None else escaped

    def format(self, record: logging.LogRecord) -> str:
        return self.preamble(record) + self.message(record)

    def preamble(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        t = time.gmtime(seconds)
        where = f"{record.process} {record.filename}:{record.lineno}] "
        if self.iso8601:
            return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', t)} {letter(record.levelno)} {where}"
        micros = int((record.created - seconds) * 1e6)
        return f"{letter(record.levelno)}{time.strftime('%m%d %H:%M:%S', t)}.{micros:06d} {where}"

    def message(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:             # the traceback belongs to the record: one line too
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        if self.escaped and not getattr(record, "unescaped", False):
            text = escape(text)
        # A lone surrogate (bytes decoded with surrogateescape) must not stop the write.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class LineSink(logging.Handler):
    """Where Triton's Logger writes: the log file when there is one, else info lines
    to stdout and warnings and errors to stderr. Every process appends whole lines
    (O_APPEND), so one file holds every process's lines, interleaved by line."""

    def __init__(self, log_file: str = "") -> None:
        super().__init__()
        self.path = log_file
        self.file = self._open()

    def _open(self):
        return open(self.path, "a", encoding="utf-8") if self.path else None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            if self.path and self.file is None:
                self.file = self._open()
            stream = self.file or (sys.stdout if record.levelno < logging.WARNING
                                   else sys.stderr)
            stream.write(line)
            stream.flush()
        except Exception:       # noqa: BLE001 - logging must never stop the server
            self.handleError(record)

    def close(self) -> None:
        """Closed, the sink opens its file again at the next line, as logging's FileHandler
        does (uvicorn's logging set-up closes every handler there is)."""
        if self.file is not None:
            self.file.close()
            self.file = None
        super().close()
