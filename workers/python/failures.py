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
    frames = _frames(exc)
    if frames:
        text += "\n\nAt:\n" + "".join(frames)
    return text


def _frames(exc: BaseException) -> list[str]:
    """pybind11's walk: from the innermost frame of the traceback up its callers
    (``f_back``) until the stub. So a frame that has returned is not named (a coroutine
    awaited inside ``async def execute`` shows itself only), nor the importlib frames an
    import strips (a SyntaxError in model.py shows none). tritond's own frames are the
    stub's C++: the innermost of them are skipped, and the walk stops at the next."""
    tb, inner = exc.__traceback__, None
    while tb is not None:
        if not _ours(tb.tb_frame):
            inner = tb.tb_frame
        tb = tb.tb_next
    out = []
    frame = inner
    while frame is not None and not _ours(frame):
        out.append(f"  {frame.f_code.co_filename}({frame.f_lineno}): {frame.f_code.co_name}\n")
        frame = frame.f_back
    return out


def _ours(frame) -> bool:
    return os.path.abspath(frame.f_code.co_filename).startswith(_OURS)


def report(message: str, exc: BaseException | None = None) -> None:
    """Log ``message`` and the traceback of ``exc`` (if any) at error level."""
    if exc is None:
        log.error("%s", message)
        return
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.error("%s\n%s", message, trace.rstrip())
