"""frontend/http/deadline.py: slow clients are cut off, complete requests are not."""
import asyncio

from tritond.frontend.http.deadline import ReadDeadline
from tritond.idletimer import IdleTimer


def _run(script, timeout=0.2):
    async def main():
        loop = asyncio.get_running_loop()
        expired = []
        d = ReadDeadline(loop, timeout, lambda: expired.append(loop.time()))
        start = loop.time()
        await script(d)
        return [t - start for t in expired]
    return asyncio.run(main())


def test_headers_must_complete_in_time_even_when_dribbling():
    async def script(d):
        d.headers()
        for _ in range(6):
            await asyncio.sleep(0.05)
            d.touch()                    # bytes arrive, headers do not end
        await asyncio.sleep(0.1)
    (t,) = _run(script)
    assert 0.19 < t < 0.3


def test_body_limit_is_on_silence():
    async def script(d):
        d.body()
        for _ in range(6):               # 0.3 s of body, never 0.2 s silent
            await asyncio.sleep(0.1)
            d.touch()
        d.stop()
        await asyncio.sleep(0.3)
    assert _run(script) == []


def test_silent_body_expires():
    async def script(d):
        d.body()
        await asyncio.sleep(0.35)
    (t,) = _run(script)
    assert 0.19 < t < 0.3


def test_complete_request_has_no_limit_and_zero_disables():
    async def script(d):
        d.headers()
        d.body()
        d.stop()
        await asyncio.sleep(0.3)
    assert _run(script) == []

    async def silent(d):
        d.headers()
        await asyncio.sleep(0.3)
    assert _run(silent, timeout=0) == []


def _idle_run(script, timeout=0.2):
    async def main():
        loop = asyncio.get_running_loop()
        closed = []
        t = IdleTimer(loop, timeout, lambda: closed.append(loop.time()))
        start = loop.time()
        await script(t)
        return [c - start for c in closed]
    return asyncio.run(main())


def test_idle_connection_is_closed_after_the_keep_alive_timeout():
    async def script(t):
        t.idle()
        await asyncio.sleep(0.35)
    (c,) = _idle_run(script)
    assert 0.19 < c < 0.3


def test_requests_keep_the_connection_and_the_clock_restarts_when_idle():
    last = []

    async def script(t):
        for _ in range(5):               # a request every 0.1 s, each answered at once
            t.idle()
            await asyncio.sleep(0.1)
            t.busy()
        t.idle()                         # the last answer: the timeout counts from here
        last.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.4)
    start = []
    closed = _idle_run(lambda t: (start.append(asyncio.get_running_loop().time()), script(t))[1])
    (c,) = closed
    assert c + start[0] - last[0] >= 0.199     # not before 0.2 s of idleness


def test_busy_connection_is_never_closed_and_close_disarms():
    async def script(t):
        t.idle()
        t.busy()                         # a request arrived: it may run for long
        await asyncio.sleep(0.35)
        t.idle()
        t.close()
        await asyncio.sleep(0.3)
    assert _idle_run(script) == []
