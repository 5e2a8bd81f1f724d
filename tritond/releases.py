"""Output slots an :class:`~tritond.inferclient.InferClient` hands back to their workers.

Each output TensorRef of kind SERVER_SHM belongs to ``Response.instance`` (or, for
an ensemble's answer, to its entry in ``Response.owners``) and goes back to it with
a ``Release``. Through the scheduler, which hands it over with that worker's next
``Execute``: a Release of its own would wake the scheduler once more per request,
which at low load costs as much as the request. So they wait for the client's next
Request (one frame) or ``linger_s``; one-off (big) segments go at once, so /dev/shm
returns to its baseline. Slots of non-final Responses (``direct``) go straight to
the worker: a model streaming responses waits for them (workers/streams.py), and no
Execute may come to carry them.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Optional

from tritond import messages
from tritond.idletimer import IdleTimer
from tritond.shm.arena import is_oneoff
from tritond.shm.views import SegmentCache


class OutputReleases:
    """The output slots one client holds for release, by worker; not thread-safe.

    ``post(addr, msg)`` sends, ``scheduler`` is its address, ``cache`` the client's
    mappings (a one-off segment's is dropped), ``event_loop()`` the loop of the
    ``linger_s`` timer (None: no timer, releases wait for the owner's flush).
    """

    def __init__(self, post: Callable[[str, object], None], scheduler: str,
                 cache: SegmentCache, event_loop: Callable[[], asyncio.AbstractEventLoop],
                 linger_s: Optional[float]) -> None:
        self._post = post
        self._scheduler = scheduler
        self._cache = cache
        self._event_loop = event_loop
        self._linger = linger_s
        self.held: dict[str, list] = {}           # instance -> output slots to release
        self.direct: dict[str, list] = {}         # ... of non-final Responses: straight to it
        self.unreleased = 0                        # answers whose outputs are not released yet
        self._timer: Optional[IdleTimer] = None    # made at the first slots held (on a loop)

    def releaser(self, resp: messages.Response) -> Optional[Callable[[], None]]:
        """A one-shot callable handing ``resp``'s output slots back (None: nothing to hand back)."""
        instance = resp.instance
        if not instance or not resp.outputs:
            return None
        if resp.owners:
            return self._owners_releaser(resp)
        slots = [(r.region, r.offset) for r in resp.outputs if r.kind == messages.SERVER_SHM]
        if not slots:
            return None
        self.unreleased += 1
        direct = not resp.final

        def release() -> None:
            self.unreleased -= 1
            self.queue(instance, slots, direct)
        return release

    def _owners_releaser(self, resp: messages.Response) -> Optional[Callable[[], None]]:
        """releaser() of a Response whose outputs belong to several workers (ensembles)."""
        owned = by_owner(resp)
        if not owned:
            return None
        self.unreleased += 1

        def release() -> None:
            self.unreleased -= 1
            for instance, slots in owned.items():
                self.queue(instance, slots)
        return release

    def drop(self, resp: messages.Response) -> None:
        """Hand an unread Response's output slots back to its worker."""
        if resp.outputs and resp.instance:
            # A non-final response's slots go straight to its worker (decoupled).
            for instance, slots in by_owner(resp).items():
                self.queue(instance, slots, not resp.final)

    def queue(self, instance: str, slots: list, direct: bool = False) -> None:
        """Hold output slots for their worker (``direct``: for it, not the scheduler)."""
        now = False
        for region, _ in slots:
            if is_oneoff(region):
                self._cache.forget(region)
                now = True
        waiting = bool(self.held or self.direct)     # before these slots join them
        (self.direct if direct else self.held).setdefault(instance, []).extend(slots)
        if now:
            self.flush()
        elif not waiting and self._linger is not None:
            # The oldest slots waiting were held now. The timer stays armed across
            # take_held: when it fires it flushes what waited linger_s, and re-arms for
            # slots held after a Request took the earlier ones (not a lone Release early).
            timer = self._timer
            if timer is None:
                timer = self._timer = IdleTimer(self._event_loop(), self._linger, self.flush)
            timer.idle()

    def flush(self, held: bool = True) -> None:
        """Send every held output slot now (one Release per worker); ``held=False``: only
        the slots that go straight to their worker (see :meth:`take_held`)."""
        if self.direct:
            direct, self.direct = self.direct, {}
            for instance, slots in direct.items():
                self._post(instance, messages.Release(instance, slots))
        if held:
            for release in self.take_held():
                self._post(self._scheduler, release)

    def take_held(self) -> list:
        """The held slots as Releases for the scheduler, taken out for a caller that
        sends them in a frame it writes to the scheduler anyway (a Request, a BLS
        caller's Executed).

        The linger timer stays armed: cancelling and arming it again per request
        (a uvloop TimerHandle, ~2 µs) cost more than its one flush per ``linger_s``,
        which finds nothing held or slots held for less than ``linger_s``."""
        if not self.held:
            return []
        held, self.held = self.held, {}
        return [messages.Release(instance, slots) for instance, slots in held.items()]


def by_owner(resp: messages.Response) -> dict[str, list]:
    """Output slots of kind SERVER_SHM by owning instance (``Response.owners``, else ``instance``)."""
    owners = resp.owners or [resp.instance] * len(resp.outputs)
    owned: dict[str, list] = {}
    for ref, owner in zip(resp.outputs, owners):
        if ref.kind == messages.SERVER_SHM and owner:
            owned.setdefault(owner, []).append((ref.region, ref.offset))
    return owned
