"""The parent ``tritond`` process: control plane and supervisor.

It spawns the scheduler, the frontend and one worker per model instance, loads
models (:mod:`tritond.parent.loader`, which also restarts dead workers), publishes the
model table, and shuts everything down in a fixed order. It never touches
tensor bytes. Failure and shutdown policy: docs/internals.md "Failures and
shutdown" (a dead worker is restarted in place; a dead scheduler or frontend
stops the server with exit code 1: they hold every queue and connection).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time

from tritond import channel, messages
from . import sdnotify
from .children import Child, ChildError, kill, spawn, stop_group, unlink_segments
from .control import UNLOADED, ModelControl
from .loader import HELLO_TIMEOUT_S, Loader
from .models import UNAVAILABLE, ModelVersion, format_table
from tritond.procutil import Bootstrap, setup_logging
from .shmcheck import arena_space_warning

log = logging.getLogger("tritond.supervisor")

STOP_TIMEOUT_S = 10.0       # per group of children, after Shutdown
APPLY_TIMEOUT_S = 10.0      # frontends applying the first table before READY=1
FATAL_DRAIN_S = 1.0         # after the scheduler died: executing work may still answer


class Supervisor(Loader, ModelControl):
    """Owns every child process and the model table."""

    def __init__(self, options: dict) -> None:
        self.options = options
        self.server_id = secrets.token_hex(16)    # 128 random bits: names nobody can guess
        self.address = channel.address(self.server_id, "parent")
        self.children: dict[str, Child] = {}          # by address
        self.models: dict[tuple[str, int], ModelVersion] = {}
        self.failed_models: dict[str, str] = {}        # failed before any version was known
        self.known_models: set[str] = set()            # every model in the repository
        self.pending_loads: dict[str, asyncio.Future] = {}   # by instance name
        self.drained: dict[str, asyncio.Future] = {}
        self.applied: dict[str, int] = {}              # frontend address -> last table seq
        self.started = False
        self.stopping = False
        self.fatal = ""                                # role of a core process that died
        self.exit_code = 0
        self._worker_seq = 0
        self._table_seq = 0
        self._stop_event: asyncio.Event | None = None
        self._signals = 0
        # Read once, and hidden from the children (see Notifier).
        self.systemd = sdnotify.Notifier(unset=True)

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        from tritond.shm import region

        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self._start_watchdog()
        for name in region.reap_orphans():
            log.info("removed orphaned shared-memory segment %s", name)
        self.inbox = channel.AsyncInbox(self.address, messages.TO_PARENT, self.on_messages)
        await self.inbox.start()
        self.outbox = channel.AsyncOutbox()
        # A signal during a long start-up must not wait for every model to load.
        startup = loop.create_task(self._startup())
        stop = loop.create_task(self._stop_event.wait())
        await asyncio.wait([startup, stop], return_when=asyncio.FIRST_COMPLETED)
        if not startup.done():
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
        await stop
        await self.shutdown()
        return self.exit_code

    async def _startup(self) -> None:
        self.systemd.notify("STATUS=starting")
        try:
            await self._start_core_processes()
            self.systemd.notify("STATUS=loading models")
            await self._load_all()
        except Exception as exc:  # noqa: BLE001 - any start-up failure stops the server
            log.error("start-up failed: %s", exc if isinstance(exc, ChildError) else repr(exc))
            self.exit_code = 1
            self._stop_event.set()
            return
        self.started = True
        if warning := arena_space_warning(self.options, len(self.frontends), self.models):
            log.warning("%s", warning)
        await self._publish_and_wait()
        text = format_table(list(self.models.values()), self.failed_models)
        log.info("%s", "\n" + text if text else "no models loaded")
        failed = [m for m in self.models.values() if m.state != "READY"] or self.failed_models
        if failed and self.options["exit_on_error"]:
            log.error("exiting: some models failed to load and --exit-on-error is set")
            self.exit_code = 1
            self._stop_event.set()
            return
        self.systemd.notify(f"READY=1\nSTATUS=serving{' (some models failed)' if failed else ''}"
                            f"\nMAINPID={os.getpid()}")
        log.info("tritond ready: HTTP %s:%s, gRPC %s:%s",
                 self.options["http_address"], self.options["http_port"],
                 self.options["grpc_address"], self.options["grpc_port"])

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second %s: forcing exit", signal.Signals(sig).name)
            for child in list(self.children.values()):
                kill(child)
            for child in list(self.children.values()):
                child.process.join(2)
            self._unlink_segments()
            os._exit(1)
        log.info("received %s: draining (up to --exit-timeout-secs=%s; a second signal forces "
                 "exit)", signal.Signals(sig).name, self.options["exit_timeout_secs"])
        self._stop_event.set()

    def _start_watchdog(self) -> None:
        interval = self.systemd.watchdog_s
        if not interval:
            return
        loop = asyncio.get_running_loop()

        # On the control loop on purpose: a stuck loop stops the pings and
        # systemd's WatchdogSec= then restarts the service.
        def beat() -> None:
            self.systemd.notify("WATCHDOG=1")
            loop.call_later(interval, beat)
        beat()

    # ------------------------------------------------------------- children

    def _boot(self, role: str, name: str) -> Bootstrap:
        return Bootstrap(role=role, name=name, address=channel.address(self.server_id, name),
                         parent=self.address, server_id=self.server_id, parent_pid=os.getpid(),
                         log_verbose=self.options["log_verbose"])

    def _spawn(self, role: str, name: str) -> Child:
        child = spawn(self._boot(role, name), self._on_child_exit)
        self.children[child.boot.address] = child
        return child

    async def _start_core_processes(self) -> None:
        self.scheduler = self._spawn("scheduler", "scheduler")
        self.frontends = [self._spawn("frontend", "frontend-0")]
        for child in [self.scheduler, *self.frontends]:
            await asyncio.wait_for(child.hello, HELLO_TIMEOUT_S)
            self._send_setup(child)

    def _send_setup(self, child: Child) -> None:
        self.outbox.post(child.boot.address, messages.Setup(
            options=self.options, server_id=self.server_id, parent=self.address,
            scheduler=self.scheduler.boot.address,
            frontends=[f.boot.address for f in self.frontends]))

    def _on_child_exit(self, child: Child) -> None:
        child.stopped = True
        self.children.pop(child.boot.address, None)
        self.outbox.forget(child.boot.address)
        self._unlink_segments(child.pid)        # its arenas, even after a SIGKILL
        if child.expected_exit:
            return
        if child.boot.role == "worker":
            self._on_worker_death(child)
            return
        log.error("%s (pid %d) %s unexpectedly: stopping the server (exit code 1)",
                  child.boot.name, child.pid, child.exit_description())
        self.exit_code = 1
        self.fatal = self.fatal or child.boot.role
        self._stop_event.set()

    def _unlink_segments(self, pid: int | None = None) -> None:
        unlink_segments(self.server_id, pid)

    # ------------------------------------------------------------- messages

    def on_messages(self, msgs: list) -> None:
        for msg in msgs:
            kind = type(msg)
            if kind is messages.Stopped:
                continue        # the exit itself is what counts (children.stop_group)
            if kind is messages.TableApplied:
                self.applied[msg.address] = max(msg.seq, self.applied.get(msg.address, 0))
            elif kind is messages.Hello:
                child = self.children.get(msg.address)
                if child is not None and not child.hello.done():
                    if msg.protocol != messages.PROTOCOL_VERSION:
                        child.hello.set_exception(ChildError(f"{msg.name}: protocol {msg.protocol}"))
                    else:
                        child.hello.set_result(msg)
            elif kind is messages.Loaded or kind is messages.LoadFailed:
                fut = self.pending_loads.pop(msg.instance, None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif kind is messages.Drained:
                fut = self.drained.get(msg.name)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif kind is messages.Query:
                self.on_control_query(msg)
            else:
                log.warning("unexpected message %r", msg)

    def publish(self) -> int:
        """Send the full table to the scheduler and every frontend; returns its seq."""
        entries = [m.entry() for m in self.models.values()]
        entries += [messages.ModelEntry(name, 0, UNAVAILABLE, reason)
                    for name, reason in self.failed_models.items()]
        listed = {name for name, _ in self.models} | set(self.failed_models)
        entries += [messages.ModelEntry(name, -1, "UNKNOWN")    # never loaded: name-only row
                    for name in sorted(self.known_models - listed)]
        self._table_seq += 1
        table = messages.ModelTable(entries, self.server_ready(), self._table_seq)
        for child in [self.scheduler, *self.frontends]:
            if not child.stopped:
                self.outbox.post(child.boot.address, table)
        return self._table_seq

    async def _publish_and_wait(self) -> None:
        """Publish, then wait until every frontend applied it: READY=1 must not come
        before /v2/health/ready (and inference) really answer from this table."""
        seq = self.publish()
        end = time.monotonic() + APPLY_TIMEOUT_S
        while time.monotonic() < end:
            if all(self.applied.get(f.boot.address, 0) >= seq for f in self.frontends
                   if not f.stopped):
                return
            await asyncio.sleep(0.005)
        log.warning("frontends did not apply the model table within %.0fs", APPLY_TIMEOUT_S)

    def server_ready(self) -> bool:
        """--strict-readiness: every model asked to load READY and live; else: started."""
        if not self.started or self.stopping:
            return False
        if not self.options["strict_readiness"]:
            return True
        return not self.failed_models and all(m.ready or m.reason == UNLOADED  # §4.7
                                              for m in self.models.values())

    # ------------------------------------------------------------- shutdown

    async def shutdown(self) -> None:
        self.stopping = True
        self.systemd.notify("STOPPING=1\nSTATUS=stopping")
        if hasattr(self, "scheduler"):
            self.publish()  # readiness false at once
            deadline = float(self.options["exit_timeout_secs"])
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
        self._unlink_segments()
        self.outbox.close()
        self.inbox.close()
        log.info("tritond stopped (exit code %d)", self.exit_code)

    async def _drain_frontends(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        waits = []
        for fe in self.frontends:
            if fe.stopped:
                continue
            self.drained[fe.boot.name] = loop.create_future()
            self.outbox.post(fe.boot.address, messages.Drain(deadline))
            waits.append(self.drained[fe.boot.name])
        if waits and (await asyncio.wait(waits, timeout=deadline + 2.0))[1]:
            log.warning("frontends did not report drained within %ss", deadline)

    async def _stop(self, children: list[Child]) -> None:
        for child in children:
            self.outbox.post(child.boot.address, messages.Shutdown("server stopping"))
        await stop_group(children, STOP_TIMEOUT_S)


def run(options: dict) -> int:
    """Run the server until SIGTERM/SIGINT; returns the process exit code."""
    setup_logging("tritond", options["log_verbose"])
    try:
        import uvloop
    except ImportError:
        return asyncio.run(Supervisor(options).run())
    return uvloop.run(Supervisor(options).run())
