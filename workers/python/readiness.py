"""A Python model's own ``is_ready()``, asked by model-ready queries (python_backend's
user-defined readiness function).

The worker's loop is busy inside ``execute`` while a batch runs (a decoupled model may
stay there for seconds), and nobody reads its inbox then. python_backend answers a
readiness check on a stub thread of its own, beside ``execute``; so does this: the
worker of a model defining ``is_ready`` listens on a second channel (its address +
``READY_SUFFIX``) served by one thread. The scheduler sends a :class:`UserReadyCheck`
there and combines the instances' replies (scheduler/userready.py).

Checks that arrive while ``is_ready()`` runs share its answer, as python_backend's
one in-flight check per instance does: a check that timed out in the scheduler
(``is_ready`` slower than its bound) leaves the call running, and the next query is
answered by it when it returns.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

import msgspec

from tritond import messages
from tritond.endpoint import SyncEndpoint
from tritond.errors import Code, TritonError
from tritond.framing import READY_SUFFIX

log = logging.getLogger("tritond.workers.readiness")


class ReadinessChannel:
    """The channel and its one thread; ``check()`` returns a bool or raises."""

    def __init__(self, address: str, instance: str, check: Callable[[], bool]) -> None:
        self.address = address       # the worker's own: how the scheduler knows the reply
        self.instance = instance
        self._check = check
        self.ep = SyncEndpoint(address + READY_SUFFIX, messages.TO_READINESS)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tritond-ready", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            try:
                checks = self._checks(None)
                if not checks:
                    continue
                ready, error = self._evaluate()
                checks += self._checks(0)     # came while is_ready() ran: same answer
                for c in checks:
                    self.ep.post(c.scheduler, messages.UserReadyReply(
                        self.address, c.qid, ready, error))
                self.ep.flush()
            except Exception:  # noqa: BLE001 - closed at unload, or a peer's bad frame
                if self._closed:
                    return
                log.exception("readiness channel of %s", self.instance)

    def _checks(self, timeout: Optional[float]) -> list:
        try:
            msgs = self.ep.recv(timeout)
        except msgspec.MsgspecError as exc:
            log.error("undecodable message frame: %s", exc)
            return []
        return [m for m in msgs if type(m) is messages.UserReadyCheck]

    def _evaluate(self) -> tuple[bool, Optional[messages.ErrorInfo]]:
        """(ready, error): an exception or a non-bool answer is an error (not ready)."""
        try:
            return bool(self._check()), None
        except Exception as exc:  # noqa: BLE001 - the model's exception is the answer
            log.error("is_ready() of %s failed: %s", self.instance, exc)
            code = exc.code if isinstance(exc, TritonError) else Code.INTERNAL
            return False, messages.ErrorInfo(int(code), _text(exc))

    def close(self) -> None:
        self._closed = True
        self.ep.close()


def _text(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else f"{type(exc).__name__}: {exc}"
