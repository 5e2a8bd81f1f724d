"""Config-level request checks with Triton's error texts.

Everything here runs per request, so each check is a dict lookup or a tuple
compare against the tables :class:`tritond.frontend.models.ModelVersion`
precomputed when the model table changed.
"""
from __future__ import annotations

import struct

from tritond.errors import TritonError, invalid_arg, request_tag
from tritond.inputrules import SIGNATURES  # noqa: F401 (the cache's bound, for its tests)
from tritond.shm import lengths
from tritond.shm.dtypes import uniform_elements

from .models import ModelVersion
from .types import InferRequest, InputTensor

_LEN = struct.Struct("<I").unpack_from


def check_inputs(mv: ModelVersion, req: InferRequest) -> tuple[int, list[int]]:
    """Validate every input; returns (batch size or 0, byte size per input).

    Names, datatypes and shapes decide every check but the byte sizes
    (``tritond.inputrules``, shared with the scheduler's checks of ensemble steps and BLS
    calls), so a signature seen before skips straight to those.
    """
    inputs = req.inputs
    key = tuple([(t.name, t.datatype, *t.shape) for t in inputs])
    known = mv.signatures.get(key)
    if known is None:
        known = _check_new(mv, req, key)
    batch, expect = known
    sizes = []
    for t, (elem_size, count) in zip(inputs, expect):
        data = t.data
        if t.shm is None and elem_size is not None and data is not None:
            nbytes = data.nbytes if type(data) is memoryview else len(data)
            if nbytes != count * elem_size:
                _size_error(mv, req, t, count * elem_size, nbytes)
            sizes.append(nbytes)
        else:
            sizes.append(_check_size(mv, req, t, elem_size, count))
    return batch, sizes


def _check_new(mv: ModelVersion, req: InferRequest, key: tuple) -> tuple:
    """The rules for a signature not seen yet (remembered once it passed); the byte sizes
    are then checked as for a known one. Triton checks each input's byte size right after
    that input's own checks, so when the rules refuse the request they run again with the
    sizes checked in that place: an earlier input's size error comes first."""
    try:
        return mv.rules.check(key, req.id)
    except TritonError:
        inputs = req.inputs
        mv.rules.check(key, req.id, lambda i, elem_size, count: _check_size(
            mv, req, inputs[i], elem_size, count))
        raise


def _check_size(mv: ModelVersion, req: InferRequest, t: InputTensor, elem_size,
                count: int) -> int:
    if t.shm is not None:
        nbytes = t.shm.byte_size
        if elem_size is not None and nbytes != count * elem_size:
            _size_error(mv, req, t, count * elem_size, nbytes)
        return nbytes
    data = t.data
    nbytes = 0 if data is None else (data.nbytes if type(data) is memoryview else len(data))
    if elem_size is None:
        t.lengths = check_bytes(mv.name, t.name, data, count, req.id)
    elif nbytes != count * elem_size:
        _size_error(mv, req, t, count * elem_size, nbytes)
    return nbytes


def _size_error(mv: ModelVersion, req: InferRequest, t: InputTensor, expected: int,
                got: int) -> None:
    raise invalid_arg(f"{request_tag(req.id)}input byte size mismatch for input '{t.name}' for "
                      f"model '{mv.name}'. Expected {expected}, got {got}")


def check_bytes(model: str, name: str, data, count: int, request_id: str = "") -> bytes | None:
    """Walk the 4-byte length prefixes of a serialised BYTES tensor (no element copies).

    Returns the length table the walk read (``shm.lengths``) when the worker's split
    pays for it (many elements, not all of one length), else None.
    """
    buf = b"" if data is None else data
    end = len(buf) if type(buf) is not memoryview else buf.nbytes
    if uniform_elements(buf, count) is not None:     # fixed-width strings: one numpy check
        return None
    if count < lengths.MIN_ELEMENTS:
        if _walk(buf, count) != end:
            _check_walk(model, name, buf, end, count, request_id)
        return None
    table = lengths.short_table(buf, count)          # short elements: numpy, no walk
    if table is not None:
        return table
    sizes = [0] * count
    if _walk_lengths(buf, sizes) != end:
        _check_walk(model, name, buf, end, count, request_id)
    return lengths.table(sizes)


def _walk(buf, count: int) -> int:
    """Where ``count`` elements end, with no per-element bounds checks (-1: a prefix
    lies past the end). Offsets only grow, so a length that ran past the end shows as
    an unreadable next prefix or a final offset past the end: the caller compares it
    with the buffer's end and only then walks again, checked, for the error's words."""
    pos = 0
    try:
        for _ in range(count):
            (n,) = _LEN(buf, pos)
            pos += 4 + n
    except struct.error:
        return -1
    return pos


def _walk_lengths(buf, sizes: list) -> int:
    """:func:`_walk` that also keeps each element's length in ``sizes``."""
    pos = 0
    try:
        for i in range(len(sizes)):
            (n,) = _LEN(buf, pos)
            sizes[i] = n
            pos += 4 + n
    except struct.error:
        return -1
    return pos


def _check_walk(model: str, name: str, buf, end: int, count: int,
                request_id: str = "") -> None:
    """The error of a BYTES buffer that does not hold ``count`` elements, in the words of
    Triton's core (ValidateBytesInputs), which walks it in the same order; a last element
    running past the end is refused too (the core leaves it to the backend, so that one
    has no request id)."""
    tag = request_tag(request_id)
    where = f"for inference input '{name}' for model '{model}'"
    pos = checked = 0
    while pos < end:
        if end - pos < 4:
            raise invalid_arg(
                f"{tag}incomplete string length indicator {where}, expecting 4 bytes but only "
                f"{end - pos} bytes available. Please make sure the string length indicator "
                f"is in one buffer.")
        (n,) = _LEN(buf, pos)
        checked += 1
        if checked > count:
            raise invalid_arg(f"{tag}unexpected number of string elements {checked} {where}, "
                              f"expecting {count}")
        pos += 4 + n
        if pos > end:
            raise invalid_arg(f"incomplete string {where}, expecting string of length {n} but "
                              f"only {end - pos + n} bytes available")
    if checked != count:
        raise invalid_arg(f"{tag}expected {count} string elements {where}, got {checked}")


def check_outputs(mv: ModelVersion, req: InferRequest) -> None:
    """Requested outputs must exist and be unique."""
    outputs = req.outputs
    if not outputs:
        return
    specs = mv.outputs
    seen = set()
    for o in outputs:
        if o.name not in specs:
            raise invalid_arg(f"unexpected inference output '{o.name}' for model '{mv.name}'")
        if o.name in seen:
            raise invalid_arg(f"{request_tag(req.id)}output '{o.name}' already exists in "
                              "request")   # Triton's words
        seen.add(o.name)
        if o.classification and o.shm is not None:
            raise invalid_arg("Output can't set both 'shared_memory_region' and 'classification'")
