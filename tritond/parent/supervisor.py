"""The parent ``tritond`` process: control plane and supervisor.

It spawns the scheduler, the frontend and one worker per model instance, and
shuts everything down in a fixed order. Its parts are members with explicit
dependencies: the model :class:`~tritond.parent.models.Registry`, the
:class:`~tritond.parent.loader.Loader` (loads models, restarts dead workers),
the :class:`~tritond.parent.control.ModelControl` (load/unload API), the
:class:`~tritond.parent.publisher.Publisher` (model tables), the
:class:`~tritond.parent.spawner.Spawner` (starts children), the
:class:`~tritond.parent.startup.Startup` (the start-up sequence), and ``LogLevelRelay``,
``Poller`` and ``StopSignals`` (levels.py, poll.py, signals.py). It never touches
tensor bytes. Failure and shutdown policy: docs/internals.md "Failures and
shutdown" (a dead worker is restarted in place; a dead scheduler or frontend
stops the server with exit code 1: they hold every queue and connection).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys

import msgspec

from tritond import channel, messages, startfailure
from tritond.options import Options
from . import preflight, sdnotify
from .children import Child, ChildError, kill, stop_group, unlink_segments
from .clientshm import ClientShmRegistry
from .control import ModelControl
from .levels import LogLevelRelay
from .instances import HELLO_TIMEOUT_S
from .loader import Loader
from .modelready import ModelReady
from .models import Phase, Registry
from .progress import LoadProgress
from .poll import Poller
from .publisher import Publisher
from tritond.procutil import set_name, setup_logging
from .signals import StopSignals
from .spawner import Spawner
from .startup import Startup

log = logging.getLogger("tritond.supervisor")

STOP_TIMEOUT_S = 10.0       # per group of children, after Shutdown
RETIRED_SEGMENTS_S = 10.0   # a retired worker's segments outlive it this long
FATAL_DRAIN_S = 1.0         # after the scheduler died: executing work may still answer


class Supervisor:
    """Owns every child process; composes the parts that own the models."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.server_id = secrets.token_hex(16)    # 128 random bits: names nobody can guess
        self.address = channel.address(self.server_id, "parent")
        self.children: dict[str, Child] = {}          # by address
        self.scheduler: Child | None = None
        self.frontends: list[Child] = []
        self.drained: dict[str, asyncio.Future] = {}
        self.registry = Registry()
        self.phase = Phase()
        self.fatal = ""                                # role of a core process that died
        self.exit_code = 0
        self._stop_event: asyncio.Event | None = None
        # Read once, and hidden from the children (see Notifier).
        self.systemd = sdnotify.Notifier(unset=True)

    def _compose(self) -> None:
        """The parts (they need the outbox, made on the running loop)."""
        self.levels = LogLevelRelay(self.options, self.outbox, self.address, self.children,
                                    self.drained, scheduler=lambda: self.scheduler)
        self.spawner = Spawner(self.options, self.server_id, self.address, self.children,
                               self.levels, self._on_child_exit)
        self.publisher = Publisher(
            self.options, self.registry, self.phase, self.outbox,
            readers=lambda: [c for c in [self.scheduler, *self.frontends]
                             if c is not None and c.set_up],
            frontends=lambda: self.frontends, scheduler=lambda: self.scheduler)
        self.loader = Loader(self.options, self.registry, self.phase, self.outbox,
                             start_worker=self.spawner.worker, send_setup=self._send_setup,
                             publish=self.publisher.publish)
        self.control = ModelControl(self.options, self.registry, self.phase, self.loader,
                                    self.outbox, publish=self.publisher.publish,
                                    publish_and_wait=self.publisher.publish_and_wait,
                                    drained=self.drained)
        self.model_ready = ModelReady(self.registry, self.control.names, self.outbox,
                                      scheduler=lambda: self.scheduler)
        self.progress = LoadProgress(self.registry)
        self.client_shm = ClientShmRegistry(self.outbox, frontends=lambda: self.frontends)
        self.poller = Poller(self.options, self.control)
        self.startup = Startup(self.options, self.registry, self.phase, self.systemd, self.loader,
                               self.publisher, self.poller, start_core=self._start_core_processes,
                               frontends=lambda: self.frontends, send_setup=self._send_setup,
                               stopped=lambda: self._stop_event.is_set())

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        from tritond.shm import region

        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        StopSignals(self.options, self._stop_event, self.children,
                    self._left_behind).install(loop)
        self.systemd.start_watchdog()
        for name in region.reap_orphans():
            log.info("removed orphaned shared-memory segment %s", name)
        self.outbox = channel.AsyncOutbox()
        self._compose()
        self.inbox = channel.AsyncInbox(self.address, messages.TO_PARENT, self.on_messages,
                                        outbox=self.outbox)
        await self.inbox.start()
        progress = loop.create_task(self.progress.run())
        # A signal during a long start-up must not wait for every model to load.
        startup = loop.create_task(self._startup())
        stop = loop.create_task(self._stop_event.wait())
        await asyncio.wait([startup, stop], return_when=asyncio.FIRST_COMPLETED)
        if not startup.done():
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
        await stop
        progress.cancel()
        await self.shutdown()
        return self.exit_code

    async def _startup(self) -> None:
        if not await self.startup.run():
            self.exit_code = 1
            self._stop_event.set()

    # ------------------------------------------------------------- children

    async def _start_core_processes(self) -> None:
        self.spawner.create_cache()
        self.scheduler = self.spawner.spawn("scheduler", "scheduler")
        self.frontends = [self.spawner.spawn("frontend", f"frontend-{n}")
                          for n in range(self.options.frontend_processes)]
        await asyncio.wait_for(self.scheduler.hello, HELLO_TIMEOUT_S)
        self._send_setup(self.scheduler)

    def _send_setup(self, child: Child) -> None:
        child.set_up = True
        self.outbox.post(child.boot.address, messages.Setup(
            options=self.options, server_id=self.server_id, parent=self.address,
            scheduler=self.scheduler.boot.address,
            frontends=[f.boot.address for f in self.frontends],
            cache=self.spawner.cache_segment if child.boot.role != "scheduler" else ""))

    def _on_child_exit(self, child: Child) -> None:
        child.stopped = True
        self.children.pop(child.boot.address, None)
        self.outbox.forget(child.boot.address)
        if child.expected_exit and child.boot.role == "worker" and not self.phase.stopping:
            # A retired worker (reload, unload): a frontend may not have mapped its last
            # outputs yet (its Response still on the way); the worker left them linked.
            asyncio.get_running_loop().call_later(RETIRED_SEGMENTS_S, self._unlink_segments,
                                                  child.pid)
        else:
            self._unlink_segments(child.pid)    # its arenas, even after a SIGKILL
        if self.control.drainer.lost(child.boot.address):   # died while draining
            self.publisher.publish()
        if child.expected_exit:
            return
        if child.boot.role == "worker":
            self.loader.on_worker_death(child)
            return
        log.error("%s (pid %d) %s unexpectedly: stopping the server (exit code 1)",
                  child.boot.name, child.pid, child.exit_description())
        self.exit_code = 1
        self.fatal = self.fatal or child.boot.role
        self._stop_event.set()

    def _unlink_segments(self, pid: int | None = None) -> None:
        unlink_segments(self.server_id, pid)

    def _left_behind(self) -> None:
        """At exit (also a forced one): the shm segments and unpacked environments."""
        self._unlink_segments()
        if getattr(self, "loader", None) is not None:
            self.loader.envs.close()

    # ------------------------------------------------------------- messages

    def on_messages(self, msgs: list) -> None:
        for msg in msgs:
            kind = type(msg)
            if kind is messages.Stopped:
                continue        # the exit itself is what counts (children.stop_group)
            if kind is messages.TableApplied:
                self.publisher.on_applied(msg)
            elif kind is messages.Hello:
                child = self.children.get(msg.address)
                if child is not None and not child.hello.done():
                    if msg.protocol != messages.PROTOCOL_VERSION:
                        child.hello.set_exception(ChildError(f"{msg.name}: protocol {msg.protocol}"))
                    else:
                        child.hello.set_result(msg)
            elif kind is messages.Loaded or kind is messages.LoadFailed:
                self.loader.instances.on_load_result(msg)
            elif kind is messages.Drained:
                fut = self.drained.get(msg.name)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif kind is messages.LoadQuery or kind is messages.UnloadQuery:
                self.control.on_query(msg)
            elif kind is messages.LogLevels:
                self.levels.apply(msg)
            elif kind is messages.ShmRegisterQuery or kind is messages.ShmUnregisterQuery:
                self.client_shm.on_query(msg)
            elif kind is messages.ShmApplied:
                self.client_shm.on_applied(msg)
            elif kind is messages.ShmIdle:
                self.client_shm.on_idle(msg)
            elif kind is messages.ReadyQuery:     # a Python model's pb_utils.is_model_ready
                self.model_ready.on_query(msg)
            elif kind is messages.Unknown:
                log.error("a child could not decode or did not expect our message: %s",
                          msg.detail)

    # ------------------------------------------------------------- shutdown

    async def shutdown(self) -> None:
        self.phase.stopping = True
        self.poller.stop()
        self.systemd.notify("STOPPING=1\nSTATUS=stopping")
        if self.scheduler is not None:
            self.publisher.publish()  # readiness false at once
            deadline = float(self.options.exit_timeout_secs)
            if self.fatal == "scheduler":   # queued requests can never run now
                deadline = min(deadline, FATAL_DRAIN_S)
            await self._drain_frontends(deadline)
            self.systemd.notify("STATUS=finalizing models")
            await self._stop([c for c in self.children.values() if c.boot.role == "worker"])
            await self._stop([c for c in self.children.values() if c.boot.role == "scheduler"])
            await self._stop([c for c in self.children.values() if c.boot.role == "frontend"])
        for child in list(self.children.values()):
            kill(child)
            child.process.join(2)
        self._left_behind()
        self.outbox.close()
        self.inbox.close()
        log.info("tritond stopped (exit code %d)", self.exit_code)

    async def _drain_frontends(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        waits = []
        for fe in self.frontends:
            # One never sent its Setup (a stop early in the start-up) serves nothing and has
            # no core to drain: it would never answer, and the stop would wait the whole
            # deadline for it. _stop kills it.
            if fe.stopped or not fe.set_up:
                continue
            self.drained[fe.boot.name] = loop.create_future()
            self.outbox.post(fe.boot.address, messages.Drain(deadline))
            waits.append(self.drained[fe.boot.name])
        if waits and (await asyncio.wait(waits, timeout=deadline + 2.0))[1]:
            log.warning("frontends did not report drained within %ss", deadline)

    async def _stop(self, children: list[Child]) -> None:
        for child in children:
            if (child.loading or not child.set_up) and not child.stopped:
                # A load runs to its end before the worker reads its inbox, and one not yet
                # set up may not be listening (a start-up cancelled while it awaited its
                # hello); such an instance serves nothing yet: waiting would only delay the stop.
                log.info("%s is still %s: stopping it without waiting", child.boot.name,
                         f"loading {child.loading}" if child.loading else "starting")
                child.expected_exit = True
                kill(child)
                continue
            self.outbox.post(child.boot.address, messages.Shutdown("server stopping"))
        await stop_group(children, STOP_TIMEOUT_S)


def run(options: Options) -> int:
    """Run the server until SIGTERM/SIGINT; returns the process exit code."""
    if problems := preflight.problems(options):    # before any child: one sentence each
        if line := preflight.triton_line(options):    # what tritonserver logs for it
            # A --log-file that cannot be opened is one of the problems: then to stderr
            usable = not preflight.log_file_problems(options.log_file)
            _logging(options if usable else msgspec.structs.replace(options, log_file="")) \
                .error("%s", line)
        for problem in problems:
            sys.stderr.write(f"tritond: error: {problem}\n")
        return startfailure.EXIT_CODE
    set_name("tritond")     # `python -m tritond` would show as "python"; argv stays
    _logging(options)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(Supervisor(options).run())
    return uvloop.run(Supervisor(options).run())


def _logging(options: Options):
    return setup_logging("tritond", options.log_verbose, options.log_file, options.log_format,
                         options.log_info, options.log_warning, options.log_error)
