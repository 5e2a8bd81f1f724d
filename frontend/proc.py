"""FrontendProc: the frontend process shell around FrontendCore (uvicorn + the gRPC engine on one loop).

Start: bind the inbox, say Hello, wait for Setup, build the core, bind the HTTP
and metrics sockets ourselves (so a busy port is tritonserver's log line and exit code 3), serve.
Drain: refuse new inference, wait for in-flight work (bounded), answer Drained.
Shutdown: stop the servers, unlink the input arena, answer Stopped, exit 0.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys

from tritond import messages, startfailure
from tritond.channel import AsyncInbox, AsyncOutbox
from tritond.errors import Code
from tritond.procutil import Bootstrap, child_start, quiet_gc

from .core import FrontendCore
from .grpc.iomgr import prefer_iomgr
from .memory import keep_freed_memory

EXIT_BIND = 3


class FrontendProc:
    """Owns the inbox, outbox, core and servers of one frontend process."""

    def __init__(self, boot: Bootstrap, log):
        self.boot = boot
        self.log = log
        self.outbox = AsyncOutbox()
        self.core: FrontendCore | None = None
        self.setup: asyncio.Future = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.http = None
        self.grpc = None
        self.metrics = None
        self.serving = False           # every endpoint is bound
        self.early: list = []          # data-plane messages that came before that

    def on_messages(self, msgs: list) -> None:
        if self.serving:
            self.core.on_messages(msgs)
            return
        # Until the endpoints are bound, keep the rest for the core: the parent's
        # "tritond ready" waits for each frontend's TableApplied, which must not come
        # from a frontend whose port turns out to be busy.
        for msg in msgs:
            kind = type(msg)
            if kind is messages.Setup and not self.setup.done():
                self.setup.set_result(msg)
            elif kind is messages.Drain or kind is messages.Shutdown:
                self.on_control(msg)
            else:
                self.early.append(msg)

    def on_control(self, msg) -> None:
        kind = type(msg)
        if kind is messages.Drain:
            asyncio.get_running_loop().create_task(self.drain(msg.deadline_s))
        elif kind is messages.Shutdown:
            asyncio.get_running_loop().create_task(self.shutdown())
        elif kind is messages.Unknown:
            self.log.error("a peer could not decode or did not expect our message: %s",
                           msg.detail)
        else:
            self.log.warning("ignoring unexpected message %r", msg)

    async def run(self) -> int:
        inbox = AsyncInbox(self.boot.address, messages.TO_FRONTEND, self.on_messages,
                           outbox=self.outbox)
        await inbox.start()
        self.outbox.post(self.boot.parent, messages.Hello(
            "frontend", self.boot.name, os.getpid(), self.boot.address))
        setup: messages.Setup = await self.setup
        opts = setup.options
        self.core = FrontendCore(opts, self.outbox, setup.server_id, self.boot.address,
                                 setup.scheduler, setup.parent, peers=setup.frontends,
                                 cache_segment=setup.cache)
        self.core.on_control = self.on_control
        try:
            if opts.allow_http:
                await self.start_http(opts)
            if opts.allow_grpc:
                await self.start_grpc(opts)
            # One /metrics for the server: frontend 0 serves it, summed over every
            # frontend (ControlPlane.peer_stats), so a scrape never depends on which
            # process the kernel picked.
            if opts.allow_metrics and self.boot.name == "frontend-0":
                await self.start_metrics(opts)
        except OSError:
            self.core.close()
            return EXIT_BIND
        self.serving = True
        early, self.early = self.early, []
        if early:       # before any request: no await since the servers started
            self.core.on_messages(early)
        self._trim_timer()
        quiet_gc()
        code = await self.done
        inbox.close()
        return code

    async def start_http(self, opts: dict) -> None:
        import uvicorn

        from .http.app import build_app, build_protocol
        host, port = opts.http_address, opts.http_port
        sock = bind(host, port, self.log, "HTTP",
                    reuse_port=opts.reuse_http_port or opts.frontend_processes > 1)
        # proxy_headers off: Triton does not read X-Forwarded-*, and uvicorn's
        # middleware for them wraps every request (~3% of a small request's CPU).
        config = uvicorn.Config(build_app(self.core), loop="none", http=build_protocol(self.core),
                                lifespan="off", access_log=False, log_level="warning",
                                log_config=None,     # its lines are ours (tritond.logline)
                                proxy_headers=False,
                                # Triton names no server software; nor do we
                                server_header=False,
                                timeout_keep_alive=opts.http_keepalive_s)
        self.http = uvicorn.Server(config)
        self.http.install_signal_handlers = lambda: None    # the parent drives shutdown
        asyncio.get_running_loop().create_task(self.http.serve(sockets=[sock]))
        self.log.info("Started HTTPService at %s:%d", host, port)

    def _trim_timer(self) -> None:
        loop = asyncio.get_running_loop()

        def tick() -> None:
            if self.core is not None and not self.done.done():
                self.core.trim_if_idle()
                loop.call_later(1.0, tick)
        loop.call_later(1.0, tick)

    async def start_metrics(self, opts: dict) -> None:
        """A port that cannot be bound stops the server, as tritonserver's StartEndpoints
        ("failed to start Metrics service", exit 1): the parent's preflight checked it,
        so this is a port taken since."""
        import uvicorn

        from .metrics import build_app as build_metrics
        host, port = opts.metrics_address, opts.metrics_port
        sock = bind(host, port, self.log, "metrics")
        config = uvicorn.Config(build_metrics(self.core), loop="none", http="httptools",
                                lifespan="off", access_log=False, log_level="warning",
                                log_config=None, server_header=False)
        self.metrics = uvicorn.Server(config)
        self.metrics.install_signal_handlers = lambda: None
        asyncio.get_running_loop().create_task(self.metrics.serve(sockets=[sock]))
        self.log.info("Started Metrics Service at %s:%d", host, port)

    async def start_grpc(self, opts: dict) -> None:
        try:
            from .grpc.server import BindError, serve_grpc
        except ImportError as e:
            self.log.error("gRPC endpoint unavailable: %s", e)
            return
        try:
            self.grpc = await serve_grpc(self.core, opts)
        except BindError as exc:
            self.log.error("%s", startfailure.bind_line("gRPC", opts.grpc_address,
                                                        opts.grpc_port))
            self.log.error("%s", exc)
            raise
        except OSError as exc:       # unreadable TLS files (grpc/tls.py)
            self.log.error("failed to start GRPC service: %s", exc)
            raise
        self.log.info("Started GRPCInferenceService at %s:%d", opts.grpc_address, opts.grpc_port)

    async def drain(self, deadline_s: float) -> None:
        """Refuse new inference; answer Drained once idle or at the deadline."""
        core = self.core
        core.control.draining = True
        if peers := core.control.peers:      # sequences continued on another frontend
            core.sequences.start_sharing(lambda notes: [
                self.outbox.post(p, messages.SequenceNotes(core.address, notes)) for p in peers])
        loop = asyncio.get_running_loop()
        end = loop.time() + max(0.0, deadline_s)
        # Live sequences go on until they end (or idle out): frontend/sequences.py.
        while (core.in_flight or core.sequences.count()) and loop.time() < end:
            await asyncio.sleep(0.01)
        if core.in_flight:
            self.log.warning("drain deadline passed with %d requests in flight", core.in_flight)
            # Answer them (503) rather than leave the clients to a reset connection.
            err = messages.ErrorInfo(int(Code.UNAVAILABLE),
                                     "Server is shutting down: the request did not finish "
                                     "within --exit-timeout-secs")
            core.on_messages([messages.Response(rid, error=err)
                              for rid in list(core.client.pending)])
            await asyncio.sleep(0.05)    # let the transports write those answers
        self.outbox.post(self.boot.parent, messages.Drained(self.boot.name))

    async def shutdown(self) -> None:
        if self.http is not None:
            self.http.should_exit = True
        if self.metrics is not None:
            self.metrics.should_exit = True
        if self.grpc is not None:
            await self.grpc.stop(grace=None)
        if self.core is not None:
            self.core.close()
        self.outbox.post(self.boot.parent, messages.Stopped(self.boot.name))
        await asyncio.sleep(0.05)        # let the outbox flush the Stopped frame
        if not self.done.done():
            self.done.set_result(0)


def bind(host: str, port: int, log, what: str, reuse_port: bool = False) -> socket.socket:
    """A listening socket; on failure one log line naming address:port and the OS error.

    ``reuse_port`` (--frontend-processes > 1): every frontend binds the same port
    and the kernel spreads new connections over them. The parent's preflight
    binds without it, so a port some other program holds is still refused;
    with --reuse-http-port it skips that check and another server that sets
    SO_REUSEPORT too shares the port, as tritonserver's evhtp REUSEPORT flag.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        # tritonserver's line (any bind failure reads "already in use" there), then why
        log.error("%s", startfailure.bind_line(what, host, port))
        log.error("cannot bind %s:%d: %s", host, port, e.strerror or e)
        raise
    sock.set_inheritable(True)
    return sock


def main(boot: Bootstrap) -> None:
    """Process entry point (spawned by the parent)."""
    prefer_iomgr()                  # before anything imports grpc (grpc/iomgr.py)
    log = child_start(boot)
    keep_freed_memory()

    async def run() -> int:
        return await FrontendProc(boot, log).run()

    try:
        import uvloop
        sys.exit(uvloop.run(run()))
    except ImportError:
        sys.exit(asyncio.run(run()))
