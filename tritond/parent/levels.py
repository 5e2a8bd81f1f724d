"""The logging API's log levels and line format, applied here and passed on to every child.

What is logged now is kept for the children started later (their Bootstrap).
A change is answered only once the scheduler has passed it on to its workers.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

import msgspec

from tritond import loglevels, messages

log = logging.getLogger("tritond.supervisor")

LEVELS_TIMEOUT_S = 5.0      # the scheduler passing a log level change on to its workers


class LogLevelRelay:
    """Owned by the Supervisor; ``children`` and ``drained`` are its tables, shared."""

    def __init__(self, options, outbox, address: str, children: dict, drained: dict,
                 scheduler: Callable[[], object]) -> None:
        # what is logged now (the flags, then the logging API's changes)
        self.current = messages.LogLevels(options.log_info, options.log_warning,
                                          options.log_error, options.log_verbose,
                                          format=options.log_format)
        self._seq = 0
        self._outbox = outbox
        self._address = address
        self._children = children
        self._drained = drained
        self._scheduler = scheduler

    def apply(self, msg: messages.LogLevels) -> None:
        """The logging API changed what is logged: here, in every child, and in the
        children started later (their Bootstrap)."""
        levels = msgspec.structs.replace(msg, qid=0, frontend="")
        self.current = levels
        loglevels.from_message(levels)
        for address in list(self._children):
            self._outbox.post(address, levels)
        if msg.qid:
            asyncio.get_running_loop().create_task(self._answer(msg, levels))

    async def _answer(self, msg: messages.LogLevels, levels: messages.LogLevels) -> None:
        """Answer once the scheduler has passed the change on to its workers: an Execute it
        sends later follows it on the same connection, so every request that comes after
        the answer runs with the new levels."""
        self._seq += 1
        key = f"loglevels:{self._seq}"
        fut = self._drained[key] = asyncio.get_running_loop().create_future()
        scheduler = self._scheduler()
        try:
            if scheduler is not None:
                self._outbox.post(scheduler.boot.address, msgspec.structs.replace(
                    levels, qid=self._seq, frontend=self._address))
                await asyncio.wait_for(fut, LEVELS_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("the scheduler did not pass the log levels on within %gs",
                        LEVELS_TIMEOUT_S)
        finally:
            self._drained.pop(key, None)
        self._outbox.post(msg.frontend, messages.Answer(msg.qid))
