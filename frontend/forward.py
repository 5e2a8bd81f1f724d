"""Header forwarding (--http-header-forward-pattern, --grpc-header-forward-pattern).

As Triton: every HTTP header / gRPC metadata key the pattern matches anywhere
(a partial match, case-insensitive as Triton puts ``(?i)`` in front of it, unless
the pattern starts with ``(?-i)``; HTTP/1.1 header names reach tritond in lower
case) becomes a string request parameter of the same name; a matching key that
Triton reserves fails the request.
"""
from __future__ import annotations

import re
from functools import lru_cache

from tritond.errors import invalid_arg
from tritond.options import header_regex

# Triton's kReservedParameterKeys; keys starting with "triton_" are reserved too.
RESERVED = frozenset({"sequence_id", "sequence_start", "sequence_end", "priority", "timeout",
                      "headers", "binary_data_output"})


@lru_cache(maxsize=8)
def _compiled(pattern: str) -> re.Pattern:
    return header_regex(pattern)


def forward(pattern: str, pairs, parameters: dict) -> None:
    """Copy the (key, value) ``pairs`` whose key matches ``pattern`` into ``parameters``."""
    regex = _compiled(pattern)
    for key, value in pairs:
        if not regex.search(key):
            continue
        if key in RESERVED or key.startswith("triton_"):
            raise invalid_arg(f"Header '{key}' is reserved for Triton usage and cannot be "
                              f"forwarded.")
        parameters[key] = value if isinstance(value, str) else bytes(value).decode("latin-1")
