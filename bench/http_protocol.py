#!/usr/bin/env python3
"""The HTTP frontend's in-process cost per infer request, without the model (issue 15).

    <venv>/bin/python bench/http_protocol.py [--requests 5000] [--rounds 5] [--profile] [--core]
                                             [--conns N]

Drives the frontend's uvicorn protocol class (as ``frontend/proc.py`` builds it)
over an in-memory transport on uvloop: each request's bytes go to
``data_received`` (one keep-alive connection), and the loop runs until the
response is written. The inference itself (``fastpath.infer``) is replaced by
one that reads the body and answers a fixed 200-byte JSON ``InferResponse``,
so what is measured is everything around it: parsing, routing, the request's
task, body read, response head and write, keep-alive bookkeeping. Prints the
best of ``--rounds`` × ``--requests`` in CPU µs per request. Run it with one
checkout's venv, then another's (the script imports whichever ``tritond`` the
interpreter has): a steady A/B on a host where whole-server figures swing.

``--core`` keeps the real inference path instead: a real ``FrontendCore`` over
real channels (``tests/frontend/harness.py``), the script playing scheduler
and worker in the same process (it decodes each Request and answers
OUTPUT0/OUTPUT1 from shm). The figure then includes that stand-in's cost too,
the same on both sides of an A/B.

``--conns N`` (default 1) serves N keep-alive connections at once, as a loaded
server's loop turn does when epoll reports N readable sockets: each round hands
one request to every connection, then runs the loop until all N answers are
written. With ``--core`` the stand-in then answers every Request of a frame in
one frame of its own, with the same two output slots each time (no numpy, no
allocation: its cost per request falls, so the frontend's own share shows).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import pathlib
import pstats
import sys
import time

import uvicorn
import uvloop
from uvicorn.server import ServerState

from tritond import messages
from tritond.frontend.http import app as http_app
from tritond.frontend.http import fastpath
from tritond.frontend.http.responses import InferResponse
from tritond.options import Options

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

BODY = b'{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[' + \
    b",".join([b"1"] * 16) + b']},{"name":"INPUT1","shape":[1,16],"datatype":"INT32","data":[' + \
    b",".join([b"2"] * 16) + b"]}]}"
REQUEST = (b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
ANSWER = b'{"model_name":"add_sub","model_version":"1","outputs":[' + b" " * 140 + b"]}"


class _Result:
    def release(self) -> None:
        pass


class _Tracer:
    maybe = False


class _Core:
    def __init__(self) -> None:
        self.options = Options()
        self.tracer = _Tracer()


async def _infer(core, headers, receive, model, version, trace=None, watched=False, whole=None):
    if whole is None:         # an exchange hands over a body it holds in full (whole)
        await fastpath.read_body(headers.get(b"content-length"), receive, 1 << 20)
    return InferResponse(ANSWER, [], _Result(), None)


class _Transport(asyncio.Transport):
    def __init__(self, done=None) -> None:
        super().__init__()
        self.waiter = None
        self.first = None
        self.done = done            # --conns: counts answers of the round

    def write(self, data) -> None:
        if self.first is None:
            self.first = bytes(data)
        if not data.endswith(b"}"):
            return
        if self.waiter is not None:
            self.waiter.set_result(None)
        elif self.done is not None:
            self.done()

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _protocol_class(core):
    if hasattr(http_app, "build_protocol"):
        return http_app.build_protocol(core)
    from tritond.frontend.http.deadline import with_header_timeout
    from tritond.frontend.http.protocol import CorkedHttpToolsProtocol
    return with_header_timeout(CorkedHttpToolsProtocol, 0.0)


async def _responder(h) -> None:
    """Scheduler and worker: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1."""
    while True:
        req = await h.next_request()
        a, b = (h.cache.array(r) for r in req.inputs)
        h.respond(req.rid, [h.output("OUTPUT0", a + b), h.output("OUTPUT1", a - b)])


async def _batch_responder(h) -> None:
    """--conns: every Request waiting is answered at once, from two fixed output slots."""
    import numpy as np
    outputs = [h.output(name, np.arange(16, dtype=np.int32).reshape(1, 16))
               for name in ("OUTPUT0", "OUTPUT1")]
    while True:
        req = await h.next_request()
        h.respond(req.rid, outputs)
        while not h.sched.empty():
            msg = h.sched.get_nowait()
            if type(msg) is not messages.Release:
                h.respond(msg.rid, outputs)


async def _round(n: int, real: bool, conns: int = 1) -> float:
    measure = _measure if conns == 1 else functools.partial(_measure_many, conns=conns)
    if not real:
        return await measure(_Core(), n)
    from tests.frontend.harness import Harness
    h = Harness()
    await h.start()
    responder = asyncio.ensure_future(_responder(h) if conns == 1 else _batch_responder(h))
    try:
        return await measure(h.core, n)
    finally:
        responder.cancel()
        h.close()


async def _measure_many(core, n: int, conns: int) -> float:
    loop = asyncio.get_running_loop()
    config = uvicorn.Config(http_app.build_app(core), loop="none", lifespan="off",
                            access_log=False, log_level="warning", proxy_headers=False)
    config.load()
    cls = _protocol_class(core)
    state = ServerState()
    left = [0, None]

    def done() -> None:
        left[0] -= 1
        if left[0] == 0:
            left[1].set_result(None)

    protos = []
    for _ in range(conns):
        proto = cls(config=config, server_state=state, app_state={}, _loop=loop)
        proto.connection_made(_Transport(done))
        protos.append(proto)
    rounds = max(1, n // conns)
    _quiet_gc()
    start = time.process_time()
    for _ in range(rounds):
        left[0], left[1] = conns, loop.create_future()
        for proto in protos:
            proto.data_received(REQUEST)
        await left[1]
        await asyncio.sleep(0)        # the tasks' ends and uvicorn's on_response
    spent = time.process_time() - start
    first = protos[0].transport._transport.first       # noqa: SLF001 - under the corked one
    if not first.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"the server answered {first[:300]!r}")
    for proto in protos:
        proto.connection_lost(None)
    return spent / (rounds * conns) * 1e6


def _quiet_gc() -> None:
    """The collector as a frontend process sets it after start-up (procutil.quiet_gc)."""
    try:
        from tritond.procutil import quiet_gc
    except ImportError:
        return
    quiet_gc()


async def _measure(core, n: int) -> float:
    loop = asyncio.get_running_loop()
    config = uvicorn.Config(http_app.build_app(core), loop="none", lifespan="off",
                            access_log=False, log_level="warning", proxy_headers=False)
    config.load()
    proto = _protocol_class(core)(config=config, server_state=ServerState(), app_state={},
                                  _loop=loop)
    transport = _Transport()
    proto.connection_made(transport)
    _quiet_gc()
    start = time.process_time()
    for _ in range(n):
        transport.waiter = loop.create_future()
        proto.data_received(REQUEST)
        await transport.waiter
        await asyncio.sleep(0)        # the task's end and uvicorn's on_response
    spent = time.process_time() - start
    if not transport.first.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"the server answered {transport.first[:300]!r}")
    proto.connection_lost(None)
    return spent / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--core", action="store_true", help="the real inference path (see above)")
    ap.add_argument("--conns", type=int, default=1, help="connections served at once")
    args = ap.parse_args()
    if not args.core:
        fastpath.infer = _infer
    best = min(uvloop.run(_round(args.requests, args.core, args.conns))
               for _ in range(args.rounds))
    print(f"{best:.1f} µs per request (best of {args.rounds} × {args.requests}, "
          f"{args.conns} connection{'s' if args.conns > 1 else ''})")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(uvloop.run, _round(args.requests, args.core, args.conns))
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
