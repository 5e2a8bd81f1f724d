"""Response-cache keys and entries: one definition for every process that looks up.

A frontend looks up the requests clients send (``frontend/cache.py``); a worker
looks up the ensemble steps and BLS calls of its model, which never pass a
frontend (``workers/cachelookup.py``). Both key and store exactly as defined
here, so an entry one of them inserted is a hit for the other wherever Triton's
single cache would hit (the same model, version, inputs, requested outputs and
parameters).

Key: a BLAKE2b digest of the model key (its namespaced name), version, each
input sorted by name (name, datatype, shape, byte size, bytes; BYTES in their
serialised form), the requested outputs sorted by name (name, classification
top-k; none when every output is asked for plainly) and the custom parameters
the model sees. (Triton's key is the model, version and inputs only; the outputs
and parameters are here because they change what a tritond model answers.)

Entry: header length, msgpack header (version text, response parameters, per
output name, datatype, shape, byte size), then the outputs' bytes back to back.
"""
from __future__ import annotations

import hashlib
import struct
from typing import Collection, Iterable

import msgspec

_HEAD = struct.Struct("<I")


def key(model: str, version: int, inputs: Iterable[tuple], outputs: Iterable[tuple],
        every: Collection[str], custom: dict | None) -> bytes:
    """``inputs``: (name, datatype, shape, bytes-like) in any order; ``outputs``:
    (name, classification) requested, in any order; ``every``: the model's output
    names (asking for each of them plainly is asking for none: all of them, which is
    what an ensemble step mapping every output asks); ``custom``: parameters or None."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{model}\0{version}\0".encode())
    for name, dtype, shape, data in sorted(inputs, key=lambda t: t[0]):
        h.update(f"{name}\0{dtype}\0{','.join(map(str, shape))}\0{len(data)}\0".encode())
        h.update(data)
    wanted = sorted(outputs)
    if wanted and not any(k for _, k in wanted) and len(wanted) == len(every) \
            and {n for n, _ in wanted} == set(every):
        wanted = []
    for name, classification in wanted:
        h.update(f"out\0{name}\0{classification}\0".encode())
    if custom:
        h.update(repr(sorted(custom.items())).encode())
    return h.digest()


def encode(version: str, parameters: dict, outputs: list[tuple]) -> bytes:
    """An entry of ``outputs``: (name, datatype, shape, bytes-like) each."""
    head = msgspec.msgpack.encode([
        version, parameters, [[n, d, list(s), len(b)] for n, d, s, b in outputs]])
    return b"".join([_HEAD.pack(len(head)), head, *(b for *_, b in outputs)])


def decode(blob) -> tuple[str, dict, list[tuple]]:
    """(version, parameters, [(name, datatype, shape, memoryview of the bytes)])."""
    n = _HEAD.unpack_from(blob)[0]
    view = memoryview(blob)
    version, parameters, metas = msgspec.msgpack.decode(view[4:4 + n])
    pos, outs = 4 + n, []
    for name, dtype, shape, size in metas:
        outs.append((name, dtype, shape, view[pos:pos + size]))
        pos += size
    return version, parameters, outs
