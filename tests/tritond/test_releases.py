"""OutputReleases: which Release goes where, and when (tritond/releases.py).

``post`` is the seam its owner gives it (an outbox); here it records what would
be sent. No event loop: ``linger_s=None`` keeps slots until a flush or a Request.
"""
from __future__ import annotations

from tritond import messages
from tritond.releases import OutputReleases, by_owner
from tritond.shm.views import SegmentCache

SCHED = "sched"


def _ref(region: str, offset: int, kind=messages.SERVER_SHM) -> messages.TensorRef:
    return messages.TensorRef("OUT", "INT32", [1], kind=kind, region=region, offset=offset,
                              nbytes=4)


def _releases():
    sent: list = []
    rel = OutputReleases(lambda addr, msg: sent.append((addr, msg)), SCHED,
                         SegmentCache(writable=False), event_loop=None, linger_s=None)
    return rel, sent


def test_final_outputs_wait_for_a_flush_and_go_to_the_scheduler():
    rel, sent = _releases()
    resp = messages.Response(1, outputs=[_ref("/w0-a", 0), _ref("/w0-a", 64)], instance="w0")
    release = rel.releaser(resp)
    assert rel.unreleased == 1
    release()
    assert rel.unreleased == 0 and sent == []          # held for the next Request
    rel.flush()
    assert sent == [(SCHED, messages.Release("w0", [("/w0-a", 0), ("/w0-a", 64)]))]


def test_non_final_outputs_go_straight_to_their_worker_even_when_only_direct_is_flushed():
    rel, sent = _releases()
    rel.releaser(messages.Response(1, outputs=[_ref("/w0-a", 0)], instance="w0",
                                   final=False))()
    rel.releaser(messages.Response(2, outputs=[_ref("/w0-a", 64)], instance="w0"))()
    rel.flush(held=False)
    assert sent == [("w0", messages.Release("w0", [("/w0-a", 0)]))]
    assert rel.take_held() == [messages.Release("w0", [("/w0-a", 64)])]
    assert rel.take_held() == []


def test_one_off_segments_go_at_once():
    rel, sent = _releases()
    rel.drop(messages.Response(1, outputs=[_ref("/w0-x3", 0)], instance="w0"))
    assert sent == [(SCHED, messages.Release("w0", [("/w0-x3", 0)]))]


def test_ensemble_outputs_go_back_to_each_owner_and_client_shm_is_not_released():
    resp = messages.Response(1, outputs=[_ref("/a", 0), _ref("/b", 8), _ref("key", 0, kind=messages.CLIENT_SHM)],
                             instance="w0", owners=["wa", "wb", "wa"])
    assert by_owner(resp) == {"wa": [("/a", 0)], "wb": [("/b", 8)]}
    rel, sent = _releases()
    rel.releaser(resp)()
    rel.flush()
    assert sent == [(SCHED, messages.Release("wa", [("/a", 0)])),
                    (SCHED, messages.Release("wb", [("/b", 8)]))]


def test_nothing_to_release_gives_no_releaser():
    rel, _ = _releases()
    assert rel.releaser(messages.Response(1, instance="w0")) is None
    assert rel.releaser(messages.Response(1, outputs=[_ref("key", 0, kind=messages.CLIENT_SHM)],
                                          instance="w0")) is None
    assert rel.unreleased == 0


def test_the_linger_timer_sends_what_is_held_when_it_fires_and_nothing_twice():
    # take_held (a Request's frame) leaves the timer armed; when it fires it
    # sends only what was held since, and a timer firing on nothing sends nothing.
    import asyncio

    async def body():
        loop = asyncio.get_running_loop()
        sent: list = []
        rel = OutputReleases(lambda addr, msg: sent.append((addr, msg)), SCHED,
                             SegmentCache(writable=False), event_loop=lambda: loop,
                             linger_s=0.01)
        rel.releaser(messages.Response(1, outputs=[_ref("/w0-a", 0)], instance="w0"))()
        assert rel.take_held() == [messages.Release("w0", [("/w0-a", 0)])]
        rel.releaser(messages.Response(2, outputs=[_ref("/w0-a", 64)], instance="w0"))()
        while not sent:
            await asyncio.sleep(0.005)
        assert sent == [(SCHED, messages.Release("w0", [("/w0-a", 64)]))]
        rel.releaser(messages.Response(3, outputs=[_ref("/w0-a", 128)], instance="w0"))()
        while len(sent) < 2:                # the timer is armed again for the new slots
            await asyncio.sleep(0.005)
        assert sent[1] == (SCHED, messages.Release("w0", [("/w0-a", 128)]))
        assert rel.take_held() == []
    asyncio.run(body())


def test_slots_held_after_a_request_took_the_others_wait_their_own_linger():
    # The timer armed for slot 0 fires (called here at once) after a Request
    # took slot 0 and slot 64 came: slot 64 has not waited linger_s yet, so
    # nothing is sent and the timer is armed for the rest of its wait.
    import asyncio

    async def body():
        loop = asyncio.get_running_loop()
        sent: list = []
        rel = OutputReleases(lambda addr, msg: sent.append((addr, msg)), SCHED,
                             SegmentCache(writable=False), event_loop=lambda: loop, linger_s=60)
        rel.releaser(messages.Response(1, outputs=[_ref("/w0-a", 0)], instance="w0"))()
        first = rel._timer._handle                 # the IdleTimer's armed TimerHandle
        assert rel.take_held() == [messages.Release("w0", [("/w0-a", 0)])]
        rel.releaser(messages.Response(2, outputs=[_ref("/w0-a", 64)], instance="w0"))()
        assert rel._timer._handle is first         # still armed: not cancelled per Request
        first.cancel()
        rel._timer._check()                        # as if it fired now
        again = rel._timer._handle
        assert sent == [] and again is not None and again is not first
        rel.flush()
        assert sent == [(SCHED, messages.Release("w0", [("/w0-a", 64)]))]
        rel._timer.close()
    asyncio.run(body())
