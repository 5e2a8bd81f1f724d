"""The Responses of one streamed request, as :meth:`InferClient.stream` hands them out
(``tritond/inferclient.py`` feeds them; the reader releases each one's outputs)."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Optional

from tritond import messages

if TYPE_CHECKING:
    from tritond.inferclient import InferClient


class ResponseStream:
    """The Responses of one request in arrival order; it ends after the final one.

    On an event loop: ``async for resp in stream``. Without one: give
    ``callback`` to :meth:`InferClient.stream`, which then gets every Response
    (``resp.final`` marks the last) in the thread that feeds ``on_response``;
    ``queue.SimpleQueue().put`` turns that into a blocking queue.
    The reader releases each Response's outputs (``client.releaser``).
    """

    __slots__ = ("rid", "cancelled", "_client", "_callback", "_items", "_waiter", "_ended")

    def __init__(self, client: InferClient, callback=None):
        self.rid = 0
        self.cancelled = False
        self._client = client
        self._callback = callback
        self._items: deque = deque()
        self._waiter: Optional[asyncio.Future] = None
        self._ended = False

    def _push(self, resp: messages.Response) -> None:
        if self.cancelled:
            self._client.drop(resp)
            return
        if self._callback is not None:
            self._callback(resp)
            return
        self._items.append(resp)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def __aiter__(self) -> "ResponseStream":
        return self

    async def __anext__(self) -> messages.Response:
        items = self._items
        while not items:
            if self._ended:
                raise StopAsyncIteration
            waiter = self._waiter = self._client.event_loop().create_future()
            await waiter
        resp = items.popleft()
        if resp.final:
            self._ended = True
        return resp

    def cancel(self) -> None:
        """Give up: Cancel the request if it is still running; every unread and later
        Response is released. Idempotent; nothing is sent once the final one came."""
        if self.cancelled:
            return
        self.cancelled = True
        self._ended = True
        while self._items:
            self._client.drop(self._items.popleft())
        self._client.cancel(self.rid)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
