"""Step requests that answer an ensemble's caller directly (``Request.answer``).

The scheduler marks the step request of a non-decoupled ensemble's final step
(scheduler/direct.py): its Response goes straight to the ensemble's caller
(one hop less than worker -> scheduler -> caller) and reads as the ensemble's
answer would: the caller's rid, the ensemble's version and output names, step
errors prefixed "in ensemble '<name>', " (once per level when the step is a nested
ensemble's: ``EnsembleAnswer.within``; a cancel reads "Request was cancelled",
as when the scheduler fails the request), and ``mapped`` for client shared memory.
The worker's Executed still tells the scheduler the step finished, and a bare
final Response (a receipt: no outputs, the step's error if any) to the scheduler
after the caller's answer ends the ensemble request there with its outcome.
"""
from __future__ import annotations

from typing import Callable

import msgspec

from tritond import messages
from tritond.errors import Code
from tritond.sequenceparams import override, response_parameters

from .outputs import renamed_dest_error

_replace = msgspec.structs.replace
_CANCELLED = int(Code.CANCELLED)


class EnsembleAnswers:
    """The open direct answers of one worker, keyed by (step requester, step rid)."""

    __slots__ = ("instance", "_post", "open")

    def __init__(self, instance: str, post: Callable[[str, object], None]) -> None:
        self.instance = instance
        self._post = post
        # (step requester, step rid) -> (answer, the step's correlation id and flags)
        self.open: dict[tuple[str, int], tuple] = {}

    def note(self, requests) -> bool:
        """Remember the marked requests of a batch; True if there is one."""
        found = False
        for req in requests:
            if req.answer is not None:
                self.open[(req.frontend, req.rid)] = (req.answer, req.correlation_id,
                                                      req.flags)
                found = True
        return found

    def post(self, frontend: str, msg) -> None:
        """``Endpoint.post``, sending the Response of a marked request to its caller."""
        if self.open and type(msg) is messages.Response:
            key = (frontend, msg.rid)
            item = self.open.get(key)
            if item is not None:
                answer = item[0]
                receipt = None
                if msg.final:
                    del self.open[key]
                    if msg.error is None and (_lacks(msg, answer) or type(
                            override(msg.parameters, item[1])) is str):
                        # an output left out, or a sequence parameter of the wrong type:
                        # the scheduler ends the request as Triton's ensemble does, as
                        # for any step
                        self._post(frontend, msg)
                        return
                    # The scheduler ends the run on this receipt: its error is the
                    # request's outcome for the ensemble's statistics.
                    receipt = messages.Response(msg.rid, error=msg.error,
                                                instance=self.instance, empty=True)
                self._post(answer.frontend, self._as_ensemble(item, msg))
                if receipt is not None:
                    self._post(frontend, receipt)
                return
        self._post(frontend, msg)

    def _as_ensemble(self, item: tuple, resp: messages.Response) -> messages.Response:
        answer, corrid, flags = item
        resp.rid = answer.rid
        resp.model_version = answer.version
        # a wrong override went to the scheduler instead (``post``)
        seq = override(resp.parameters, corrid) if resp.outputs else None
        resp.parameters = response_parameters(*(seq or (corrid, flags))) \
            if resp.outputs else {}
        err = resp.error
        if err is not None:
            resp.instance = ""
            if err.code != _CANCELLED:
                names = [answer.model, *answer.within]    # as each level would prefix it
                resp.error = messages.ErrorInfo(err.code, "".join(
                    f"in ensemble '{name}', " for name in names)
                    + renamed_dest_error(err.message, answer.renames))
        if resp.outputs:
            renames = answer.renames
            resp.outputs = [_replace(ref, name=renames.get(ref.name, ref.name))
                            for ref in resp.outputs]
        if resp.final and answer.shm:
            resp.mapped = sorted(set(answer.mapped) | {self.instance})
        return resp


def _lacks(resp: messages.Response, answer: messages.EnsembleAnswer) -> bool:
    """Whether ``resp`` lacks one of the outputs the ensemble's caller asked for."""
    if len(resp.outputs) >= len(answer.renames):
        names = {ref.name for ref in resp.outputs}
        return any(name not in names for name in answer.renames)
    return True
