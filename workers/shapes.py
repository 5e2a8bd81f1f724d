"""Model IO as the worker needs it: names, reshapes, and shape translation (from the ModelSpec).

A config ``reshape`` changes the shape the backend sees (inputs) or produces
(outputs) without touching the bytes, so translating is only arithmetic on
shapes: variable (-1) dimensions are carried across in order, as Triton does.
"""
from __future__ import annotations

import math
from typing import Sequence

from tritond.spec import ModelSpec, TensorSpec


def translate(shape: Sequence[int], src: Sequence[int], dst: Sequence[int]) -> tuple[int, ...]:
    """Map ``shape`` (matching pattern ``src``) onto pattern ``dst``.

    The actual sizes of ``src``'s -1 dims fill ``dst``'s -1 dims in order;
    when the counts differ a single -1 in ``dst`` is solved from the element
    count. ValueError when that is impossible.
    """
    shape = tuple(shape)
    total = math.prod(shape)
    free = [s for s, p in zip(shape, src) if p < 0]
    holes = [i for i, p in enumerate(dst) if p < 0]
    out = list(dst)
    if len(free) == len(holes):
        for i, v in zip(holes, free):
            out[i] = v
    elif len(holes) == 1:
        known = math.prod(p for p in dst if p >= 0)
        out[holes[0]] = total // known if known else 0
    elif holes:
        raise ValueError(f"cannot map shape {list(shape)} of {list(src)} onto {list(dst)}")
    if math.prod(out) != total:
        raise ValueError(f"shape {list(shape)} has {total} elements, {out} has {math.prod(out)}")
    return tuple(out)


class ModelIO:
    """The IO of a loaded model (from its ModelSpec), with shape translation both ways."""

    def __init__(self, spec: ModelSpec) -> None:
        self.max_batch_size = spec.max_batch_size
        self.batched = self.max_batch_size > 0
        self.inputs: dict[str, TensorSpec] = {t.name: t for t in spec.inputs}
        self.outputs: dict[str, TensorSpec] = {t.name: t for t in spec.outputs}
        self.output_names = list(self.outputs)
        self.spec = spec
        # batch_output targets -> the input whose shape splits them (workers/batchio.py);
        # Triton's backends scatter the first target of each
        self.scatter = {b.targets[0]: b.source for b in spec.batch_outputs if b.targets}

    def _split(self, shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        shape = tuple(shape)
        return (shape[:1], shape[1:]) if self.batched else ((), shape)

    def backend_shape(self, name: str, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape the backend sees for input ``name`` sent with ``shape``."""
        spec = self.inputs.get(name)
        if spec is None or spec.reshape is None:
            return tuple(shape)
        head, rest = self._split(shape)
        return head + translate(rest, spec.dims, spec.reshape)

    def client_shape(self, name: str, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape reported for output ``name`` produced with ``shape``."""
        spec = self.outputs.get(name)
        if spec is None or spec.reshape is None:
            return tuple(shape)
        head, rest = self._split(shape)
        return head + translate(rest, spec.reshape, spec.dims)

    def requested(self, names: Sequence[str]) -> list[str]:
        """Requested output names; none requested means every config output."""
        return list(names) if names else list(self.output_names)
