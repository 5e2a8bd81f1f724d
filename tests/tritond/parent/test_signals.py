"""StopSignals: the first signal only starts the drain (a second one, which kills the
children and exits, is tests/integration/test_shutdown.py)."""
import asyncio
import signal

from tritond.options import Options
from tritond.parent.signals import StopSignals


def test_first_signal_sets_stop_and_leaves_children_and_segments_alone():
    stop = asyncio.Event()
    unlinked = []
    signals = StopSignals(Options(), stop, {}, lambda: unlinked.append(True))
    signals.on_signal(signal.SIGTERM)
    assert stop.is_set() and signals.count == 1 and unlinked == []
