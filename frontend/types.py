"""Transport-neutral request/result types shared by FrontendCore and the HTTP/gRPC codecs.

The contract is docs/frontend-core.md: codecs turn wire formats into these
objects (raw little-endian bytes per tensor, BYTES serialised), the core
validates and runs them, and codecs serialise the result straight from the
shared-memory views in :class:`OutputTensor`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from tritond.shm import dtypes


@dataclass(slots=True)
class ShmRef:
    """A client shm region reference from the request parameters."""

    region: str          # registered region name
    offset: int          # shared_memory_offset (default 0)
    byte_size: int       # shared_memory_byte_size


@dataclass(slots=True)
class InputTensor:
    """One request input: raw bytes (BYTES serialised) or a client shm reference."""

    name: str
    datatype: str
    shape: list[int]
    data: bytes | bytearray | memoryview | None = None
    shm: ShmRef | None = None
    parameters: dict = field(default_factory=dict)
    # BYTES only: the element length table the validation walk read (shm/lengths.py),
    # staged after the payload so that the worker needs no walk of its own.
    lengths: bytes | None = None


@dataclass(slots=True)
class RequestedOutput:
    """One requested output and how the transport wants it."""

    name: str
    binary: bool = False        # HTTP only: return as binary blob
    classification: int = 0     # classification extension: top-k
    shm: ShmRef | None = None
    parameters: dict = field(default_factory=dict)


@dataclass(slots=True)
class InferRequest:
    """A transport-neutral inference request."""

    model: str
    version: str = ""
    id: str = ""
    parameters: dict = field(default_factory=dict)
    inputs: list[InputTensor] = field(default_factory=list)
    outputs: list[RequestedOutput] | None = None
    trace: object = None        # a sampled request's frontend.trace.Trace


@dataclass(slots=True)
class OutputTensor:
    """One result tensor; ``data`` is a view into shared memory until the result is released."""

    name: str
    datatype: str
    shape: list[int]
    data: memoryview | None
    requested: RequestedOutput | None
    # BYTES only: the worker's length table of ``data`` (shm/lengths.py), a hint for parsing.
    lengths: memoryview | None = None

    def as_numpy(self) -> np.ndarray:
        """Zero-copy view for fixed-size types; an object array of bytes for BYTES."""
        if self.data is None:
            raise ValueError(f"output '{self.name}' lives in client shared memory")
        if self.datatype == "BYTES":
            n = 1
            for d in self.shape:
                n *= d
            return dtypes.deserialize_bytes(self.data, n, self.lengths).reshape(self.shape)
        return np.frombuffer(self.data, dtype=dtypes.np_dtype(self.datatype)).reshape(self.shape)


@dataclass(slots=True)
class InferResult:
    """The outcome of :meth:`FrontendCore.infer`; call :meth:`release` once serialised."""

    model_name: str
    model_version: str
    id: str
    parameters: dict
    outputs: list[OutputTensor]
    _release: Optional[Callable[[], None]] = None
    final: bool = True          # False: more results of this request follow (decoupled models)
    empty: bool = False         # a bare final flag: no response (decoupled models)
    error: Optional[Exception] = None   # a failed non-final response (TritonError)

    def release(self) -> None:
        """Let the worker reuse the output slots. Idempotent; views in ``outputs`` die here."""
        cb, self._release = self._release, None
        if cb is not None:
            cb()
