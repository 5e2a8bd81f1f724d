"""What a frontend process's inbox receives, applied to its ``FrontendCore``.

Responses go to the ``InferClient`` (through ``ordering`` for preserve_ordering
models), answers to the control plane, tables to the model and client shm
registries; anything else is the process's (``FrontendCore.on_control``).
"""
from __future__ import annotations

import logging
import re

from tritond import messages

log = logging.getLogger("tritond.frontend")

_RESPONSE = messages.Response
_WORKER_REGION = re.compile(r"^/?tritond-[^-]+-\d+-(w\d+)(?:-x\d+)?$")


def dead_worker_regions(regions: list[str], table: messages.ModelTable) -> list[str]:
    """The mapped ``regions`` that belong to workers no longer live in ``table``.

    A worker's address ends with its name (``...-w3``), which is also the tag
    of its segments. Forgetting a live worker's region by mistake would only
    cost a re-map on the next use.
    """
    live = {inst.address.rsplit("-", 1)[-1] for entry in table.models for inst in entry.instances}
    # A retiring worker is alive and its last answers may still be on their way here:
    # its outputs must stay readable until it is gone from the table altogether.
    live.update(address.rsplit("-", 1)[-1] for address in table.retiring)
    dead = []
    for region in regions:
        m = _WORKER_REGION.match(region)
        if m is not None and m.group(1) not in live:
            dead.append(region)
    return dead


class Inbox:
    """The inbox handler of one ``FrontendCore`` (every call on its event loop)."""

    __slots__ = ("core",)

    def __init__(self, core) -> None:
        self.core = core

    def on_messages(self, msgs: list) -> None:
        """One message that fails to apply is logged and skipped: raising here
        would drop the rest of the frame and leave those requests waiting."""
        core = self.core
        on_response = core.client.on_response
        ordering = core.ordering
        for msg in msgs:
            try:
                # Responses are nearly every message: straight to the client, unless a
                # preserve_ordering model's requests are in flight.
                if type(msg) is _RESPONSE and not ordering.of:
                    on_response(msg)
                else:
                    self._on_message(msg)
            except Exception:  # noqa: BLE001 - see above
                log.exception("failed to handle %s", type(msg).__name__)

    def _on_message(self, msg) -> None:
        core = self.core
        kind = type(msg)
        if kind is messages.Response:
            order = core.ordering.of
            if order and msg.final and msg.rid in order:       # preserve_ordering
                for resp in core.ordering.release(msg):
                    core.client.on_response(resp)
            else:
                core.client.on_response(msg)
        elif kind in messages.ANSWERS:
            core.control.on_answer(msg)
        elif kind is messages.ShmTable:
            core.shm.apply(msg)
            if core.parent:
                core.post(core.parent, messages.ShmApplied(core.address, msg.seq))
        elif kind is messages.SettingsUpdate:
            core.post(msg.frontend, core.control.apply_settings(msg))
        elif kind is messages.FrontendStatsQuery:
            core.post(msg.frontend, messages.FrontendStatsAnswer(
                msg.qid, core.responses.rows(), core.first_response.rows_list(),
                summaries=core.responses.summary_rows()))
        elif kind is messages.SequenceNotes:
            core.sequences.merge(msg.notes)
        elif kind is messages.ModelTable:
            self._table(msg)
        elif kind is messages.LogLevels:     # the logging API, through the parent
            core.control.logs.applied(msg)
        else:
            core.on_control(msg)

    def _table(self, msg: messages.ModelTable) -> None:
        core = self.core
        core.models.update(msg)
        # A dead worker's arenas are unlinked by the parent; only
        # unmapping them here gives the memory back.
        for region in dead_worker_regions(core.cache.server_regions(), msg):
            core.cache.forget(region)
        core.client.fail_gone_in(msg)     # requests a dead worker was still answering
        if msg.seq and core.parent:     # the parent waits for this before READY=1
            core.post(core.parent, messages.TableApplied(core.address, msg.seq))
