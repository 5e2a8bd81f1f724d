"""The sequence parameters Triton's ensemble puts on its responses, and a step's override.

Triton's ensemble keeps a correlation id and sequence flags with every tensor a step
made: the step request's own, unless the step's response named ``sequence_id``,
``sequence_start`` or ``sequence_end`` in its parameters (core ``ConsumeResponse``; a
decoupled model drives a sequence model after it this way). The next step's request
takes them from its input tensors, and the ensemble's response carries them as
parameters whenever it has an output (``CheckAndSetEnsembleOutput``): a client sees
``{"sequence_id": 0, "sequence_start": false, "sequence_end": false}`` on an ensemble
answer even without a sequence. The scheduler (ensemble replies) and a worker answering
an ensemble's caller directly (workers/answers.py) both word them here.
"""
from __future__ import annotations

from tritond.messages import SEQUENCE_END, SEQUENCE_START

_KEYS = ("sequence_id", "sequence_start", "sequence_end")


def response_parameters(correlation_id, flags: int) -> dict:
    """The parameters of an ensemble response whose outputs carry (``correlation_id``,
    ``flags``); an id that is not a string goes out as Triton's int64."""
    if type(correlation_id) is not str:
        correlation_id = int(correlation_id or 0)
        if correlation_id >= 1 << 63:
            correlation_id -= 1 << 64
    return {"sequence_id": correlation_id,
            "sequence_start": bool(flags & SEQUENCE_START),
            "sequence_end": bool(flags & SEQUENCE_END)}


def override(parameters: dict, correlation_id) -> tuple | str | None:
    """A step response's own (correlation id, flags) when its ``parameters`` name one of
    the sequence keys, Triton's error text when one has the wrong type, else None.
    Flags start from none: a response naming only ``sequence_id`` ends no sequence."""
    if not parameters or not any(k in parameters for k in _KEYS):
        return None
    flags = 0
    value = parameters.get("sequence_id")
    if value is not None:
        if type(value) not in (int, str):
            return ("expected parameter 'sequence_id' to be TRITONSERVER_PARAMETER_INT or "
                    "TRITONSERVER_PARAMETER_STRING")
        correlation_id = value
    for key, bit in (("sequence_start", SEQUENCE_START), ("sequence_end", SEQUENCE_END)):
        value = parameters.get(key)
        if value is None:
            continue
        if type(value) is not bool:
            return f"expect parameter '{key}' to be TRITONSERVER_PARAMETER_BOOL"
        if value:
            flags |= bit
    return correlation_id, flags
