"""The worker process: one model instance, one backend, a blocking message loop.

Life cycle (all typed messages, ``tritond.messages``)::

    spawn(Bootstrap) -> Hello -> Setup -> Load -> [warmup] -> Loaded | LoadFailed (then exit 0)
    loop: Execute -> Response per request (to its frontend) + Executed (to the scheduler)
          (a response sender's Responses: when sent, from any thread, workers/streams.py)
          Release -> output slots back to the arena
          CancelRunning -> seen by the running model's is_cancelled() (workers/cancel.py)
    Shutdown -> backend.unload() -> Stopped -> unlink own segments -> exit 0

Each ``recv()`` drains everything waiting; releases are applied before any
execution in that batch of messages, and each Execute's messages are flushed
together (one frame per destination). This module is the process shell; the
backend's load is ``workers/loader.py``, an Execute's run ``workers/runner.py``.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Optional

import msgspec

from tritond import loglevels, messages
from tritond.endpoint import SyncEndpoint
from tritond.errors import Code, TritonError
from tritond.framing import printable
from tritond.namespaces import identifier
from tritond.procutil import Bootstrap, child_start, quiet_gc
from tritond.releases import by_owner
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache

from . import warmup
from .answers import EnsembleAnswers
from .cachelookup import CacheLookup
from .cancel import CancelWatch, install
from .executor import Executor
from .loader import load_backend
from .outputs import OutputWriter
from .python.readiness import ReadinessChannel
from .retire import finish_streams
from .runner import BatchRunner
from .sequence import sequence_io
from .shapes import ModelIO
from .streams import StreamHub

FLUSH_AFTER_S = 0.0005      # batches quicker than this share one flush with the next
STATS_EVERY_S = 0.05        # response statistics of decoupled models: one message per this

INBOX = messages.TO_WORKER
Execute = messages.Execute
_perf_counter = time.perf_counter


class WorkerProc:
    """The process shell around one backend instance (sockets, shm, lifecycle)."""

    def __init__(self, boot: Bootstrap, endpoint: SyncEndpoint, log: logging.Logger) -> None:
        self.boot = boot
        self.ep = endpoint
        self.log = log
        self.setup: Optional[messages.Setup] = None
        self.cache = SegmentCache()
        self.pool: Optional[ArenaPool] = None
        self.writer: Optional[OutputWriter] = None
        self.executor: Optional[Executor] = None
        self.runner: Optional[BatchRunner] = None    # the data path, once a model is loaded
        self.backend = None
        self.readiness: Optional[ReadinessChannel] = None
        self.hub: Optional[StreamHub] = None
        self._stats_at = 0.0
        self.running = True
        self.watch = CancelWatch(endpoint)
        install(self.watch)
        # Responses of an ensemble's final step go to the ensemble's caller (answers.py).
        self.answers = EnsembleAnswers(boot.address, endpoint.post)
        endpoint.on_undelivered = self._undelivered
        self._unreachable: set[str] = set()

    # --------------------------------------------------------------- loop

    def run(self) -> None:
        """Serve until Shutdown or a failed load."""
        while self.running:
            # What a model's is_cancelled() read while it ran comes first; then
            # do not block on the socket, just drain it.
            backlog = self.watch.take()
            try:
                # Spare big segments are given back after a second of idleness,
                # and mappings of frontends' big input segments they unlinked.
                idle_wait = 1.0 if self.cache.has_oneoffs or (
                    self.pool is not None and self.pool.has_spares) else None
                if self.hub is not None and self.hub.stats:
                    idle_wait = STATS_EVERY_S    # response statistics leave even when idle
                batch = self.ep.recv(0 if backlog else idle_wait)
                if not batch and not backlog and idle_wait is not None:
                    if self.pool is not None:
                        self.pool.trim()
                    self.cache.drop_unlinked()
            except msgspec.MsgspecError as exc:
                # The frame is consumed; its sender's error is logged, not fatal.
                self.log.error("undecodable message frame: %s", exc)
                batch = []
            if backlog:
                batch = backlog + batch
            if batch:
                self._handle(batch)
            if self.hub is not None:
                self._streamed()
            self.ep.flush()

    def _streamed(self) -> None:
        """Post what model threads sent meanwhile; response statistics every STATS_EVERY_S."""
        hub = self.hub
        hub.drain()
        if hub.stats:
            now = time.monotonic()
            if now - self._stats_at >= STATS_EVERY_S:
                self._stats_at = now
                self.ep.post(self.setup.scheduler,
                             messages.ResponseStats(self.boot.address, hub.take_stats()))

    def _handle(self, batch: list) -> None:
        # One pass sorts the turn: releases, log levels and cancels take effect at once
        # (slots are free before this turn's executions); Executes and lifecycle
        # messages run next, in their order. Exact types: the inbox decodes no subclasses.
        cancels = []
        runs = []
        last_execute = None
        for msg in batch:
            kind = type(msg)
            if kind is Execute:
                if msg.releases:
                    self._release(msg.releases)
                runs.append(msg)
                last_execute = msg
            elif kind is messages.Release:
                self._release(msg.slots)
            elif kind is messages.Forget:   # unregistered client regions, now unused
                for region, gen in msg.regions:
                    self.cache.forget(region, gen)
            elif kind is messages.LogLevels:
                loglevels.from_message(msg)
            elif kind is messages.CancelRunning:
                cancels.append(msg)      # may arrive together with its Execute
                if self.hub is not None:  # requests answered after execute returned
                    self.hub.cancel(msg.requests, msg.batch_id == messages.ANSWERED)
            else:
                runs.append(msg)
        for msg in runs:
            if not self.running:
                return
            kind = type(msg)
            if kind is Execute:
                # A pipelined Execute may be waiting right behind this one.
                # After a quick batch its answers leave with the next batch's
                # (one frame per peer, fewer syscalls); a slow one answers now.
                # The turn's last Execute always flushes: no clock read for it.
                t0 = 0.0 if msg is last_execute else _perf_counter()
                if self.runner is None:
                    self._reject(msg, "no model is loaded in this worker")
                else:
                    self.runner.run(msg, cancels)
                if msg is last_execute or _perf_counter() - t0 > FLUSH_AFTER_S:
                    self.ep.flush()
            elif kind is messages.Setup:
                self._setup(msg)
            elif kind is messages.Load:
                self._load(msg)
            elif kind is messages.Shutdown:
                self._shutdown(msg)
            elif kind is messages.Unknown:
                self.log.error("a peer could not decode our message: %s", msg.detail)

    # -------------------------------------------------------------- setup

    def _setup(self, setup: messages.Setup) -> None:
        self.setup = setup
        self.pool = ArenaPool(setup.server_id, self.boot.name, setup.options.output_arena_byte_size)
        self.writer = OutputWriter(self.pool, self.cache)
        from .python import bls       # BLS calls of a Python model (started on first use)
        bls.configure(setup, self.boot.name, self.boot.parent)
        from .python import custom_metrics     # a Python model's metrics, for /metrics
        custom_metrics.configure(setup.server_id)

    def _load(self, load: messages.Load) -> None:
        """Instantiate, auto-complete and load the backend; reply Loaded or LoadFailed."""
        try:
            spec, warmed = self._load_backend(load)
        except Exception as exc:  # noqa: BLE001 - every load failure is reported as data
            err = exc if isinstance(exc, TritonError) else TritonError(
                Code.INTERNAL, f"{type(exc).__name__}: {exc}")
            self.log.error("failed to load '%s' instance %s: %s", identifier(load.model),
                           load.instance, err.message)
            self.ep.send_now(self.boot.parent, [messages.LoadFailed(
                load.instance, messages.ErrorInfo(int(err.code), err.message),
                load.model, load.version)])
            self._close()
            self.running = False
            return
        check = getattr(self.backend, "user_ready", None)
        if check is not None:     # the model defines is_ready(): asked on its own thread
            self.readiness = ReadinessChannel(self.boot.address, load.instance, check)
        quiet_gc()
        self.ep.send_now(self.boot.parent, [messages.Loaded(load.instance, spec.config_json,
                                                               load.model, load.version,
                                                               check is not None, warmed)])
        self.log.info("loaded '%s' version %d instance %s", identifier(load.model), load.version,
                      load.instance)

    def _load_backend(self, load: messages.Load):
        if self.setup is None:
            raise TritonError(Code.INTERNAL, "Load received before Setup")
        self.backend, spec = load_backend(load, self.setup.options)
        io = ModelIO(spec)
        self.writer.bf16 = {t.name for t in spec.outputs if t.datatype == "BF16"}
        self.executor = Executor(self.backend, io, self.cache, self.writer,
                                 self.boot.address,
                                 sequence_io(spec, load.model_dir, self.setup.server_id,
                                             self.boot.name),
                                 CacheLookup.open(self.setup.cache, spec, self.cache,
                                                  self.writer, self.boot.address))
        # before Loaded and the hub: an instance serves only once warmed up (Triton's order;
        # a passive instance, never scheduled, is not warmed up either)
        warmed = [] if load.passive else warmup.warm_up(
            self.executor, spec, load.model_dir, identifier(load.model), load.version,
            load.instance, self.log)
        self.hub = StreamHub(self.boot.address, self.writer, io, self.answers.post,
                             self.ep.flush)
        self.hub.pump = self._pump
        self.ep.add_waker(self.hub.fileno(), self.hub.on_wake)
        self.backend.streams = self.watch.streams = self.hub
        self.runner = BatchRunner(self.executor, self.hub, self.watch, self.answers, self.ep.post,
                                  self.setup.scheduler, self.boot.address, self.boot.title,
                                  self.log)
        return spec, warmed

    def _pump(self, timeout: float) -> None:
        """A send blocked on the loop's own thread (inside execute) waits for credits:
        apply Releases and Cancels now, keep everything else for the loop."""
        for msg in self.ep.recv(timeout):
            if isinstance(msg, messages.Release):
                self._release(msg.slots)
            elif isinstance(msg, messages.Execute) and msg.releases:
                self._release(msg.releases)
                msg.releases = []
                self.watch.backlog.append(msg)
            elif type(msg) is messages.CancelRunning:
                self.watch.note(msg)
            else:
                self.watch.backlog.append(msg)

    # ---------------------------------------------------------- data path

    def _reject(self, ex: messages.Execute, why: str) -> None:
        err = messages.ErrorInfo(int(Code.UNAVAILABLE), why)
        self.answers.note(ex.requests)
        for req in ex.requests:
            self.answers.post(req.frontend, messages.Response(req.rid, error=err,
                                                              instance=self.boot.address))
        if self.setup is not None:
            stats = messages.ExecStats(0, 0, 0, 0, 0, 0)
            self.ep.post(self.setup.scheduler, messages.Executed(
                self.boot.address, ex.batch_id, stats, [r.rid for r in ex.requests]))

    def _release(self, slots) -> None:
        if self.writer is None:
            return
        hub = self.hub
        for region, offset in slots:
            if not self.writer.release(region, offset):
                self.log.debug("release of unknown slot (%s, %d)", region, offset)
            elif hub is not None:
                hub.released(region, offset)

    def _undelivered(self, addr: str, msgs: list, exc: OSError) -> None:
        """A peer died before our messages to it left (a BLS caller killed while this
        worker ran its call): drop them, and take back the output slots of its Responses,
        which it can no longer release."""
        if addr not in self._unreachable:      # a stream to it would log every turn
            self._unreachable.add(addr)
            self.log.warning("cannot reach %s (its messages are dropped): %s",
                             printable(addr), exc)
        for msg in msgs:
            if type(msg) is messages.Response and msg.outputs:
                mine = by_owner(msg).get(self.boot.address)
                if mine:
                    self._release(mine)

    # ----------------------------------------------------------- shutdown

    def _shutdown(self, msg: messages.Shutdown) -> None:
        if self.readiness is not None:
            self.readiness.close()
            self.readiness = None
        if self.hub is not None:
            if msg.linger and self.setup is not None:     # retired: unload or reload
                finish_streams(self.hub, self.ep, float(self.setup.options.exit_timeout_secs),
                               self._release, self.cache.forget, self._reject, self.log)
            self.hub.stop_blocking()     # finalize may join threads waiting for credits
        try:
            if self.backend is not None:
                self.backend.unload()
        except Exception as exc:  # noqa: BLE001 - still stop cleanly
            self.log.error("unload failed: %s", exc)
        if self.hub is not None:         # what finalize's joined threads sent
            self.hub.drain()
            self.ep.flush()
        self._close(linger=msg.linger)
        try:
            self.ep.send_now(self.boot.parent, [messages.Stopped(self.boot.name)])
        except OSError as exc:  # the parent may already be gone
            self.log.debug("could not send Stopped: %s", exc)
        self.running = False

    def _close(self, linger: bool = False) -> None:
        """Unlink this worker's segments and unmap everything mapped (``linger``: output
        segments a frontend still holds slots of stay linked; the parent unlinks them)."""
        if self.hub is not None:
            self.hub.close()
            self.hub = None
        if self.executor is not None and self.executor.seq is not None:
            self.executor.seq.close()        # the slots' state segment
        if self.executor is not None and self.executor.lookup is not None:
            self.executor.lookup.close()     # the response cache's mapping
        if self.pool is not None:
            # Outputs a frontend has not released may not be mapped there yet (their
            # Response still on its way): leave them linked; the parent unlinks them soon.
            held = self.writer is not None and self.writer.live_slots
            self.pool.close(unlink=not (linger and held))
        self.cache.close()
        from .python import bls
        bls.close()


def main(boot: Bootstrap) -> None:
    """Worker entry point (``tritond.parent.children.ENTRY['worker']``)."""
    log = child_start(boot)
    endpoint = SyncEndpoint(boot.address, INBOX)
    endpoint.send_now(boot.parent, [messages.Hello("worker", boot.name, os.getpid(), boot.address)])
    proc = WorkerProc(boot, endpoint, log)
    try:
        proc.run()
    finally:
        proc._close()
        endpoint.close()
    sys.exit(0)
