"""Cancel an HTTP inference whose client went away (closed its connection).

Neither uvicorn nor Starlette cancels a handler when its client disconnects:
uvicorn only marks the request cycle, and a handler learns of it from an ASGI
``receive()`` that returns ``http.disconnect``. Waiting on ``receive()`` next
to the inference needs a second task, so one is started only for requests
still waiting after ``WATCH_AFTER_S``: a fast request pays one timer (armed
and cancelled), no task. On a disconnect the handler task is cancelled, so
``FrontendCore.infer`` posts ``Cancel`` to the scheduler (a queued request is
dropped, a running one is flagged for ``is_cancelled()``).

Infer requests served by the protocol itself (``exchange.py``) do not need
this: the exchange cancels its task when uvicorn marks it disconnected.
"""
from __future__ import annotations

import asyncio

from tritond.errors import Code, TritonError

# Requests answered sooner than this never start a watcher. Measured with 64 wrk
# clients on mlp_batched (p50 ~33 ms): at 20 ms nearly every request started
# one and the watcher path cost ~4% of the frontend's CPU; 100 ms spares all
# but the slowest, at the price of noticing a disconnect up to 100 ms later.
WATCH_AFTER_S = 0.1


class _Watch:
    __slots__ = ("receive", "task", "waiter", "gone")

    def __init__(self, receive, task: asyncio.Task) -> None:
        self.receive = receive
        self.task = task
        self.waiter: asyncio.Task | None = None
        self.gone = False

    def start(self) -> None:
        self.waiter = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        receive = self.receive
        while True:              # the request body was read: only a disconnect can come
            if (await receive())["type"] == "http.disconnect":
                self.gone = True
                self.task.cancel()
                return

    def stop(self) -> None:
        if self.waiter is not None:
            self.waiter.cancel()


async def infer_unless_disconnected(core, req, receive, mv=None):
    """``await core.infer(req, mv)``, cancelled if the client disconnects meanwhile.

    Raises TritonError(CANCELLED) in that case; its response is never sent
    (uvicorn drops writes to a disconnected cycle).
    """
    loop = core.event_loop()
    task = asyncio.current_task(loop)
    watch = _Watch(receive, task)
    timer = loop.call_later(WATCH_AFTER_S, watch.start)
    try:
        return await core.infer(req, mv)
    except asyncio.CancelledError:
        if not watch.gone:
            raise                # a real cancellation (shutdown): let it propagate
        task.uncancel()
        raise TritonError(Code.CANCELLED, "the client disconnected") from None
    finally:
        timer.cancel()
        watch.stop()
