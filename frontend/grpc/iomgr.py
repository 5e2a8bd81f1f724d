"""Which of grpcio's I/O layers serves the frontend's connections; chosen before grpc loads.

grpcio (1.6x+) reads and writes sockets on its EventEngine by default: a request's
bytes are read by one of core's ``event_engine`` threads (the epoll thread wakes a
pool thread, which may wake another), which then wakes ``engine.CoreServer``'s
queue poller through an eventfd, which wakes the event loop: three or four thread
hand-offs before the handler runs. With the older iomgr endpoints (the two
experiments below switched off), the thread blocked in ``CompletionQueue.poll`` is
itself the poller: it reads the request, parses it and takes the call from the
queue, then wakes the loop: one hand-off, as in Triton, whose completion-queue
threads read the requests too (bench/RESULTS.md, 2026-11-30 09:05, branch grpc7). HTTP/2, TLS, keepalive, deadlines and compression are the
same core code either way.

``GRPC_EXPERIMENTS`` is read once, when grpc is imported: ``prefer_iomgr`` must run
first (frontend/proc.py does, at process start). A value the user exported wins.
"""
from __future__ import annotations

import os
import sys

EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"


def prefer_iomgr(environ=os.environ, modules=sys.modules) -> bool:
    """Switch grpc's server endpoints to iomgr unless the user chose, or grpc is loaded.

    Returns whether the choice was made here.
    """
    if "GRPC_EXPERIMENTS" in environ or "grpc" in modules:
        return False
    environ["GRPC_EXPERIMENTS"] = EXPERIMENTS
    return True
