"""python_backend's ``ResponseIterator``: what ``exec(decoupled=True)`` returns and what
``await async_exec(decoupled=True)`` resolves to.

Triton hands both calls the same synchronous iterator (its ``async_exec`` runs the call in
an executor and returns the iterator), so a model written for Triton reads the responses
of an awaited call with a plain ``for`` (QA ``bls_async``, ``async_execute_decouple_bls``,
``decoupled_bls_async_cancel``) and may stop the callee with ``cancel()``. A plain ``for``
inside ``async def`` blocks the caller's event loop, as it does in Triton: the responses
therefore come through a thread-safe queue filled by the BLS reader thread, never through
the loop. ``async for`` works too (tritond's earlier form): it waits on the loop without
blocking it.

Read to its end, the iterator starts again from the first response at the next ``for``
(python_backend's ``ResponseIterator::Iter`` resets its index once the previous pass
finished; a pass left unfinished is resumed instead). Like Triton's, it keeps every
response it yielded until it is dropped: their outputs stay valid for a second pass.
"""
from __future__ import annotations

import asyncio
import queue

from . import bls


class ResponseIterator:
    """Every response of a decoupled BLS call, in order, up to its final one.

    ``token`` (``bls_call._Unread.token``) lives as long as this iterator: dropped
    unfinished, the responses queued and still to come are released to their worker."""

    __slots__ = ("_answers", "_ch", "_rid", "_token", "_done", "_loop", "_wake", "_seen",
                 "_idx", "__weakref__")

    def __init__(self, answers: queue.SimpleQueue, ch: bls.BlsChannel, rid: int | None,
                 token) -> None:
        self._answers, self._ch, self._rid, self._token = answers, ch, rid, token
        self._done = False
        self._loop = self._wake = None
        self._seen: list = []           # every response yielded, held as Triton's responses_
        self._idx = 0                   # the next one a later pass yields, once _done

    def arrived(self) -> None:
        """On the BLS thread, after a response was queued: wake an ``async for`` waiting."""
        loop, wake = self._loop, self._wake
        if wake is not None:
            try:
                loop.call_soon_threadsafe(_set, wake)
            except RuntimeError:         # its loop closed: nobody waits any more
                pass

    def cancel(self) -> None:
        """Ask the callee to stop (its requests see ``is_cancelled()``), as Triton's
        ``ResponseIterator.cancel()``; the responses it still sends, its final one
        included, are read as before. Nothing is done once the final one came."""
        if not self._done and self._rid is not None:
            self._ch.cancel(self._rid)

    def __iter__(self) -> "ResponseIterator":
        self._restart()
        return self

    def __next__(self):
        if self._done:
            return self._again(StopIteration)
        return self._take(self._answers.get())

    def __aiter__(self) -> "ResponseIterator":
        self._restart()
        return self

    async def __anext__(self):
        if self._done:
            return self._again(StopAsyncIteration)
        while True:
            try:
                resp = self._answers.get_nowait()
            except queue.Empty:
                await self._sleep()
                continue
            return self._take(resp)

    async def _sleep(self) -> None:
        """Until ``arrived`` (armed first, then the queue looked at again: no lost wake)."""
        self._loop = asyncio.get_running_loop()
        self._wake = self._loop.create_future()
        try:
            if self._answers.empty():
                await self._wake
        finally:
            self._wake = None

    def _restart(self) -> None:
        """A new pass over a finished iterator whose last pass ended starts from the first
        response (Triton's ``Iter``); one that stopped midway resumes."""
        if self._done and self._idx >= len(self._seen):
            self._idx = 0

    def _again(self, stop: type):
        """The next response of a pass after the first (all of them came already)."""
        if self._idx >= len(self._seen):
            raise stop
        self._idx += 1
        return self._seen[self._idx - 1]

    def _take(self, resp):
        """Every response is yielded, the final one too when it is empty (a callee's
        ``send(flags=FINAL)``): python_backend's InferResponseComplete makes an empty
        last response of that callback, and models written for Triton expect it."""
        from .bls_call import response
        out = response(resp, self._ch)
        self._seen.append(out)
        if resp.final:
            self._done = True
            self._idx = len(self._seen)     # this pass ends here; the next starts over
            self._token.end()           # nothing more to come: not left to the collector
        return out


def _set(wake: asyncio.Future) -> None:
    if not wake.done():
        wake.set_result(None)
