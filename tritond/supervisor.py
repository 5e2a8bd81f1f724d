"""The parent ``tritond`` process: control plane and supervisor.

It spawns the scheduler, the frontend and one worker per model instance,
loads models, publishes the model table, restarts dead workers, and shuts
everything down in a fixed order. It never touches tensor bytes.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time

from . import channel, messages, sdnotify
from .children import Child, ChildError, kill, spawn
from .errors import Code
from .models import LOADING, READY, UNAVAILABLE, Instance, ModelVersion, instance_plan
from .procutil import Bootstrap, setup_logging

log = logging.getLogger("tritond.supervisor")

HELLO_TIMEOUT_S = 120.0
LOAD_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 10.0


class Supervisor:
    """Owns every child process and the model table."""

    def __init__(self, options: dict) -> None:
        self.options = options
        self.server_id = f"{os.getpid():x}{secrets.token_hex(2)}"
        self.address = channel.address(self.server_id, "parent")
        self.children: dict[str, Child] = {}          # by address
        self.models: dict[tuple[str, int], ModelVersion] = {}
        self.failed_models: dict[str, str] = {}        # failed before any version was known
        self.pending_loads: dict[str, asyncio.Future] = {}   # by instance name
        self.drained: dict[str, asyncio.Future] = {}
        self.stopped_msgs: dict[str, asyncio.Future] = {}
        self.started = False
        self.stopping = False
        self.exit_code = 0
        self._worker_seq = 0
        self._stop_event: asyncio.Event | None = None
        self._signals = 0

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        from .shm import region

        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        for name in region.reap_orphans():
            log.info("removed orphaned shared-memory segment %s", name)
        self.inbox = channel.AsyncInbox(self.address, messages.TO_PARENT, self.on_messages)
        await self.inbox.start()
        self.outbox = channel.AsyncOutbox()
        try:
            await self._start_core_processes()
            await self._load_all()
        except ChildError as exc:
            log.error("%s", exc)
            self.exit_code = 1
            self._stop_event.set()
        if not self._stop_event.is_set():
            self.started = True
            self.publish()
            self._log_model_table()
            failed = [m for m in self.models.values() if m.state != READY] or self.failed_models
            if failed and self.options["exit_on_error"]:
                log.error("exiting: some models failed to load and --exit-on-error is set")
                self.exit_code = 1
                self._stop_event.set()
            else:
                sdnotify.notify("READY=1\nSTATUS=serving")
                self._start_watchdog()
                log.info("tritond ready: HTTP %s:%s, gRPC %s:%s",
                         self.options["http_address"], self.options["http_port"],
                         self.options["grpc_address"], self.options["grpc_port"])
        await self._stop_event.wait()
        await self.shutdown()
        return self.exit_code

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: forcing exit")
            for child in list(self.children.values()):
                kill(child)
            self._unlink_segments()
            os._exit(1)
        log.info("received %s: draining", signal.Signals(sig).name)
        self._stop_event.set()

    def _start_watchdog(self) -> None:
        interval = sdnotify.watchdog_interval_s()
        if interval:
            loop = asyncio.get_running_loop()

            def beat() -> None:
                sdnotify.notify("WATCHDOG=1")
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
        self._unlink_segments(child.pid)
        if child.expected_exit or self.stopping:
            return
        role = child.boot.role
        if role == "worker":
            self._on_worker_death(child)
            return
        log.error("%s (pid %d) died unexpectedly (%s): stopping the server",
                  child.boot.name, child.pid, child.exit_description())
        self.exit_code = 1
        self._stop_event.set()

    def _unlink_segments(self, pid: int | None = None) -> None:
        from .shm import region

        for name in region.list_segments(self.server_id):
            if pid is None or f"-{pid}-" in name:
                try:
                    region.Segment.attach(name).unlink()
                except Exception:  # noqa: BLE001 - already gone is fine
                    pass

    # ------------------------------------------------------------- messages

    def on_messages(self, msgs: list) -> None:
        for msg in msgs:
            if isinstance(msg, messages.Hello):
                child = self.children.get(msg.address)
                if child is not None and not child.hello.done():
                    if msg.protocol != messages.PROTOCOL_VERSION:
                        child.hello.set_exception(ChildError(f"{msg.name}: protocol {msg.protocol}"))
                    else:
                        child.hello.set_result(msg)
            elif isinstance(msg, (messages.Loaded, messages.LoadFailed)):
                fut = self.pending_loads.pop(msg.instance, None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif isinstance(msg, messages.Drained):
                fut = self.drained.get(msg.name)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif isinstance(msg, messages.Stopped):
                fut = self.stopped_msgs.get(msg.name)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif isinstance(msg, messages.Query):
                self.outbox.post(msg.frontend, messages.Answer(
                    msg.qid, error=messages.ErrorInfo(
                        int(Code.UNAVAILABLE),
                        "explicit model load / unload is not allowed if polling is enabled")))
            else:
                log.warning("unexpected message %r", msg)

    def publish(self) -> None:
        entries = [m.entry() for m in self.models.values()]
        entries += [messages.ModelEntry(name, 0, UNAVAILABLE, reason)
                    for name, reason in self.failed_models.items()]
        table = messages.ModelTable(entries, self.server_ready())
        for child in [self.scheduler, *self.frontends]:
            if not child.stopped:
                self.outbox.post(child.boot.address, table)

    def server_ready(self) -> bool:
        if not self.started or self.stopping:
            return False
        if not self.options["strict_readiness"]:
            return True
        return not self.failed_models and all(m.entry().state == READY for m in self.models.values())

    # --------------------------------------------------------------- models

    async def _load_all(self) -> None:
        from . import repository

        sources = repository.scan(
            self.options["model_repository"],
            model_config_name=self.options["model_config_name"],
            strict=self.options["disable_auto_complete_config"])
        wanted = self._wanted_models()
        loads = []
        for src in sources:
            if wanted is not None and src.name not in wanted:
                continue
            if src.error:
                log.error("failed to load '%s': %s", src.name, src.error)
                self.failed_models[src.name] = src.error
                continue
            for version in src.versions:
                mv = ModelVersion(src.name, version, src.model_dir, src.repository)
                self.models[(src.name, version)] = mv
                loads.append(self._load_version(mv, src))
        if wanted:
            for name in sorted(wanted - {s.name for s in sources}):
                self.failed_models[name] = f"model '{name}' not found in any model repository"
                log.error("failed to load '%s': not found in any model repository", name)
        self.publish()
        await asyncio.gather(*loads)

    def _wanted_models(self) -> set[str] | None:
        if self.options["model_control_mode"] != "explicit":
            return None
        names = set(self.options["load_model"])
        return None if "*" in names else names

    async def _load_version(self, mv: ModelVersion, src) -> None:
        from . import modelconfig, repository

        cfg = src.config
        try:
            repository.normalize(cfg)
        except Exception as exc:  # noqa: BLE001 - reported as the model's reason
            return self._fail(mv, str(getattr(exc, "message", exc)))
        first_name, kind, device = instance_plan(mv.name, modelconfig.to_json(cfg))[0]
        first = Instance(first_name, kind, device)
        mv.instances.append(first)
        ok, result = await self._start_instance(
            mv, first, modelconfig.to_json(cfg),
            auto_complete=not self.options["disable_auto_complete_config"])
        if not ok:
            return self._fail(mv, result)
        mv.config = result
        rest = [Instance(n, k, d) for (n, k, d) in instance_plan(mv.name, mv.config)[1:]]
        mv.instances.extend(rest)
        results = await asyncio.gather(*(self._start_instance(mv, inst, mv.config, False) for inst in rest))
        errors = [text for ok, text in results if not ok]
        if errors:
            return self._fail(mv, errors[0])
        mv.state = READY
        mv.load_seconds = time.monotonic() - mv.load_started
        log.info("successfully loaded '%s' version %d (%d instance%s)", mv.name, mv.version,
                 len(mv.instances), "" if len(mv.instances) == 1 else "s")
        if self.started:
            self.publish()

    async def _start_instance(self, mv: ModelVersion, inst: Instance, config: str,
                              auto_complete: bool) -> tuple[bool, str]:
        """Spawn and load one instance: (True, final config JSON) or (False, reason)."""
        self._worker_seq += 1
        child = self._spawn("worker", f"w{self._worker_seq}")
        inst.child = child
        try:
            await asyncio.wait_for(child.hello, HELLO_TIMEOUT_S)
        except (ChildError, asyncio.TimeoutError) as exc:
            return False, f"instance {inst.name}: worker failed to start: {exc}"
        self._send_setup(child)
        fut = asyncio.get_running_loop().create_future()
        self.pending_loads[inst.name] = fut
        self.outbox.post(child.boot.address, messages.Load(
            model=mv.name, version=mv.version, instance=inst.name, kind=inst.kind,
            device_id=inst.device_id, config=config, model_dir=mv.model_dir,
            repository=mv.repository, auto_complete=auto_complete))
        done, _ = await asyncio.wait([fut, child.hello.get_loop().create_task(self._exited(child))],
                                     timeout=LOAD_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if fut.done():
            msg = fut.result()
            if isinstance(msg, messages.Loaded):
                inst.loaded = True
                return True, msg.config
            child.expected_exit = True
            return False, msg.error.message
        self.pending_loads.pop(inst.name, None)
        child.expected_exit = True
        kill(child)
        return False, (f"instance {inst.name}: worker {child.exit_description()} while loading"
                       if done else f"instance {inst.name}: load timed out after {LOAD_TIMEOUT_S:.0f}s")

    async def _exited(self, child: Child) -> None:
        while not child.stopped:
            await asyncio.sleep(0.05)

    def _fail(self, mv: ModelVersion, reason: str) -> None:
        mv.state = UNAVAILABLE
        mv.reason = reason
        log.error("failed to load '%s' version %d: %s", mv.name, mv.version, reason)
        for inst in mv.instances:
            if inst.child is not None and not inst.child.stopped:
                inst.child.expected_exit = True
                self.outbox.post(inst.child.boot.address, messages.Shutdown("load failed"))
        if self.started:
            self.publish()

    def _on_worker_death(self, child: Child) -> None:
        for mv in self.models.values():
            for inst in mv.instances:
                if inst.child is child:
                    return self._restart(mv, inst, child)

    def _restart(self, mv: ModelVersion, inst: Instance, child: Child) -> None:
        was_loaded, inst.loaded = inst.loaded, False
        log.error("model '%s' version %d instance %s (pid %d) died: %s", mv.name, mv.version,
                  inst.name, child.pid, child.exit_description())
        self.publish()
        if mv.state != READY or not was_loaded:
            return
        if not inst.record_crash(time.monotonic()):
            mv.state = UNAVAILABLE
            mv.reason = (f"instance {inst.name} crashed {len(inst.crashes)} times in "
                         f"{RESTART_WINDOW_S:.0f}s (last: {child.exit_description()})")
            log.error("model '%s' is UNAVAILABLE: %s", mv.name, mv.reason)
            self.publish()
            return
        delay = min(0.1 * 2 ** (len(inst.crashes) - 1), 5.0)
        asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self._respawn(mv, inst)))

    async def _respawn(self, mv: ModelVersion, inst: Instance) -> None:
        if self.stopping or mv.state != READY:
            return
        _, result = await self._start_instance(mv, inst, mv.config, False)
        if inst.loaded:
            log.info("restarted instance %s of '%s'", inst.name, mv.name)
        else:
            log.error("restarting instance %s of '%s' failed: %s", inst.name, mv.name, result)
        self.publish()

    # ------------------------------------------------------------- shutdown

    async def shutdown(self) -> None:
        self.stopping = True
        sdnotify.notify("STOPPING=1")
        if hasattr(self, "scheduler"):
            self.publish()  # readiness false at once
            await self._drain_frontends()
            await self._stop([c for c in self.children.values() if c.boot.role == "worker"])
            await self._stop([c for c in self.children.values() if c.boot.role == "scheduler"])
            await self._stop([c for c in self.children.values() if c.boot.role == "frontend"])
        for child in list(self.children.values()):
            kill(child)
        self._unlink_segments()
        self.outbox.close()
        self.inbox.close()
        log.info("tritond stopped")

    async def _drain_frontends(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = float(self.options["exit_timeout_secs"])
        waits = []
        for fe in self.frontends:
            if fe.stopped:
                continue
            self.drained[fe.boot.name] = loop.create_future()
            self.outbox.post(fe.boot.address, messages.Drain(deadline))
            waits.append(self.drained[fe.boot.name])
        if waits:
            done, pending = await asyncio.wait(waits, timeout=deadline + 1.0)
            if pending:
                log.warning("in-flight requests did not finish within --exit-timeout-secs=%s", deadline)

    async def _stop(self, children: list[Child]) -> None:
        if not children:
            return
        for child in children:
            child.expected_exit = True
            self.outbox.post(child.boot.address, messages.Shutdown("server stopping"))
        end = time.monotonic() + STOP_TIMEOUT_S
        while any(not c.stopped for c in children) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        for child in children:
            if not child.stopped:
                log.warning("%s did not stop within %.0fs: killing it", child.boot.name, STOP_TIMEOUT_S)
                kill(child)
                child.process.join(2)

    def _log_model_table(self) -> None:
        rows = [(m.name, str(m.version), m.state + (f": {m.reason}" if m.reason else ""))
                for m in sorted(self.models.values(), key=lambda m: (m.name, m.version))]
        rows += [(n, "-", f"UNAVAILABLE: {r}") for n, r in sorted(self.failed_models.items())]
        if not rows:
            log.info("no models loaded")
            return
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(("Model", "Version", "Status"))]
        line = "+" + "+".join("-" * (x + 2) for x in w) + "+"
        out = [line, "| " + " | ".join(h.ljust(x) for h, x in zip(("Model", "Version", "Status"), w)) + " |", line]
        out += ["| " + " | ".join(c.ljust(x) for c, x in zip(r, w)) + " |" for r in rows]
        out.append(line)
        log.info("\n%s", "\n".join(out))


def run(options: dict) -> int:
    """Run the server until SIGTERM/SIGINT; returns the process exit code."""
    setup_logging("tritond", options["log_verbose"])
    try:
        import uvloop
    except ImportError:
        return asyncio.run(Supervisor(options).run())
    return uvloop.run(Supervisor(options).run())
