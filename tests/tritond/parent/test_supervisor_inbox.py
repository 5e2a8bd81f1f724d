"""The parent's inbox: a bad message is answered Unknown, its neighbours in the same
frame are still handled.

The supervisor runs in this process (no children): since the channels admit only
the server's own processes (tritond/peers.py), a test process can reach a real
parent's socket only by being that parent.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import msgspec

from tritond import channel, messages
from tritond.endpoint import SyncEndpoint
from tritond.errors import Code
from tritond.options import Options
from tritond.parent.supervisor import Supervisor

GARBAGE = msgspec.Raw(msgspec.msgpack.encode([999, "not a message"]))


def collect(ep: SyncEndpoint, count: int, timeout: float = 10.0) -> list:
    got: list = []
    end = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < end:
        got += ep.recv(0.2)
    return got


def test_parent_answers_unknown_and_handles_the_good_message():
    async def body():
        sup = Supervisor(Options(model_control_mode="none"))
        sup.outbox = channel.AsyncOutbox()
        sup._compose()
        sup.inbox = channel.AsyncInbox(sup.address, messages.TO_PARENT, sup.on_messages,
                                       outbox=sup.outbox)
        await sup.inbox.start()
        me = channel.address("t" + uuid.uuid4().hex[:8], "frontend-9")
        ep = SyncEndpoint(me, messages.TO_FRONTEND)
        try:
            wrong = messages.Request(rid=1, frontend=me, model="simple", version=1, inputs=[])
            good = messages.LoadQuery(qid=7, frontend=me, name="simple")
            ep.send_now(sup.address, [GARBAGE, wrong, good])
            return await asyncio.get_running_loop().run_in_executor(None, collect, ep, 3)
        finally:
            ep.close()
            sup.inbox.close()
            sup.outbox.close()

    got = asyncio.run(body())
    unknown = sorted(m.detail for m in got if type(m) is messages.Unknown)
    assert len(unknown) == 2
    assert unknown[0].startswith("undecodable message")
    assert unknown[1] == "unexpected Request message for the parent process"
    (answer,) = [m for m in got if type(m) is messages.Answer]
    # --model-control-mode=none: the query is answered, refused
    assert answer.qid == 7 and answer.error.code == Code.UNAVAILABLE
    assert "polling" in answer.error.message
