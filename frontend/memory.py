"""glibc heap policy of the frontend process: keep freed big buffers mapped.

Every large request passes through several big, short-lived heap buffers
(grpc's message bytes, a response joined from shm views, an HTTP body).
glibc serves each allocation over 128 KiB-32 MiB with a fresh mmap and
unmaps it on free, so every request page-faults all of them in again: for a
64 MiB gRPC identity call that was ~80,000 faults and about half of the
frontend's CPU (perf: exc_page_fault, clear_page). With mmap off and a high
trim threshold the freed blocks stay in the heap and the next request
reuses them; ``release_free_memory`` hands them back once the frontend is
idle (FrontendCore.trim_if_idle), so an idle server does not keep them.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("tritond.frontend")

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
KEEP_BYTES = 1 << 30      # freed top-of-heap memory kept while busy (glibc trims beyond it)

_libc = None


def keep_freed_memory() -> bool:
    """Switch glibc to reuse freed big blocks; False (and no change) off glibc."""
    global _libc
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES)
    except (OSError, AttributeError):
        return False
    if not ok:
        log.debug("mallopt refused; keeping glibc's default heap policy")
        return False
    _libc = libc
    return True


def release_free_memory() -> None:
    """Give the heap's free pages back to the OS (cheap when there are none)."""
    if _libc is not None:
        _libc.malloc_trim(0)
