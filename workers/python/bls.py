"""BLS: the worker's channel for requests a Python model makes to other models.

A worker serves its own model in a blocking loop on the main thread; a model
that calls ``InferenceRequest.exec()`` inside ``execute`` blocks that thread.
So BLS requests travel on a channel of their own: a :class:`SyncEndpoint` at
``<worker address>-bls`` (workers answer ``Request.frontend``) and an
:class:`InferClient` (the one infer path) with its own input arena and segment
cache. The model's thread sends (under ``lock``). Who reads the endpoint:
while only ``exec()`` has been used, the thread waiting for an answer reads it
itself (:meth:`BlsChannel.wait`, one reader at a time under ``_reader``), so an
answer wakes its caller directly, not a second thread that then wakes it (a
wake-up and a GIL hand-over per call on a busy host). The first
``async_exec``, ``exec(decoupled=True)`` or control query starts a daemon
thread that reads from then on (their answers must be read while nobody waits
in ``exec``); it hands each Response to its caller (a blocking queue for
``exec``, ``call_soon_threadsafe`` for ``async_exec``), so any number of calls
can be in flight and none waits for the worker's own loop.

The output slots of answers dropped inside ``execute`` on the model's thread
are held and leave with the worker's Executed (:func:`held_releases`), in the
frame it writes to the scheduler anyway; anywhere else they go at once.

A nested call queues like any request: a model calling itself while its only
instance is busy with the caller waits for a free instance (as in Triton);
``timeout`` on the request bounds the wait in the scheduler's queue only if
the model's queue policy allows it.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Optional, Union

from tritond import messages
from tritond.endpoint import SyncEndpoint
from tritond.framing import BLS_SUFFIX, address
from tritond.inferclient import InferClient
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache

log = logging.getLogger("tritond.worker.bls")

# The scheduler forwards each ModelTable to the BLS callers it has seen: a decoupled callee
# that dies after its execute returned fails the calls it was still answering, as a
# frontend's own (InferClient.fail_gone).
INBOX = Union[messages.Response, messages.Answer, messages.ModelTable, messages.Unknown]

# (server_id, worker name, scheduler address, arena size, parent address, load timeout)
_config: Optional[tuple] = None
_channel: Optional["BlsChannel"] = None
_start_lock = threading.Lock()
_serving = False     # between the model's initialize and its finalize (check_serving)


def configure(setup: messages.Setup, name: str, parent: str = "") -> None:
    """Remember where the scheduler and the parent are (the worker's Setup); nothing
    starts until a call."""
    global _config
    _config = (setup.server_id, name, setup.scheduler, setup.options.input_arena_byte_size,
               parent, float(getattr(setup.options, "model_load_timeout_s", 600)))


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


def serving(on: bool) -> None:
    """The model's ``initialize`` returned (True) or its ``finalize`` starts (False)."""
    global _serving
    _serving = on


def check_serving() -> None:
    """BLS outside ``initialize`` and ``finalize`` only, as in Triton's stub (its
    ``InferRequest::Exec``): a call from either raises its exception."""
    if not _serving:
        from .inference import TritonModelException
        raise TritonModelException("BLS is only supported during the 'execute' function.")


def held_releases() -> list:
    """Releases held for the worker's Executed (see the module docstring)."""
    ch = _channel
    if ch is None:
        return []
    with ch.lock:
        return ch.client.take_held()


def _holding() -> bool:
    """On the model's thread inside ``execute``: the worker sends its Executed next."""
    from . import pb_utils
    return bool(pb_utils._executing) and threading.get_ident() == _MAIN


_MAIN = threading.main_thread().ident


def close() -> None:
    """Unlink the BLS input arena (worker shutdown)."""
    if _channel is not None:
        _channel.close()


class BlsChannel:
    """The endpoint, its receiving thread and the InferClient behind them."""

    def __init__(self, server_id: str, name: str, scheduler: str, arena_size: int,
                 parent: str = "", load_timeout_s: float = 600.0) -> None:
        self.address = address(server_id, name + BLS_SUFFIX)
        self.parent = parent
        self.load_timeout_s = load_timeout_s
        self._qids = itertools.count(1)
        self._answers: dict[int, queue.SimpleQueue] = {}
        self.ep = SyncEndpoint(self.address, INBOX)
        # Re-entrant: a Response released by the garbage collector may run its
        # finalizer on a thread that already holds the lock.
        self.lock = threading.RLock()
        self.cache = SegmentCache()
        self.pool = ArenaPool(server_id, f"{name}bls", arena_size)
        self.client = InferClient(self.ep.post, self.address, scheduler, self.pool, self.cache,
                                  linger_s=None)
        self._reader = threading.Lock()        # held by whoever reads ``ep``
        self._thread: Optional[threading.Thread] = None

    def start_reader(self) -> None:
        """Start the reading thread (async, decoupled and control answers need it)."""
        if self._thread is None:
            with _start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="tritond-bls",
                                                    daemon=True)
                    self._thread.start()

    def wait(self, answers: queue.SimpleQueue, timeout: float):
        """The next item of ``answers`` within ``timeout`` (else ``queue.Empty``); while
        no thread reads the endpoint, read it here."""
        if self._thread is not None or not self._reader.acquire(blocking=False):
            return answers.get(timeout=timeout)
        try:
            end = time.monotonic() + timeout
            while answers.empty():
                left = end - time.monotonic()
                if left <= 0:
                    break
                msgs = self.ep.recv(left)
                if msgs:
                    self._deliver(msgs)
        finally:
            self._reader.release()
        return answers.get_nowait()

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
            hold = _holding()
            if hold and not self.client.releases.direct:     # nothing to send now
                return
            self.client.flush_releases(held=not hold)
            self._flush()

    def ask(self, kind: type, timeout_s: float, **fields) -> messages.Answer:
        """Send the parent a control query (model load/unload/readiness) and wait for its
        Answer on this (the model's) thread; the BLS thread delivers it."""
        answers: queue.SimpleQueue = queue.SimpleQueue()
        self.start_reader()
        with self.lock:
            qid = next(self._qids)
            self._answers[qid] = answers
            self.ep.post(self.parent, kind(qid=qid, frontend=self.address, **fields))
            self._flush()
        try:
            return answers.get(timeout=timeout_s)
        except queue.Empty:
            from .inference import TritonModelException
            raise TritonModelException(
                f"no answer to {kind.__name__} within {timeout_s:g} s") from None
        finally:
            with self.lock:
                self._answers.pop(qid, None)

    def _flush(self) -> None:
        try:
            self.ep.flush()
        except OSError as exc:          # the scheduler is gone: the server is stopping
            log.warning("BLS channel cannot send: %s", exc)

    def _run(self) -> None:
        self._reader.acquire()              # for good: this thread reads from now on
        while True:
            try:
                msgs = self.ep.recv(None)
            except Exception:  # noqa: BLE001 - a bad frame must not end BLS
                log.exception("BLS channel receive failed")
                continue
            self._deliver(msgs)

    def _deliver(self, msgs: list) -> None:
        with self.lock:
            for msg in msgs:
                try:
                    self._deliver_one(msg)
                except Exception:  # noqa: BLE001 - one caller's failure: the others still
                    # wait for theirs, and the BLS thread must go on reading
                    log.exception("BLS channel: delivering %s failed", type(msg).__name__)
            self.client.flush_releases(held=not _holding())
            self._flush()

    def _deliver_one(self, msg) -> None:
        if type(msg) is messages.Response:
            self.client.on_response(msg)
        elif type(msg) is messages.Answer:
            waiting = self._answers.get(msg.qid)
            if waiting is not None:
                waiting.put(msg)
        elif type(msg) is messages.ModelTable:
            self.client.fail_gone_in(msg)
        else:
            log.error("a peer could not decode a BLS message: %s", msg)

    def close(self) -> None:
        self.pool.close()
        self.cache.close()
