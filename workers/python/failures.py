"""A Python model's exception as Triton's Python backend reports it.

Triton's stub catches the exception in C++ (pybind11 ``error_already_set``) and
sends ``what()``: ``"<Type>: <message>\\n\\nAt:\\n  <file>(<line>): <function>\\n"``,
innermost frame first. The same text goes to the client and the log here, and the
log also gets the full traceback at error level, so the model.py line is never lost.
"""
from __future__ import annotations

import logging
import os
import traceback

log = logging.getLogger("tritond.model")
# Frames in tritond's worker code are C++ in Triton (the stub): not the model's.
_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def describe(exc: BaseException) -> str:
    """pybind11's ``what()`` of ``exc``: type, message and the frames it was raised through."""
    text = f"{type(exc).__name__}: {exc}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(_OURS)]
    if frames:
        text += "\n\nAt:\n" + "".join(f"  {f.filename}({f.lineno}): {f.name}\n"
                                      for f in reversed(frames))
    return text


def report(message: str, exc: BaseException | None = None) -> None:
    """Log ``message`` and the traceback of ``exc`` (if any) at error level."""
    if exc is None:
        log.error("%s", message)
        return
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.error("%s\n%s", message, trace.rstrip())
