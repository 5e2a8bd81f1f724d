"""TensorRT engine I/O rules that need no ``tensorrt`` (tested on any host).

Triton's TensorRT backend binds config tensors to engine tensors by name; an
engine with dynamic dimensions accepts a shape only inside an optimization
profile's [min, max] box. A batching model (``max_batch_size > 0``) has the
batch as the engine's first dimension, which the config's dims leave out.
"""
from __future__ import annotations

from typing import Sequence

from tritond.errors import Code, TritonError

# TensorRT DataType name (trt.DataType.<name>) -> config datatype
TRT_TO_CONFIG = {
    "FLOAT": "FP32", "HALF": "FP16", "BF16": "BF16", "INT8": "INT8", "INT32": "INT32",
    "INT64": "INT64", "BOOL": "BOOL", "UINT8": "UINT8",
}


def check_bindings(model: str, config: dict[str, str], engine: dict[str, str],
                   what: str) -> None:
    """Every config tensor (name -> datatype) is an engine tensor of that type."""
    for name, datatype in config.items():
        if name not in engine:
            raise TritonError(Code.INVALID_ARG,
                              f"unable to load model '{model}': {what} '{name}' is not an "
                              f"{what} of the engine (engine {what}s: {', '.join(sorted(engine))})")
        have = TRT_TO_CONFIG.get(engine[name], engine[name])
        if have != datatype:
            raise TritonError(Code.INVALID_ARG,
                              f"unable to load model '{model}': unexpected datatype TYPE_{have} "
                              f"for {what} '{name}', expecting TYPE_{datatype}")


def pick_profile(shapes: dict[str, Sequence[int]],
                 profiles: list[dict[str, tuple[Sequence[int], Sequence[int]]]]) -> int:
    """The first profile whose [min, max] box holds every input shape; INVALID_ARG if none.

    ``profiles[i][name]`` is (min, max) of input ``name`` in profile i.
    """
    for index, box in enumerate(profiles):
        if all(_inside(shape, *box[name]) for name, shape in shapes.items()):
            return index
    worst = next(iter(shapes))
    for name, shape in shapes.items():
        if not any(_inside(shape, *box[name]) for box in profiles):
            worst = name
            break
    boxes = "; ".join(f"min {list(box[worst][0])} max {list(box[worst][1])}" for box in profiles)
    raise TritonError(Code.INVALID_ARG,
                      f"input '{worst}' shape {list(shapes[worst])} is outside the engine's "
                      f"optimization profiles ({boxes})")


def _inside(shape: Sequence[int], low: Sequence[int], high: Sequence[int]) -> bool:
    return len(low) == len(shape) and all(lo <= s <= hi for lo, s, hi in zip(low, shape, high))
