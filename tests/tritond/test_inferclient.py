"""InferClient: a pure object over a real arena and real shm; the test is its inbox and its peers.

``post`` is the seam the owner process gives it (its outbox); here it records
what would be sent, in order. Responses are fed as the owner's inbox would.
"""
from __future__ import annotations

import asyncio
import queue
import uuid

import numpy as np
import pytest

from tritond import messages
from tritond.frontend.types import InputTensor
from tritond.inferclient import InferClient
from tritond.responsestream import ResponseStream
from tritond.shm import lengths
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache

SCHED, ME, WORKER = "sched", "me", "w0"


class World:
    """An InferClient with its input arena, plus a worker-owned output arena."""

    def __init__(self, linger_s=0.005, arena_size=1 << 20):
        self.sid = "t" + uuid.uuid4().hex[:10]
        self.sent: list[tuple[str, object]] = []
        self.inputs = ArenaPool(self.sid, "in", 1 << 20)
        self.outputs = ArenaPool(self.sid, "out", arena_size)
        self.cache = SegmentCache(writable=False)
        self.client = InferClient(lambda addr, msg: self.sent.append((addr, msg)), ME, SCHED,
                                  self.inputs, self.cache, linger_s=linger_s)

    def request(self) -> tuple[messages.Request, list]:
        """A Request with two staged INT32 [1,16] inputs, and its slots."""
        slots: list = []
        refs = [self.client.stage(name, "INT32", [1, 16], np.full(16, i, np.int32).tobytes(),
                                  64, slots) for i, name in enumerate(("INPUT0", "INPUT1"))]
        return messages.Request(0, "", "simple", 1, refs, batch=1), slots

    def output(self, value: int, nbytes: int = 64) -> messages.TensorRef:
        slot = self.outputs.alloc(nbytes)
        slot.view[:] = np.full(nbytes // 4, value, np.int32).tobytes()
        return slot.ref("OUTPUT0", "INT32", [1, nbytes // 4])

    def response(self, rid, value=None, final=True, error=None) -> messages.Response:
        outs = [self.output(value)] if value is not None else []
        return messages.Response(rid, error, outs, {}, WORKER, 1, final)

    def live_inputs(self) -> int:
        return self.inputs.stats()["live"]

    def kinds(self) -> list[str]:
        return [type(m).__name__ for _, m in self.sent]

    def releases(self) -> list[tuple[str, int]]:
        return [s for _, m in self.sent if type(m) is messages.Release for s in m.slots]

    def close(self):
        self.cache.close()
        self.inputs.close()
        self.outputs.close()


@pytest.fixture
def world():
    w = World()
    yield w
    w.close()


def value_of(w: World, resp: messages.Response) -> int:
    ref = resp.outputs[0]
    return int(np.frombuffer(w.cache.buffer(ref.region, ref.offset, ref.nbytes), np.int32)[0])


def test_stage_copies_once_and_send_fills_rid_and_address(world):
    req, slots = world.request()
    assert world.live_inputs() == 2 and len(slots) == 2
    view = world.cache.buffer(req.inputs[1].region, req.inputs[1].offset, 64)
    assert np.frombuffer(view, np.int32).tolist() == [1] * 16
    stream = world.client.stream(req, slots, callback=lambda r: None)
    assert (req.rid, req.frontend, stream.rid) == (1, ME, 1)
    assert world.sent == [(SCHED, req)]
    req2, slots2 = world.request()
    world.client.stream(req2, slots2, callback=lambda r: None)
    assert req2.rid == 2


def test_upstream_refs_pass_as_they_are(world):
    """A TensorRef that already lives in shm (client region, an upstream model's output)
    is sent unchanged and never freed by the client: only staged slots are its own."""
    upstream = world.output(4)                  # say, a previous step's output
    slots: list = []
    staged = world.client.stage("INPUT1", "INT32", [1, 16], bytes(64), 64, slots)
    req = messages.Request(0, "", "simple", 1, [upstream, staged], batch=1)
    world.client.stream(req, slots, callback=lambda r: None)
    assert world.sent[-1][1].inputs[0] is upstream and world.live_inputs() == 1
    world.client.on_response(world.response(req.rid))
    assert world.live_inputs() == 0 and world.outputs.stats()["live"] == 1


def test_n_responses_in_order_inputs_freed_only_at_final(world):
    async def body():
        req, slots = world.request()
        stream = world.client.stream(req, slots)
        got = []

        async def read():
            async for resp in stream:
                got.append((value_of(world, resp), resp.final))
                world.client.releaser(resp)()

        reader = asyncio.create_task(read())
        for i in range(3):
            world.client.on_response(world.response(req.rid, 10 + i, final=False))
            await asyncio.sleep(0)
            assert world.live_inputs() == 2          # a worker may still read them
        world.client.on_response(world.response(req.rid, 13))
        await asyncio.wait_for(reader, 5)
        assert got == [(10, False), (11, False), (12, False), (13, True)]
        assert world.live_inputs() == 0 and world.client.pending == {}
        assert world.client.in_flight == 0
        await asyncio.sleep(0.02)                    # the linger timer sends the releases
        assert len(world.releases()) == 4
        # Non-final ones straight to their worker (a streaming model waits for them),
        # the final one through the scheduler.
        assert [(a, type(m).__name__, len(m.slots)) for a, m in world.sent[1:]] == [
            (WORKER, "Release", 3), (SCHED, "Release", 1)]
    asyncio.run(body())


def test_responses_that_came_before_the_reader_are_kept(world):
    async def body():
        req, slots = world.request()
        stream = world.client.stream(req, slots)
        world.client.on_response(world.response(req.rid, 1, final=False))
        world.client.on_response(world.response(req.rid, 2))
        assert [value_of(world, r) async for r in stream] == [1, 2]
        assert [r async for r in stream] == []       # ended: stays ended
    asyncio.run(body())


def test_unary_future_gets_the_final_response_only(world):
    async def body():
        req, slots = world.request()
        fut = world.client.submit(req, slots)
        early = world.response(req.rid, 5, final=False)
        world.client.on_response(early)
        assert not fut.done() and world.live_inputs() == 2
        world.client.on_response(world.response(req.rid, 6))
        resp = await fut
        assert value_of(world, resp) == 6 and world.live_inputs() == 0
        world.client.flush_releases()                # the non-final one nobody asked for
        assert world.releases() == [(early.outputs[0].region, early.outputs[0].offset)]
    asyncio.run(body())


def test_error_response(world):
    async def body():
        err = messages.ErrorInfo(14, "queue full")
        req, slots = world.request()
        fut = world.client.submit(req, slots)
        world.client.on_response(world.response(req.rid, error=err))
        assert (await fut).error == err and world.live_inputs() == 0
        req, slots = world.request()
        stream = world.client.stream(req, slots)
        world.client.on_response(world.response(req.rid, 1, final=False))
        world.client.on_response(world.response(req.rid, error=err))
        got = [(r.error, r.final) async for r in stream]
        assert got == [(None, False), (err, True)] and world.live_inputs() == 0
    asyncio.run(body())


def test_cancel_stream_before_the_first_response(world):
    async def body():
        req, slots = world.request()
        stream = world.client.stream(req, slots)
        stream.cancel()
        assert world.sent[-1] == (SCHED, messages.Cancel(ME, req.rid))
        assert world.live_inputs() == 2              # the worker may still read them
        late = world.response(req.rid, 1, final=False)
        world.client.on_response(late)
        world.client.on_response(world.response(req.rid, 2))
        assert [r async for r in stream] == []
        assert world.live_inputs() == 0 and world.client.pending == {}
        world.client.flush_releases()
        assert len(world.releases()) == 2             # nobody reads them: straight back
        stream.cancel()                               # idempotent: no second Cancel
        assert world.kinds().count("Cancel") == 1
    asyncio.run(body())


def test_cancel_stream_after_the_first_response(world):
    async def body():
        req, slots = world.request()
        stream = world.client.stream(req, slots)
        world.client.on_response(world.response(req.rid, 1, final=False))
        world.client.on_response(world.response(req.rid, 2, final=False))
        first = await stream.__anext__()
        assert value_of(world, first) == 1
        stream.cancel()                   # the second, unread, is released with the rest
        # Its worker is known (it answered): the cancel also goes there directly.
        assert world.sent[1:] == [(SCHED, messages.Cancel(ME, req.rid)),
                                  (WORKER, messages.CancelRunning(-1, [(ME, req.rid)]))]
        world.client.on_response(world.response(req.rid, 3))
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        world.client.releaser(first)()
        world.client.flush_releases()
        assert len(world.releases()) == 3 and world.live_inputs() == 0
        assert world.client.in_flight == 0
    asyncio.run(body())


def test_cancel_after_the_final_response_sends_nothing(world):
    async def body():
        req, slots = world.request()
        fut = world.client.submit(req, slots)
        resp = world.response(req.rid, 7)
        world.client.on_response(resp)     # answered in the loop turn the caller gave up in
        assert fut.done()
        world.client.cancel(req.rid, fut)
        assert "Cancel" not in world.kinds()
        world.client.flush_releases()
        assert world.releases() == [(resp.outputs[0].region, resp.outputs[0].offset)]
    asyncio.run(body())


def test_cancel_unary_then_late_answer_is_released(world):
    async def body():
        req, slots = world.request()
        fut = world.client.submit(req, slots)
        fut.cancel()
        world.client.cancel(req.rid, fut)
        assert world.sent[-1][1] == messages.Cancel(ME, req.rid)
        resp = world.response(req.rid, 1)
        world.client.on_response(resp)
        world.client.flush_releases()
        assert world.releases() == [(resp.outputs[0].region, resp.outputs[0].offset)]
        assert world.live_inputs() == 0
    asyncio.run(body())


def test_releases_ride_on_the_next_request(world):
    async def body():
        req, slots = world.request()
        fut = world.client.submit(req, slots)
        world.client.on_response(world.response(req.rid, 1))
        resp = await fut
        release = world.client.releaser(resp)
        assert world.client.in_flight == 1
        release()
        assert world.client.in_flight == 0 and world.kinds() == ["Request"]   # held
        req2, slots2 = world.request()
        world.client.submit(req2, slots2)
        # One frame to the scheduler: the Release first, then the new Request.
        assert world.kinds() == ["Request", "Release", "Request"]
        assert world.sent[1] == (SCHED, messages.Release(WORKER, [
            (resp.outputs[0].region, resp.outputs[0].offset)]))
        await asyncio.sleep(0.02)
        assert world.kinds() == ["Request", "Release", "Request"]   # timer was cancelled
    asyncio.run(body())


def test_with_post_many_releases_and_request_are_one_group(world):
    """Given the outbox's post_many, held Releases and the next Request are handed over
    together (one frame even when nothing else is queued), Releases first."""
    groups: list = []
    world.client.post_many = lambda addr, msgs: groups.append((addr, list(msgs)))

    async def body():
        req, slots = world.request()
        fut = world.client.submit(req, slots)            # nothing held: a plain post
        world.client.on_response(world.response(req.rid, 1))
        resp = await fut
        world.client.releaser(resp)()
        req2, slots2 = world.request()
        world.client.submit(req2, slots2)
        assert world.kinds() == ["Request"] and len(groups) == 1
        addr, msgs = groups[0]
        assert addr == SCHED and [type(m).__name__ for m in msgs] == ["Release", "Request"]
        assert msgs[0] == messages.Release(WORKER, [(resp.outputs[0].region,
                                                     resp.outputs[0].offset)])
        assert msgs[1] is req2
        await asyncio.sleep(0.02)
        assert len(groups) == 1 and world.kinds() == ["Request"]   # timer was cancelled
    asyncio.run(body())


def test_big_outputs_go_back_at_once_and_are_unmapped():
    w = World(arena_size=4096)
    try:
        async def body():
            req, slots = w.request()
            fut = w.client.submit(req, slots)
            w.client.on_response(w.response(req.rid, 3))   # first output: in the arena
            resp = await fut
            w.client.releaser(resp)()
            assert "Release" not in w.kinds()
            big = messages.Response(9, outputs=[w.output(1, 1 << 16)], instance=WORKER)
            assert "-x" in big.outputs[0].region            # a one-off segment
            w.client.on_response(big)                        # unknown rid: released anyway
            assert w.kinds()[-1] == "Release" and big.outputs[0].region not in w.cache
            assert len(w.releases()) == 2                    # the held small one went too
        asyncio.run(body())
    finally:
        w.close()


def test_without_an_event_loop():
    """A worker (BLS) has no event loop: a callback and a blocking queue, explicit flushes."""
    w = World(linger_s=None)
    try:
        got: queue.SimpleQueue = queue.SimpleQueue()
        req, slots = w.request()
        stream = w.client.stream(req, slots, callback=got.put)
        assert isinstance(stream, ResponseStream)
        w.client.on_response(w.response(req.rid, 1, final=False))
        w.client.on_response(w.response(req.rid, 2))
        seen = []
        while True:
            resp = got.get(timeout=1)
            seen.append((value_of(w, resp), resp.final))
            w.client.releaser(resp)()
            if resp.final:
                break
        assert seen == [(1, False), (2, True)] and w.live_inputs() == 0
        assert "Release" not in w.kinds()          # no timer without a loop: the owner flushes
        w.client.flush_releases()
        assert len(w.releases()) == 2 and w.client.in_flight == 0
        assert w.client.loop is None
    finally:
        w.close()


def test_marker_names_the_worker_for_cancels_and_crashes(world):
    async def body():
        req, slots = world.request()
        stream = world.client.stream(req, slots)
        world.client.on_response(messages.Response(req.rid, instance=WORKER, final=False,
                                                   empty=True))
        assert world.client.answering == {req.rid: WORKER}
        assert not stream._items                      # the marker is not a response
        world.client.fail_gone({"w1"}, {WORKER: "instance 'm_0' (pid 9) killed by signal"})
        got = [r async for r in stream]
        assert [r.final for r in got] == [True]
        assert got[0].error.message == ("instance 'm_0' (pid 9) killed by signal while "
                                        "sending the responses of the request")
        assert world.live_inputs() == 0 and world.client.answering == {}
        req, slots = world.request()                  # cancelled before its marker came
        stream = world.client.stream(req, slots)
        stream.cancel()
        world.client.on_response(messages.Response(req.rid, instance=WORKER, final=False,
                                                   empty=True))
        assert world.sent[-1] == (WORKER, messages.CancelRunning(-1, [(ME, req.rid)]))
    asyncio.run(body())


def test_a_bytes_length_table_is_staged_after_the_payload(world):
    """The payload keeps its own size in the ref; the table lies 4-byte aligned behind it
    in the same slot, so one free gives both back."""
    items = [b"e%d" % i for i in range(40)] + [b"odd"]     # 4*41 + 117 bytes: not aligned
    payload = b"".join(len(b).to_bytes(4, "little") + b for b in items)
    table = lengths.table([len(b) for b in items])
    slots: list = []
    ref = world.client.stage("IN", "BYTES", [41], memoryview(payload), len(payload), slots,
                             table)
    assert ref.nbytes == len(payload) and ref.lengths_at == (len(payload) + 3) & ~3
    assert ref.lengths_at > len(payload) and len(slots) == 1
    reader = SegmentCache(writable=False)
    try:
        whole = reader.buffer(ref.region, ref.offset, ref.lengths_at + len(table))
        assert bytes(whole[:ref.nbytes]) == payload and bytes(whole[ref.lengths_at:]) == table
        assert list(reader.array(ref)) == items
    finally:
        reader.close()
    world.client.free(slots)
    assert world.live_inputs() == 0


def test_a_final_answer_from_elsewhere_tells_the_streaming_worker_to_drop_it(world):
    """A refused reschedule (iterative sequences) is answered by the scheduler: the worker
    that streamed the request's earlier responses forgets its stream; a dead worker is
    told nothing, nor is the worker that answers the final response itself."""
    async def body():
        req, slots = world.request()
        stream = world.client.stream(req, slots)
        world.client.on_response(world.response(req.rid, 1, final=False))
        assert world.client.answering == {req.rid: WORKER}
        world.client.on_response(messages.Response(req.rid, messages.ErrorInfo(3, "no START")))
        assert world.sent[-1] == (WORKER, messages.CancelRunning(messages.ANSWERED,
                                                                 [(ME, req.rid)]))
        assert [r.final for r in [r async for r in stream]] == [False, True]
        for last in (world.response, None):
            req, slots = world.request()
            world.client.stream(req, slots)
            world.client.on_response(world.response(req.rid, 2, final=False))
            sent = len(world.sent)
            if last is None:
                world.client.fail_gone(set(), {})
            else:
                world.client.on_response(last(req.rid, 3))
            assert "CancelRunning" not in world.kinds()[sent:]
            assert world.client.answering == {}
    asyncio.run(body())


def test_batched_requests_go_through_post_batched(world):
    """A sequence step (``batched``) is handed to post_batched, with held Releases to
    post_many(batched=True); other requests keep the plain post."""
    batched: list = []
    groups: list = []
    world.client.post_batched = lambda addr, msg: batched.append((addr, msg))
    world.client.post_many = lambda addr, msgs, batched=False: groups.append((list(msgs), batched))

    async def body():
        req, slots = world.request()
        fut = world.client.submit(req, slots, batched=True)
        assert batched == [(SCHED, req)] and world.kinds() == []
        world.client.on_response(world.response(req.rid, 1))
        world.client.releaser(await fut)()
        req2, slots2 = world.request()
        world.client.submit(req2, slots2, batched=True)
        assert [([type(m).__name__ for m in msgs], b) for msgs, b in groups] == [
            (["Release", "Request"], True)]
        req3, slots3 = world.request()
        world.client.stream(req3, slots3, batched=True)
        assert batched[-1] == (SCHED, req3)
        req4, slots4 = world.request()
        world.client.submit(req4, slots4)
        assert world.kinds() == ["Request"] and world.sent[0][1] is req4
    asyncio.run(body())


def test_inputs_staged_together_keep_a_bytes_length_table(world):
    """Small inputs of one request share a slot; a BYTES one keeps its table behind its
    payload inside its own aligned span, and the next input starts after that."""
    items = [b"e%d" % i for i in range(40)] + [b"odd"]
    payload = b"".join(len(b).to_bytes(4, "little") + b for b in items)
    table = lengths.table([len(b) for b in items])
    words = InputTensor("IN", "BYTES", [41], memoryview(payload), lengths=table)
    ints = InputTensor("N", "INT32", [1, 16], np.arange(16, dtype=np.int32).tobytes())
    slots: list = []
    s, n = world.client.stage_together([words, ints], [len(payload), 64], slots)
    assert len(slots) == 1 and s.lengths_at == (len(payload) + 3) & ~3 and n.lengths_at == 0
    assert n.offset - s.offset >= s.lengths_at + len(table)
    reader = SegmentCache(writable=False)
    try:
        assert list(reader.array(s)) == items
        assert bytes(reader.buffer(s.region, s.offset + s.lengths_at, len(table))) == table
        assert reader.array(n).tolist() == [list(range(16))]
    finally:
        reader.close()
    world.client.free(slots)
    assert world.live_inputs() == 0
