"""The parent's client shm registry over real channels: every frontend gets the table, and
the asking frontend's Answer comes only once all of them applied it."""
from __future__ import annotations

import asyncio
import time
import uuid

from tritond import channel, messages
from tritond.endpoint import SyncEndpoint
from tritond.errors import Code
from tritond.options import Options
from tritond.parent.children import Child
from tritond.parent.supervisor import Supervisor
from tritond.procutil import Bootstrap


def collect(ep: SyncEndpoint, count: int, timeout: float = 5.0) -> list:
    got: list = []
    end = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < end:
        got += ep.recv(0.05)
    return got


def test_register_is_answered_after_every_frontend_applied_the_table():
    async def body():
        sup = Supervisor(Options())
        sup.outbox = channel.AsyncOutbox()
        sup._compose()
        sup.inbox = channel.AsyncInbox(sup.address, messages.TO_PARENT, sup.on_messages,
                                       outbox=sup.outbox)
        await sup.inbox.start()
        sid = "t" + uuid.uuid4().hex[:8]
        addrs = [channel.address(sid, f"frontend-{n}") for n in range(2)]
        eps = [SyncEndpoint(a, messages.TO_FRONTEND) for a in addrs]
        sup.frontends = [Child(Bootstrap("frontend", f"frontend-{n}", a, sup.address, sid, 0),
                               None, None) for n, a in enumerate(addrs)]
        run = asyncio.get_running_loop().run_in_executor
        try:
            reg = messages.ShmRegion("r", "system", "/key", 0, 64, -1, 0)
            eps[0].send_now(sup.address, [messages.ShmRegisterQuery(1, addrs[0], reg)])
            tables = [await run(None, collect, ep, 1) for ep in eps]
            assert all(type(t[0]) is messages.ShmTable for t in tables)
            assert tables[0][0].regions[0].name == "r" and tables[0][0].regions[0].gen > 0
            seq = tables[0][0].seq
            eps[0].send_now(sup.address, [messages.ShmApplied(addrs[0], seq)])
            assert await run(None, collect, eps[0], 1, 0.3) == []    # frontend 1 has not
            eps[1].send_now(sup.address, [messages.ShmApplied(addrs[1], seq)])
            (answer,) = await run(None, collect, eps[0], 1)
            assert answer == messages.Answer(1)
            # The same name again: ALREADY_EXISTS at once, no new table.
            eps[1].send_now(sup.address, [messages.ShmRegisterQuery(2, addrs[1], reg)])
            (answer,) = await run(None, collect, eps[1], 1)
            assert answer.qid == 2 and answer.error.code == Code.ALREADY_EXISTS
            assert await run(None, collect, eps[0], 1, 0.2) == []
        finally:
            for ep in eps:
                ep.close()
            sup.inbox.close()
            sup.outbox.close()

    asyncio.run(body())


def _live_timers(sup: Supervisor) -> int:
    """The registry's apply timers still scheduled on the running loop (not cancelled)."""
    loop = asyncio.get_running_loop()
    return sum(1 for h in loop._scheduled       # noqa: SLF001 - the loop's own timer heap
               if not h.cancelled() and getattr(h._callback, "__self__", None) is sup.client_shm)


def test_an_answered_query_leaves_no_apply_timer_behind():
    """Each query arms a 10 s timer for frontends that never apply its table; answered, the
    timer goes too (register/unregister churn kept thousands of them alive)."""
    async def body():
        sup = Supervisor(Options())
        sup.outbox = channel.AsyncOutbox()
        sup._compose()
        sup.inbox = channel.AsyncInbox(sup.address, messages.TO_PARENT, sup.on_messages,
                                       outbox=sup.outbox)
        await sup.inbox.start()
        sid = "t" + uuid.uuid4().hex[:8]
        addr = channel.address(sid, "frontend-0")
        ep = SyncEndpoint(addr, messages.TO_FRONTEND)
        sup.frontends = [Child(Bootstrap("frontend", "frontend-0", addr, sup.address, sid, 0),
                               None, None)]
        run = asyncio.get_running_loop().run_in_executor
        try:
            reg = messages.ShmRegion("r", "system", "/key", 0, 64, -1, 0)
            for qid in range(20):
                query = (messages.ShmRegisterQuery(qid, addr, reg) if qid % 2 == 0 else
                         messages.ShmUnregisterQuery(qid, addr, "system", "r"))
                ep.send_now(sup.address, [query])
                (table,) = await run(None, collect, ep, 1)
                assert _live_timers(sup) == 1               # armed while it waits
                ep.send_now(sup.address, [messages.ShmApplied(addr, table.seq)])
                (answer,) = await run(None, collect, ep, 1)
                assert answer == messages.Answer(qid)
                assert _live_timers(sup) == 0
        finally:
            ep.close()
            sup.inbox.close()
            sup.outbox.close()

    asyncio.run(body())
