"""The requested-output check for BLS calls (a frontend checks a client's: frontend/validate.py).

Triton's core refuses a request naming an output its model does not have, whoever made it
(model.cc's "unexpected inference output"); a BLS call gets that INVALID_ARG, which
python_backend then words as its executor's failure (``SchedulerCore.add``). Without it a
call asking for an unknown output was answered with no outputs at all.
"""
from __future__ import annotations

import msgspec

from tritond import messages
from tritond.errors import Code


class _OutputName(msgspec.Struct, array_like=True):
    """The leading field of a ``messages.OutputSpec`` (array_like decoding skips the rest)."""

    name: str


_decode = msgspec.msgpack.Decoder(list[_OutputName]).decode
_NONE = b"\x90"          # msgpack []: every output of the model


def output_error(spec, outputs: msgspec.Raw) -> messages.ErrorInfo | None:
    """The INVALID_ARG of the first requested output ``spec`` lacks, or None."""
    if bytes(outputs) == _NONE:
        return None
    names = {t.name for t in spec.outputs}
    for o in _decode(outputs):
        if o.name not in names:
            return messages.ErrorInfo(int(Code.INVALID_ARG), (
                f"unexpected inference output '{o.name}' for model '{spec.name}'"))
    return None
