"""The scheduler's view of the messages it forwards.

The scheduler reads a few fields of a :class:`messages.Request` (who, which
model, batch size, priority, timeout, sequence fields) and forwards the rest
to a worker inside an ``Execute``. :class:`RequestView` decodes the fields it
reads and keeps the others as :class:`msgspec.Raw` (views of the received
frame), which are written back untouched when the Execute is encoded: the
tensor references, outputs and parameters are never decoded or rebuilt here.

The wire format is ``messages.Request``'s, field for field: both are
array_like structs with the same tag, field order and defaults (a default Raw
holds the msgpack bytes of the default value, so trailing defaults are
omitted exactly as ``messages.Request`` omits them). Workers decode the full
``messages.Execute``. tests/scheduler/test_wire.py fails when the two drift.

A Raw field references the frame it was decoded from, which is a ``bytes``
object per read (never a reused buffer), so a queued request only keeps its
own frame alive.
"""
from __future__ import annotations

from typing import Union, get_args

import msgspec

from tritond import messages

Raw = msgspec.Raw
_EMPTY_LIST = Raw(b"\x90")       # msgpack []
_EMPTY_STR = Raw(b"\xa0")        # msgpack ""
_EMPTY_MAP = Raw(b"\x80")        # msgpack {}
_NIL = Raw(b"\xc0")              # msgpack nil


class RequestView(msgspec.Struct, tag=1, array_like=True, omit_defaults=True):
    """``messages.Request`` as the scheduler decodes it (same fields, same order).

    ``correlation_id`` and ``flags`` are decoded: a sequence policy reads them.
    ``inputs`` is read only to batch (``dims_decode``), and only by the dynamic batcher.
    """

    rid: int
    frontend: str
    model: str
    version: int
    inputs: msgspec.Raw                # list[TensorRef]
    outputs: msgspec.Raw = _EMPTY_LIST  # list[OutputSpec]
    batch: int = 0
    request_id: msgspec.Raw = _EMPTY_STR
    priority: int = 0
    timeout_us: int = 0
    correlation_id: Union[int, str] = 0
    flags: int = 0
    parameters: msgspec.Raw = _EMPTY_MAP
    arrival_ns: int = 0
    trace: list[int] = []              # traced requests only (QUEUE_START appended here)
    answer: msgspec.Raw = _NIL         # Optional[EnsembleAnswer] (set by the scheduler)
    unary: bool = False                # BLS exec() without decoupled=True
    cache: bool = False                # a step or BLS call of a cached model (set here)


class ExecuteView(msgspec.Struct, tag=10, array_like=True, omit_defaults=True):
    """``messages.Execute`` carrying :class:`RequestView` s (a full ``messages.Request``
    encodes the same way, so a policy may also put one here)."""

    batch_id: int
    requests: list[RequestView]
    releases: list[tuple[str, int]] = []
    slots: list[messages.SequenceSlot] = []
    ended: list[int] = []


class InputDims(msgspec.Struct, array_like=True, gc=False):
    """The leading fields of a ``messages.TensorRef``: what batching compares
    (array_like decoding ignores the trailing fields)."""

    name: str
    dtype: str
    shape: list[int]


# Raw ``inputs`` -> list[InputDims] (batcher.shape_key; a request a policy built
# itself may carry decoded TensorRefs, which have the same attributes).
dims_decode = msgspec.msgpack.Decoder(list[InputDims]).decode


# The scheduler's inbox: the closed set of messages.TO_SCHEDULER, with the view
# in place of Request (so the set follows messages.py when it changes).
TO_SCHEDULER = Union[tuple(RequestView if t is messages.Request else t
                           for t in get_args(messages.TO_SCHEDULER))]

# Unknown answers go to the frontend a Request names, as for the full message.
messages.SENDER[RequestView] = messages.SENDER[messages.Request]
