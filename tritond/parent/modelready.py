"""``pb_utils.is_model_ready`` from a Python model: the parent's answer (a ReadyQuery).

python_backend sends the call to its backend, which asks the core's ModelIsReady
(``TRITONSERVER_ServerModelIsReady``): the version string is read by
GetModelVersionFromString ("" is the latest READY version), the version must be READY
(an ensemble only while its composing models are), and then the model's own runtime
readiness is asked: a Python model that defines ``is_ready()`` is ready only when every
instance says so. The parent knows the table but not ``is_ready()``: for such a model it
hands the query to the scheduler, which asks the instances (scheduler/userready.py) and
answers the caller itself, with the caller's query id.
"""
from __future__ import annotations

import re
from typing import Callable

from tritond import messages
from tritond.errors import TritonError, invalid_arg
from tritond.namespaces import ambiguous

from . import ensembles
from .models import READY, Registry
from .names import Names

_STOL = re.compile(r"\s*[+-]?\d+")     # what std::stol reads (the rest is ignored)


def bls_version(text: str) -> int:
    """python_backend's GetModelVersionFromString, with its texts: "" is -1 (the latest
    ready version); anything else is read as std::stol reads it and must not be negative."""
    if not text:
        return -1
    head = _STOL.match(text)
    if head is None or abs(int(head.group())) >= 1 << 63:
        raise invalid_arg(f"failed to get model version from specified version string "
                          f"'{text}' (details: stol), version should be an integral value > 0")
    version = int(head.group())
    if version < 0:
        raise invalid_arg(f"failed to get model version from specified version string "
                          f"'{text}', version should be an integral value > 0")
    return version


class ModelReady:
    """Answers ReadyQuery, or passes it on to the scheduler (``scheduler()``: its Child)."""

    def __init__(self, registry: Registry, names: Names, outbox,
                 scheduler: Callable[[], object]) -> None:
        self.registry = registry
        self.names = names
        self.outbox = outbox
        self.scheduler = scheduler

    def on_query(self, msg: messages.ReadyQuery) -> None:
        try:
            version = bls_version(msg.version)
            keys = self.names.loaded(msg.name) or [msg.name]
            if len(keys) > 1:
                raise ambiguous(msg.name, len(keys))
        except TritonError as exc:
            self.outbox.post(msg.frontend, messages.Answer(
                msg.qid, error=messages.ErrorInfo(int(exc.code), exc.message)))
            return
        mv = None
        if "/" not in msg.name:     # a name, never a key (namespaces.py): no model in Triton
            ready = [v for v in self.registry.versions_of(keys[0]) if v.state == READY]
            if version < 0:
                mv = max(ready, key=lambda v: v.version, default=None)
            else:
                mv = next((v for v in ready if v.version == version), None)
        if mv is None or not ensembles.is_live(mv, self.registry):
            self.outbox.post(msg.frontend, messages.Answer(msg.qid, ready=False))
            return
        scheduler = self.scheduler()
        if scheduler is not None and any(i.user_ready for i in mv.instances):
            self.outbox.post(scheduler.boot.address, messages.UserReadyQuery(
                msg.qid, msg.frontend, mv.name, mv.version))
            return
        self.outbox.post(msg.frontend, messages.Answer(msg.qid, ready=True))
