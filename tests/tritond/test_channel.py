"""Framing and the sync/async endpoints of tritond.channel."""
import asyncio
import os

import pytest
from hypothesis import given, strategies as st

from tritond import channel, messages
from tritond.endpoint import SyncEndpoint


def frames_of(payloads):
    return b"".join(channel.frame(p) for p in payloads)


@given(st.lists(st.binary(max_size=300), max_size=8), st.lists(st.integers(1, 200), max_size=20))
def test_frames_survive_any_split(payloads, cuts):
    stream = frames_of(payloads)
    fb, got, pos = channel.FrameBuffer(), [], 0
    for cut in cuts:
        got += [bytes(p) for p in fb.feed(stream[pos:pos + cut])]
        pos += cut
    got += [bytes(p) for p in fb.feed(stream[pos:])]
    assert got == payloads


def test_oversized_frame_is_refused():
    with pytest.raises(ValueError):
        channel.FrameBuffer().feed((channel.MAX_FRAME + 1).to_bytes(4, "little"))


def test_async_outbox_to_sync_endpoint_and_back():
    addr_sync = channel.address(f"t{os.getpid()}", "sync")
    addr_async = channel.address(f"t{os.getpid()}", "async")
    ep = SyncEndpoint(addr_sync, messages.TO_WORKER)

    async def main():
        got = asyncio.get_running_loop().create_future()
        inbox = channel.AsyncInbox(addr_async, messages.TO_PARENT, got.set_result)
        await inbox.start()
        out = channel.AsyncOutbox()
        # several posts in one loop turn travel as one frame
        for i in range(3):
            out.post(addr_sync, messages.Shutdown(str(i)))
        await asyncio.sleep(0.05)
        msgs = await asyncio.get_running_loop().run_in_executor(None, ep.recv, 2.0)
        assert [m.reason for m in msgs] == ["0", "1", "2"]
        ep.send_now(addr_async, [messages.Stopped("w")])
        assert await asyncio.wait_for(got, 2) == [messages.Stopped("w")]
        inbox.close()
        out.close()

    try:
        asyncio.run(main())
    finally:
        ep.close()


def test_a_busy_turn_hands_frames_over_early():
    """A lone message goes at once; frame_limit messages to one peer are written as soon
    as they wait, not at the end of the turn; order is kept throughout."""
    addr = channel.address(f"t{os.getpid()}", "early")
    ep = SyncEndpoint(addr, messages.TO_WORKER)

    async def main():
        out = channel.AsyncOutbox()
        out.frame_limit = 3
        out.post(addr, messages.Shutdown("0"))    # alone in its turn: written at once
        assert addr not in out._queued
        for i in range(1, 4):
            out.post(addr, messages.Shutdown(str(i)))
        assert addr not in out._queued            # 3 waiting: written, not at the turn's end
        out.post(addr, messages.Shutdown("4"))
        assert len(out._queued[addr]) == 1        # goes at the end of the turn
        await asyncio.sleep(0.05)
        msgs = await asyncio.get_running_loop().run_in_executor(None, ep.recv, 2.0)
        assert [m.reason for m in msgs] == ["0", "1", "2", "3", "4"]
        out.close()

    try:
        asyncio.run(main())
    finally:
        ep.close()


def test_post_many_leaves_as_one_frame_at_the_end_of_the_turn():
    """post_many's messages are never written one alone: they wait for the turn's
    frame, together with what else is posted in that turn, in order."""
    addr = channel.address(f"t{os.getpid()}", "many")
    ep = SyncEndpoint(addr, messages.TO_WORKER)

    async def main():
        out = channel.AsyncOutbox()
        written = []
        real = out._write
        out._write = lambda a, data: (written.append(data), real(a, data))
        out.post_many(addr, [messages.Shutdown("0"), messages.Shutdown("1")])
        out.post(addr, messages.Shutdown("2"))
        assert written == [] and len(out._queued[addr]) == 3
        await asyncio.sleep(0.05)
        assert len(written) == 1                                   # one frame for the turn
        msgs = await asyncio.get_running_loop().run_in_executor(None, ep.recv, 2.0)
        assert [m.reason for m in msgs] == ["0", "1", "2"]
        out.close()

    try:
        asyncio.run(main())
    finally:
        ep.close()


def test_batched_messages_ride_the_turns_frame_whole():
    """post_batched: a lone message still goes at once; the rest of the turn is not cut
    at frame_limit (a sequence batcher would dispatch each cut as a batch of its own),
    only at batched_limit; order is kept, plain posts still cut the frame."""
    addr = channel.address(f"t{os.getpid()}", "batched")
    ep = SyncEndpoint(addr, messages.TO_WORKER)

    async def main():
        out = channel.AsyncOutbox()
        out.frame_limit, out.batched_limit = 2, 5
        written = []
        real = out._write
        out._write = lambda a, data: (written.append(data), real(a, data))
        out.post_batched(addr, messages.Shutdown("0"))      # alone in its turn: at once
        assert len(written) == 1 and addr not in out._queued
        for i in range(1, 5):
            out.post_batched(addr, messages.Shutdown(str(i)))
        assert len(written) == 1 and len(out._queued[addr]) == 4   # past frame_limit: held
        out.post_batched(addr, messages.Shutdown("5"))
        assert len(written) == 2 and addr not in out._queued        # batched_limit: written
        out.post_batched(addr, messages.Shutdown("6"))
        out.post(addr, messages.Shutdown("7"))                      # a plain post cuts at 2
        assert len(written) == 3 and addr not in out._queued
        out.post_many(addr, [messages.Shutdown("8"), messages.Shutdown("9")], batched=True)
        assert len(out._queued[addr]) == 2                          # held to the turn's end
        await asyncio.sleep(0.05)
        assert len(written) == 4
        got = []
        while len(got) < 10:
            got += await asyncio.get_running_loop().run_in_executor(None, ep.recv, 2.0)
        assert [m.reason for m in got] == [str(i) for i in range(10)]
        out.close()

    try:
        asyncio.run(main())
    finally:
        ep.close()


def test_sync_endpoint_posts_leave_as_one_frame_per_peer_and_an_empty_flush_sends_nothing():
    import socket

    sid = f"t{os.getpid()}"
    ep = SyncEndpoint(channel.address(sid, "w"), messages.TO_WORKER)
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    peer.bind(channel.address(sid, "peer"))
    peer.listen(1)
    peer.settimeout(5)
    try:
        ep.flush()                             # nothing queued: no connection is made
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.accept()
        peer.settimeout(5)
        ep.post(channel.address(sid, "peer"), messages.Stopped("a"))
        ep.post(channel.address(sid, "peer"), messages.Stopped("b"))
        ep.flush()
        ep.flush()                             # already sent: nothing more
        conn, _ = peer.accept()
        conn.settimeout(5)
        fb, frames = channel.FrameBuffer(), []
        while not frames:
            frames += fb.feed(conn.recv(4096))
        conn.setblocking(False)
        with pytest.raises(BlockingIOError):
            conn.recv(4096)                    # one frame, nothing behind it
        assert len(frames) == 1
        assert messages.decoder(messages.TO_PARENT).decode(frames[0]) == [
            messages.Stopped("a"), messages.Stopped("b")]
        conn.close()
    finally:
        peer.close()
        ep.close()


def test_an_unencodable_message_loses_only_itself():
    """A message msgpack cannot carry (an int beyond 64 bits that slipped past a check)
    is dropped and logged alone: the rest of its frame and the turn's frames to every
    other peer still go (the whole turn was lost, requests left unanswered)."""
    a = channel.address(f"t{os.getpid()}", "enc-a")
    b = channel.address(f"t{os.getpid()}", "enc-b")
    ep_a, ep_b = SyncEndpoint(a, messages.TO_WORKER), SyncEndpoint(b, messages.TO_WORKER)

    async def main():
        out = channel.AsyncOutbox()
        out.frame_limit = 3
        out.post(b, messages.Shutdown("lone"))                 # written at once
        out.post(a, messages.Shutdown("0"))
        out.post(a, messages.Shutdown(1 << 70))                # not a str, not encodable
        out.post(b, messages.Shutdown("1"))
        out.post(a, messages.Shutdown("2"))                    # frame_limit: written now
        out.post(a, messages.Shutdown("3"))
        out.post(a, messages.Shutdown(1 << 70))
        await asyncio.sleep(0.05)                              # the turn's flush
        recv = asyncio.get_running_loop().run_in_executor
        got_a = [m.reason for m in await recv(None, ep_a.recv, 2.0)]
        while len(got_a) < 3:
            got_a += [m.reason for m in await recv(None, ep_a.recv, 2.0)]
        got_b = [m.reason for m in await recv(None, ep_b.recv, 2.0)]
        while len(got_b) < 2:
            got_b += [m.reason for m in await recv(None, ep_b.recv, 2.0)]
        assert (got_a, got_b) == (["0", "2", "3"], ["lone", "1"])
        out.close()

    try:
        asyncio.run(main())
    finally:
        ep_a.close()
        ep_b.close()


def test_sync_endpoint_flush_drops_a_gone_peers_messages_and_still_sends_the_others():
    """A worker answering a peer that died (a killed BLS caller) must not raise out of
    its loop, nor lose what it queued for the living: the dead peer's messages go to
    ``on_undelivered`` (the worker takes its output slots back there)."""
    import socket

    sid = f"u{os.getpid()}"
    ep = SyncEndpoint(channel.address(sid, "w"), messages.TO_WORKER)
    dropped = []
    ep.on_undelivered = lambda addr, msgs, exc: dropped.append((addr, msgs, type(exc)))
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    peer.bind(channel.address(sid, "peer"))
    peer.listen(1)
    peer.settimeout(5)
    gone = channel.address(sid, "gone")
    try:
        ep.post(gone, messages.Stopped("lost"))
        ep.post(channel.address(sid, "peer"), messages.Stopped("kept"))
        ep.flush()
        assert dropped == [(gone, [messages.Stopped("lost")], ConnectionRefusedError)]
        conn, _ = peer.accept()
        conn.settimeout(5)
        fb, frames = channel.FrameBuffer(), []
        while not frames:
            frames += fb.feed(conn.recv(4096))
        assert messages.decoder(messages.TO_PARENT).decode(frames[0]) == [messages.Stopped("kept")]
        conn.close()
        # A peer that died after we connected: the broken pipe is the same drop.
        for _ in range(3):
            ep.post(channel.address(sid, "peer"), messages.Stopped("late"))
            ep.flush()
        assert [d[0] for d in dropped[1:]] == [channel.address(sid, "peer")] * len(dropped[1:])
        assert len(dropped) > 1
    finally:
        peer.close()
        ep.close()
