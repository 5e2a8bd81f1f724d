"""Load-API override checks and Triton's "failed to poll" error.

Triton reads a load request's overrides (the ``config`` JSON, ``file:<path>``
contents) while it polls the model; any problem there is a *poll* failure:
INTERNAL "failed to load '<m>', failed to poll from model repository", with
the cause only in its log. tritond gives the same code and text and appends the
cause, so that a client sees why (clients match the text as a substring).
"""
from __future__ import annotations

import logging
import posixpath

from tritond.errors import TritonError, internal

log = logging.getLogger("tritond.supervisor")

NAME_MAX = 255      # bytes in one path component (Linux)
_PREFIX = "file:"


def poll_failure(name: str, detail: str) -> TritonError:
    log.error("Poll failed for model directory '%s': %s", name, detail)
    return internal(f"failed to load '{name}', failed to poll from model repository: {detail}")


def file_problem(files: list[str], config: str) -> str:
    """Why Triton's localisation of ``file:`` parameters would fail ("" if it would not)."""
    for key in files:
        rel = key[len(_PREFIX):]
        if any(len(part.encode()) > NAME_MAX for part in rel.split("/")):
            return f"Invalid file parameter '{rel}': File name too long"
        root = "/model"
        path = posixpath.normpath(posixpath.join(root, rel))
        if not path.startswith(root + "/"):
            return (f"Invalid file parameter '{key}' with normalized path '{path}' must stay "
                    f"within model directory.")
    if not config:
        return "Load parameter 'config' must be specified for model file override"
    return ""
