"""frontend/http/deadline.py: slow clients are cut off, complete requests are not."""
import asyncio

from tritond.frontend.http.deadline import ReadDeadline


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
