"""BLS: the worker's channel for requests a Python model makes to other models.

A worker serves its own model in a blocking loop on the main thread; a model
that calls ``InferenceRequest.exec()`` inside ``execute`` blocks that thread.
So BLS requests travel on a channel of their own: a :class:`SyncEndpoint` at
``<worker address>-bls`` (workers answer ``Request.frontend``) read by a
daemon thread, and an :class:`InferClient` (the one infer path) with its own
input arena and segment cache. The model's thread sends (under ``lock``); the
BLS thread receives and hands each Response to its caller (a blocking queue
for ``exec``, ``call_soon_threadsafe`` for ``async_exec``), so any number of
calls can be in flight and none waits for the worker's own loop.

A nested call queues like any request: a model calling itself while its only
instance is busy with the caller waits for a free instance (as in Triton);
``timeout`` on the request bounds the wait in the scheduler's queue only if
the model's queue policy allows it.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional, Union

from tritond import messages
from tritond.endpoint import SyncEndpoint
from tritond.framing import address
from tritond.inferclient import InferClient
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache

log = logging.getLogger("tritond.worker.bls")

INBOX = Union[messages.Response, messages.Unknown]

_config: Optional[tuple] = None        # (server_id, worker name, scheduler address, arena size)
_channel: Optional["BlsChannel"] = None
_start_lock = threading.Lock()


def configure(setup: messages.Setup, name: str) -> None:
    """Remember where the scheduler is (the worker's Setup); nothing starts until a call."""
    global _config
    _config = (setup.server_id, name, setup.scheduler, setup.options.input_arena_byte_size)


def channel() -> "BlsChannel":
    """The process's BLS channel, started on first use."""
    global _channel
    if _channel is None:
        with _start_lock:
            if _channel is None:
                if _config is None:
                    from .inference import TritonModelException
                    raise TritonModelException("BLS is only available inside a tritond worker")
                _channel = BlsChannel(*_config)
    return _channel


def close() -> None:
    """Unlink the BLS input arena (worker shutdown)."""
    if _channel is not None:
        _channel.close()


class BlsChannel:
    """The endpoint, its receiving thread and the InferClient behind them."""

    def __init__(self, server_id: str, name: str, scheduler: str, arena_size: int) -> None:
        self.address = address(server_id, f"{name}-bls")
        self.ep = SyncEndpoint(self.address, INBOX)
        # Re-entrant: a Response released by the garbage collector may run its
        # finalizer on a thread that already holds the lock.
        self.lock = threading.RLock()
        self.cache = SegmentCache()
        self.pool = ArenaPool(server_id, f"{name}bls", arena_size)
        self.client = InferClient(self.ep.post, self.address, scheduler, self.pool, self.cache,
                                  linger_s=None)
        self._thread = threading.Thread(target=self._run, name="tritond-bls", daemon=True)
        self._thread.start()

    def send(self, req: messages.Request, slots: list, callback) -> int:
        """Send ``req``; every Response goes to ``callback`` (on the BLS thread). Returns its rid."""
        with self.lock:
            stream = self.client.stream(req, slots, callback)
            self._flush()
        return stream.rid

    def cancel(self, rid: int) -> None:
        with self.lock:
            self.client.cancel(rid)
            self._flush()

    def release(self, release) -> None:
        """Run a ``client.releaser`` callable and send the Release now."""
        with self.lock:
            release()
            self.client.flush_releases()
            self._flush()

    def _flush(self) -> None:
        try:
            self.ep.flush()
        except OSError as exc:          # the scheduler is gone: the server is stopping
            log.warning("BLS channel cannot send: %s", exc)

    def _run(self) -> None:
        while True:
            try:
                msgs = self.ep.recv(None)
            except Exception:  # noqa: BLE001 - a bad frame must not end BLS
                log.exception("BLS channel receive failed")
                continue
            with self.lock:
                for msg in msgs:
                    if type(msg) is messages.Response:
                        self.client.on_response(msg)
                    else:
                        log.error("a peer could not decode a BLS message: %s", msg)
                self.client.flush_releases()
                self._flush()

    def close(self) -> None:
        self.pool.close()
        self.cache.close()
