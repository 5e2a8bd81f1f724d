"""Config-level request checks with Triton's error texts.

Everything here runs per request, so each check is a dict lookup or a tuple
compare against the tables :class:`tritond.frontend.models.ModelVersion`
precomputed when the model table changed.
"""
from __future__ import annotations

import math
import struct

from tritond.errors import BATCH_NOTE as _BATCH_NOTE, dims_str, invalid_arg, names_str, request_tag
from tritond.shm import lengths
from tritond.shm.dtypes import uniform_elements

from .models import ModelVersion
from .types import InferRequest, InputTensor

_LEN = struct.Struct("<I").unpack_from


SIGNATURES = 64     # validated input signatures kept per model version


def check_inputs(mv: ModelVersion, req: InferRequest) -> tuple[int, list[int]]:
    """Validate every input; returns (batch size or 0, byte size per input).

    Names, datatypes and shapes decide every check but the byte sizes, so a
    signature seen before (``mv.signatures``) skips straight to those.
    """
    inputs = req.inputs
    key = tuple([(t.name, t.datatype, *t.shape) for t in inputs])
    known = mv.signatures.get(key)
    if known is None:
        return _check_new(mv, req, key)
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


def _check_new(mv: ModelVersion, req: InferRequest, key: tuple) -> tuple[int, list[int]]:
    """The full check of a signature not seen yet; remembered once it passed. Triton's
    core prefixes its errors with the request's id (``request_tag``); the model's own
    name checks (model.cc) have none."""
    inputs = req.inputs
    specs = mv.inputs
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):       # Triton refuses it as it reads the request
        dup = next(n for i, n in enumerate(names) if n in names[:i])
        raise invalid_arg(f"{request_tag(req.id)}input '{dup}' already exists in request")
    if len(inputs) > len(specs) or len(inputs) < len(mv.required):
        _count_error(mv, req)
    batching = mv.max_batch_size > 0
    batch = -1
    sizes = []
    expect = []
    seen = set()
    for t in inputs:
        spec = specs.get(t.name)
        if spec is None:
            raise invalid_arg(f"unexpected inference input '{t.name}' for model '{mv.name}'")
        seen.add(t.name)
        if t.datatype != spec.datatype:
            raise invalid_arg(f"{request_tag(req.id)}inference input '{t.name}' data-type is "
                              f"'{t.datatype}', but model '{mv.name}' expects '{spec.datatype}'")
        shape = t.shape
        for d in shape:
            if d < 0:
                raise invalid_arg(f"{request_tag(req.id)}All input dimensions should be specified "
                                  f"for input '{t.name}' for model '{mv.name}', got "
                                  f"{dims_str(shape)}")
        dims = shape
        if batching and not spec.shape_tensor:
            if not shape:
                raise invalid_arg(f"{request_tag(req.id)}input '{t.name}' has no shape but model "
                                  f"requires batch dimension for '{mv.name}'")
            if batch < 0:
                batch = shape[0]
            elif shape[0] != batch:
                raise invalid_arg(f"{request_tag(req.id)}input '{t.name}' batch size does not "
                                  f"match other inputs for '{mv.name}'")
            dims = shape[1:]
        if not _dims_match(spec.dims, spec.wildcard, dims):
            expected = (-1, *spec.dims) if batching and not spec.shape_tensor else spec.dims
            note = _BATCH_NOTE if batching else ""      # Triton's ". " stays without one
            raise invalid_arg(f"{request_tag(req.id)}unexpected shape for input '{t.name}' for "
                              f"model '{mv.name}'. Expected {dims_str(expected)}, got "
                              f"{dims_str(shape)}. {note}")
        count = math.prod(shape)
        expect.append((spec.elem_size, count))
        sizes.append(_check_size(mv, req, t, spec.elem_size, count))
    if missing := mv.required.difference(seen):
        _count_error(mv, req, missing)
    if batching and batch > mv.max_batch_size:
        raise invalid_arg(f"{request_tag(req.id)}inference request batch-size must be <= "
                          f"{mv.max_batch_size} for '{mv.name}'")
    batch = max(batch, 0) if batching else 0
    signatures = mv.signatures
    if len(signatures) >= SIGNATURES:     # many shapes (no batching, odd sizes): start over
        signatures.clear()
    signatures[key] = (batch, tuple(expect))
    return batch, sizes


def _dims_match(expected: tuple, wildcard: bool, got) -> bool:
    if not wildcard:
        return expected == tuple(got)
    if len(expected) != len(got):
        return False
    for e, g in zip(expected, got):
        if e != -1 and e != g:
            return False
    return True


def _count_error(mv: ModelVersion, req: InferRequest, missing=None) -> None:
    got = [t.name for t in req.inputs]
    if missing is None:
        missing = mv.required.difference(got)
    n_all, n_req = len(mv.inputs), len(mv.required)
    detail = (f"Got input(s) {names_str(got)}, but missing required input(s) "
              f"{names_str(sorted(missing))}. Please provide all required input(s).")
    tag = request_tag(req.id)
    if n_all == n_req:
        raise invalid_arg(f"{tag}expected {n_all} inputs but got {len(got)} inputs for model "
                          f"'{mv.name}'. {detail}")
    raise invalid_arg(f"{tag}expected number of inputs between {n_req} and {n_all} but got "
                      f"{len(got)} inputs for model '{mv.name}'. {detail}")


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
