"""SchedulerProc: the thin process shell around :class:`SchedulerCore`.

One event loop (uvloop when installed). Each read of the inbox delivers every
message that arrived; the shell feeds them all to the core, calls ``step``
once, posts every output (AsyncOutbox writes one frame per destination per
loop turn) and re-arms a single alarm for ``next_deadline_ns()``. The clock is
``time.monotonic_ns()``, the same one the frontend stamps ``arrival_ns`` with.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time

import msgspec

from tritond import loglevels, messages

from tritond.channel import AsyncInbox, AsyncOutbox, printable
from tritond.errors import TritonError
from tritond.departures import live_workers
from tritond.framing import BLS_SUFFIX
from tritond.options import Options
from tritond.procutil import Bootstrap, child_start, quiet_gc

from . import wire
from .alarm import Alarm
from .core import Dispatch, Notify, SchedulerCore
from .statsqueries import StatsQueries
from .userready import UserReadiness
from .summary import quantiles_of
from .ratelimit import RateLimiter, parse_overrides

_monotonic_ns = time.monotonic_ns
_VERBOSE1 = loglevels.verbose(1)
RequestView = wire.RequestView


class SchedulerProc:
    """Owns the sockets, the alarm and the core; never blocks."""

    def __init__(self, boot: Bootstrap, log) -> None:
        self.boot = boot
        self.log = log
        self.core = SchedulerCore(epoch_offset_ns=time.time_ns() - time.monotonic_ns(),
                                  address=boot.address)
        self.core.retirement.parent = boot.parent   # Drained notices (drain.py)
        self.options = Options()
        self._done: asyncio.Future | None = None
        self._outbox: AsyncOutbox | None = None
        self._alarm: Alarm | None = None
        self._queries = StatsQueries()   # answered once the batches they wait for are in
        self._workers: set[str] = set()   # live workers of the last table (_tell_bls_callers)
        self._query_timer: asyncio.TimerHandle | None = None
        self._ready = UserReadiness(boot.address)    # models' own is_ready() (userready.py)
        self._ready_timer: asyncio.TimerHandle | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._outbox = AsyncOutbox()
        self._outbox.on_link_error = self._link_error
        self._alarm = Alarm(loop, self._tick)
        inbox = AsyncInbox(self.boot.address, wire.TO_SCHEDULER, self.handle,
                           outbox=self._outbox)
        await inbox.start()
        self._outbox.post(self.boot.parent, messages.Hello(
            role="scheduler", name=self.boot.name, pid=os.getpid(), address=self.boot.address))
        code = await self._done
        inbox.close()
        self._alarm.close()
        await self._flush()
        self._outbox.close()
        return code

    # --------------------------------------------------------------- inbox

    def handle(self, msgs: list) -> None:
        """Everything that arrived in one read: apply all, then step once."""
        now = _monotonic_ns()
        core = self.core
        out: list = []
        for msg in msgs:
            try:
                kind = type(msg)
                if kind is RequestView:
                    rejected = core.table.named(msg) or core.add(msg, now)
                    if rejected:
                        out.extend(rejected)
                elif kind is messages.Executed:
                    out.extend(core.executed(msg, now))
                elif kind is messages.Cancel:
                    if self.log.isEnabledFor(_VERBOSE1):    # Triton logs its cancels at 1
                        self.log.log(_VERBOSE1, "cancel of request %d of %s", msg.rid,
                                     printable(msg.frontend))
                    out.extend(core.cancel(msg.frontend, msg.rid, now))
                elif kind is messages.Release:
                    out.extend(core.release(msg))
                elif kind is messages.Response:     # a step of an ensemble
                    out.extend(core.response(msg, now))
                else:
                    out.extend(self._control(msg))
            except Exception:  # noqa: BLE001 - one bad message must not stop the scheduler
                self.log.exception("failed to handle %s", type(msg).__name__)
        out.extend(core.step(now))
        self._post(core.settle(out, now))
        self._alarm.set(core.next_deadline_ns())
        if self._queries:
            self._answer_queries(now)

    def _control(self, msg) -> list:
        """Rare messages: table, queries, lifecycle."""
        kind = type(msg)
        if kind is messages.ModelTable:
            out = self.core.set_models(msg)
            self._tell_bls_callers(msg)
            return out
        if kind is messages.ResponseStats:       # decoupled models' responses
            self.core.responses_sent(msg)
            return []
        if kind is messages.UserReadyQuery or kind is messages.UserReadyReply:
            self._user_ready(msg)
        elif kind is messages.StatsQuery:
            self._queries.add(msg, self.core.table.instances, _monotonic_ns(),
                             self.core.ensembles)
        elif kind is messages.Setup:
            self.options = msg.options
            self.core.pipeline = msg.options.instance_pipelining
            self.core.summary_quantiles = quantiles_of(msg.options.metrics_config)
            self.core.cache_on = bool(msg.options.cache_config)
            if msg.options.rate_limit == "execution_count":
                self.core.limiter = RateLimiter(parse_overrides(msg.options.rate_limit_resource))
        elif kind is messages.Shutdown:
            self.log.info("shutting down%s", f": {msg.reason}" if msg.reason else "")
            self._outbox.post(self.boot.parent, messages.Stopped(self.boot.name))
            if not self._done.done():
                self._done.set_result(0)
        elif kind is messages.LogLevels:
            loglevels.from_message(msg)
            if msg.qid:      # the parent's: pass it on to every worker, ahead of any Execute
                plain = msgspec.structs.replace(msg, qid=0, frontend="")
                for address in self.core.worker_addresses():
                    self._outbox.post(address, plain)
                self._outbox.post(msg.frontend, messages.Drained(f"loglevels:{msg.qid}"))
        elif kind is messages.Unknown:
            self.log.warning("a peer could not decode our frame: %s", msg.detail)
        return []

    def _answer_queries(self, now_ns: int) -> None:
        """Statistics are answered after everything else that arrived in the same read, and
        once the batches executing when they were asked are reported (statsqueries.py)."""
        for query in self._queries.due(self.core.table.instances, now_ns,
                                       self.core.ensembles):
            self._outbox.post(query.frontend, self._answer(query))
        self._arm_queries()

    def _arm_queries(self) -> None:
        """A timer for the oldest waiting query's bound (a loop timer may fire a little
        early: re-armed until the bound has passed)."""
        if self._query_timer is not None:
            self._query_timer.cancel()
            self._query_timer = None
        deadline = self._queries.next_deadline_ns()
        if deadline is not None:
            delay = max(deadline - _monotonic_ns(), 0) / 1e9 + 0.001
            self._query_timer = asyncio.get_running_loop().call_later(
                delay, lambda: self._answer_queries(_monotonic_ns()))

    def _user_ready(self, msg) -> None:
        """A model-ready query of a model defining is_ready(), or an instance's reply."""
        if type(msg) is messages.UserReadyQuery:
            model = self.core.table.models.get((msg.name, msg.version))
            live = [i.address for i in model.router.instances.values()
                    if not i.gone] if model is not None and model.ready else []
            posts = self._ready.ask(msg, live, _monotonic_ns())
        else:
            posts = self._ready.reply(msg)
        self._ready_posts(posts)

    def _ready_posts(self, posts: list) -> None:
        for address, out in posts:
            self._outbox.post(address, out)
        if self._ready_timer is not None:
            self._ready_timer.cancel()
            self._ready_timer = None
        deadline = self._ready.next_deadline_ns()
        if deadline is not None:
            delay = max(deadline - _monotonic_ns(), 0) / 1e9 + 0.001
            self._ready_timer = asyncio.get_running_loop().call_later(
                delay, lambda: self._ready_posts(self._ready.due(_monotonic_ns())))

    def _answer(self, query: messages.StatsQuery) -> messages.StatsAnswer:
        try:
            stats = self.core.stats_json(query.name, query.version, totals=query.metrics)
        except TritonError as exc:
            return messages.StatsAnswer(query.qid, error=messages.ErrorInfo(int(exc.code),
                                                                             exc.message))
        if query.metrics:
            return messages.StatsAnswer(query.qid, stats,
                                        metrics=self.core.metrics(_monotonic_ns()))
        return messages.StatsAnswer(query.qid, stats)

    # -------------------------------------------------------------- outbox

    def _tick(self) -> None:
        """The alarm fired: a delay window closed or a timeout is due."""
        core = self.core
        now = _monotonic_ns()
        self._post(core.settle(core.step(now), now))
        self._alarm.set(core.next_deadline_ns())

    def _tell_bls_callers(self, table: messages.ModelTable) -> None:
        """Forward the table to every BLS channel seen whose worker lives: a decoupled callee
        that died after its Executed fails the calls it was still answering there, as a
        frontend fails its own (only frontends hear from the parent)."""
        live = live_workers(table)
        gone, self._workers = self._workers - live, live
        callers = self.core.bls_callers
        if not (gone and callers):       # only a worker that left can fail a call
            return
        for caller in list(callers):
            if caller[:-len(BLS_SUFFIX)] in live:       # the channel's worker
                self._outbox.post(caller, table)
            else:
                callers.discard(caller)

    def _post(self, out: list) -> None:
        post = self._outbox.post
        for item in out:
            kind = type(item)
            if kind is Dispatch:
                post(item.address, item.execute)
            elif kind is Notify:
                post(item.address, item.message)
            else:
                post(item.frontend, item.response)

    def _link_error(self, addr: str, exc: Exception) -> None:
        # A dead worker's Execute is lost here; its requests fail when the
        # parent publishes a ModelTable without that instance.
        self.log.warning("cannot reach %s: %s", printable(addr), exc)

    async def _flush(self) -> None:
        """Let the outbox write what is queued (Stopped, last replies) before exiting."""
        for _ in range(100):
            await asyncio.sleep(0.001)
            if not self._outbox._queued and all(  # noqa: SLF001 - our own outbox
                    not link.pending and (link.transport is None
                                         or not link.transport.get_write_buffer_size())
                    for link in self._outbox._links.values()):
                return


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def main(boot: Bootstrap) -> None:
    """Process entry point (multiprocessing spawn target)."""
    log = child_start(boot)
    # Start-up objects (modules, tables) never die: keep them out of the cyclic
    # GC's generations so collections only scan per-request garbage.
    quiet_gc()
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        code = loop.run_until_complete(SchedulerProc(boot, log).run())
    finally:
        loop.close()
    sys.exit(code)
