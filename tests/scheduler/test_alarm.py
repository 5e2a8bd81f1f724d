"""The shell's precise wake-up (timerfd) on both event loops."""
import asyncio
import time

import pytest

from tritond.scheduler.alarm import Alarm
from tritond.scheduler.proc import _new_loop

LOOPS = {"asyncio": asyncio.new_event_loop, "default": _new_loop}


@pytest.mark.parametrize("make_loop", LOOPS.values(), ids=list(LOOPS))
def test_alarm_fires_once_at_deadline(make_loop):
    """Fires once, never early, at the last deadline set. Bounds are generous on purpose:
    a busy host delays any wake-up, and the replaced deadline is 10 s away."""
    loop = make_loop()
    fired = []

    async def scenario():
        rang = loop.create_future()

        def ring():
            fired.append(time.monotonic_ns())
            if not rang.done():
                rang.set_result(None)
        alarm = Alarm(loop, ring)
        assert alarm.precise
        start = time.monotonic_ns()
        alarm.set(start + 10_000_000_000)              # re-armed before it fires:
        deadline = start + 3_000_000
        alarm.set(deadline)                            # only this deadline counts
        await asyncio.wait_for(rang, 5)
        await asyncio.sleep(0.05)                      # a second firing would land here
        alarm.set(None)
        alarm.close()
        return start, deadline

    start, deadline = loop.run_until_complete(scenario())
    loop.close()
    assert len(fired) == 1
    assert deadline <= fired[0] < start + 10_000_000_000


def test_alarm_past_deadline_fires_soon():
    loop = asyncio.new_event_loop()
    fired = []

    async def scenario():
        alarm = Alarm(loop, lambda: fired.append(1))
        alarm.set(0)
        await asyncio.sleep(0.02)
        alarm.close()

    loop.run_until_complete(scenario())
    loop.close()
    assert fired == [1]
