"""Ragged batching: batch inputs made from the formed batch, flat ragged inputs,
and batch outputs scattered by an input's shape (Triton's ``batch_input`` /
``batch_output``, docs/user_guide/ragged_batching.md).

A batch input's value is only known once the batch is formed, so it is made
here, in the worker, from the shapes of the requests the Execute brought; it
travels to the backend as one more input (a small host array, like Triton's
backends make it). An ``allow_ragged_batch`` input whose model takes it as one
dimension ([-1]) is fed flat: every request's elements one after the other.
The requests' own tensors stay the zero-copy shm views; only a batch of
several is joined (one copy, as any fused batch).

Pure of sockets and shm: :class:`BatchIO` joins inputs and
:func:`scatter_shape` says how much of a batch output is each request's;
``workers/executor.py`` and ``workers/responses.py`` call them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tritond.errors import Code, TritonError
from tritond.shm.cuda import is_device_array
from tritond.spec import BatchInput, ModelSpec, TensorSpec

from .backend import WorkRequest

_DTYPES = {"INT32": np.int32, "FP32": np.float32}


class Unfusable(Exception):
    """The requests cannot be joined into one batch (differing inputs or shapes)."""


def value(batch: BatchInput, shapes: Sequence[Sequence[int]]) -> np.ndarray:
    """The batch input ``batch`` for requests whose source input has ``shapes``
    (each with its batch dimension first), as Triton's backend utility computes it."""
    dtype = _DTYPES[batch.datatype]
    counts = [math.prod(s) for s in shapes]
    kind = batch.kind
    if kind == "BATCH_ELEMENT_COUNT":
        return np.array(counts, dtype)
    if kind == "BATCH_ACCUMULATED_ELEMENT_COUNT":
        return np.cumsum(counts, dtype=np.int64).astype(dtype)
    if kind == "BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO":
        return np.cumsum([0, *counts], dtype=np.int64).astype(dtype)
    if kind == "BATCH_MAX_ELEMENT_COUNT_AS_SHAPE":
        # only the shape carries information; Triton leaves the data uninitialised
        return np.zeros(max(counts, default=0), dtype)
    if kind in ("BATCH_ITEM_SHAPE", "BATCH_ITEM_SHAPE_FLATTEN"):
        # one row per batch item (a request of batch n gives n rows): its shape
        # without the batch dimension
        rank = len(shapes[-1]) - 1 if shapes else 0
        rows = [list(s[1:]) for s in shapes for _ in range(s[0])]
        item = np.array(rows, dtype).reshape(len(rows), rank)
        return item if kind == "BATCH_ITEM_SHAPE" else item.reshape(-1)
    raise TritonError(Code.INTERNAL, f"unsupported batch input kind '{kind}'")


def scatter_shape(output: TensorSpec, source: Sequence[int], batched: bool) -> tuple[int, ...]:
    """A request's shape of batch output ``output`` (BATCH_SCATTER_WITH_INPUT_SHAPE):
    the output's dims (batch dim first) with each -1 taken from the same
    dimension of the request's ``source`` input shape, as Triton does."""
    dims = output.reshape if output.reshape is not None else output.dims
    pattern = [-1, *dims] if batched else list(dims)
    shape = []
    for i, d in enumerate(pattern):
        if d != -1:
            shape.append(d)
        elif i < len(source):
            shape.append(int(source[i]))
        else:
            raise TritonError(Code.INVALID_ARG,
                              f"batch output '{output.name}' has dims {list(pattern)}, more "
                              f"than the shape {list(source)} of its source input")
    return tuple(shape)


class BatchIO:
    """One model's batch inputs and flat ragged inputs, joined for the backend."""

    def __init__(self, spec: ModelSpec, flat: frozenset = frozenset()) -> None:
        self.inputs = spec.batch_inputs
        self.flat = flat             # ragged inputs the model takes as [-1] (backend says)
        self.active = bool(self.inputs or self.flat or spec.batch_outputs)

    def gather(self, items: list[WorkRequest]) -> WorkRequest:
        """One WorkRequest for ``items``: their inputs joined, plus the batch inputs.

        Unfusable when the requests carry different inputs or differing shapes
        of a non-flat input (the caller then runs them one at a time); a
        TritonError when a batch input's source input is missing.
        """
        names = list(items[0].inputs)
        if any(list(w.inputs) != names for w in items[1:]):
            raise Unfusable()
        inputs = {n: self._join(n, [w.inputs[n] for w in items]) for n in names}
        for batch in self.inputs:
            if batch.source not in names:
                raise TritonError(Code.INVALID_ARG,
                                  f"batch input '{batch.targets[0]}' needs input "
                                  f"'{batch.source}', which the request does not have")
            made = value(batch, [w.inputs[batch.source].shape for w in items])
            for target in batch.targets:
                inputs[target] = made
        wanted = list(dict.fromkeys(n for w in items for n in w.outputs))
        return WorkRequest(items[0].request, inputs, wanted)

    def _join(self, name: str, arrays: list):
        if name in self.flat:
            arrays = [a.reshape(-1) for a in arrays]
        if len(arrays) == 1:
            return arrays[0]
        if any(a.shape[1:] != arrays[0].shape[1:] for a in arrays):
            raise Unfusable()
        if any(is_device_array(a) for a in arrays):
            import cupy
            return cupy.concatenate([cupy.asarray(a) for a in arrays])
        return np.concatenate(arrays)
