"""Check a config's inputs and outputs against an ONNX model's, as Triton's onnxruntime
backend does at load (``ValidateInputs``/``ValidateOutputs``, ``CompareDimsSupported``).

Pure: it takes the session's tensor descriptions (name, ONNX type string, shape) so that
the worker (after creating its session) and ``tritond check`` run the same rules, and a
config that disagrees with its model fails to load instead of failing every request.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple

from tritond.errors import Code, TritonError

ONNX_TO_CONFIG = {
    "tensor(bool)": "TYPE_BOOL", "tensor(uint8)": "TYPE_UINT8", "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32", "tensor(uint64)": "TYPE_UINT64", "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16", "tensor(int32)": "TYPE_INT32", "tensor(int64)": "TYPE_INT64",
    "tensor(float16)": "TYPE_FP16", "tensor(float)": "TYPE_FP32", "tensor(double)": "TYPE_FP64",
    "tensor(string)": "TYPE_STRING", "tensor(bfloat16)": "TYPE_BF16",
}


class Tensor(NamedTuple):
    """One model input or output as ONNX Runtime describes it."""

    name: str
    type: str          # "tensor(float)"
    dims: list[int]    # -1 for symbolic or unknown dims


def dims(shape) -> list[int]:
    """ORT reports symbolic or unknown dims as str/None: Triton's -1."""
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def describe(args: Iterable) -> list[Tensor]:
    """``session.get_inputs()``/``get_outputs()`` as :class:`Tensor` rows."""
    return [Tensor(a.name, a.type, dims(a.shape)) for a in args]


def check(model: str, config: dict, inputs: list[Tensor], outputs: list[Tensor],
          initializers: list[Tensor] = ()) -> None:
    """Raise INVALID_ARG naming the tensor and both values at the first disagreement.
    ``initializers``: the model's overridable initializers, which ORT does not count
    among its inputs but a request may override (Triton's optional inputs)."""
    mbs = int(config.get("max_batch_size", 0) or 0)
    wanted = config.get("input") or []
    batch_inputs = config.get("batch_input") or []
    # Triton leaves optional inputs out of the count: it takes them for overridable
    # initializers, so an optional plain graph input makes the count disagree
    required = [io for io in wanted if not io.get("optional")]
    expected = len(required) + _sequence_inputs(config) + len(batch_inputs)
    if len(inputs) != expected:
        raise _error(f"unable to load model '{model}', configuration expects {expected} "
                     f"inputs, model provides {len(inputs)}")
    scattered = {t for b in config.get("batch_output") or [] for t in b.get("target_name", [])}
    for kind, ios, tensors in (("input", wanted, [*inputs, *initializers]),
                               ("output", config.get("output") or [], outputs)):
        by_name = {t.name: t for t in tensors}
        for io in ios:
            if kind == "input" and io.get("optional") and mbs != 0:
                raise _error(f"unable to load model '{model}', optional input "
                             f"'{io.get('name', '')}' is not supported for models that "
                             "support batching")
            tensor = by_name.get(io.get("name", ""))
            if tensor is None:
                allowed = ", ".join(sorted(by_name))
                raise _error(f"unexpected inference {kind} '{io.get('name', '')}', "
                             f"allowed {kind}s are: {allowed}")
            _check_type(model, kind, io, tensor)
            if kind == "input" and io.get("allow_ragged_batch"):
                _check_flat(model, io, tensor)      # fed flat (workers/batchio.py)
            elif io.get("name") not in scattered:   # a batch output's shape is its own
                _check_dims(model, io, tensor, mbs)
    _check_batch_inputs(model, batch_inputs, {t.name: t for t in inputs})


def _sequence_inputs(config: dict) -> int:
    seq = config.get("sequence_batching")
    if not isinstance(seq, dict):
        return 0
    return len(seq.get("control_input") or []) + len(seq.get("state") or [])


def _check_flat(model: str, io: dict, tensor: Tensor) -> None:
    """A ragged input is fed flat, so the model must take it as [-1] (Triton's
    ValidateInputs, whatever max_batch_size; its config dims are not compared)."""
    name = io.get("name", "")
    if io.get("optional"):
        raise _error(f"unable to load model '{model}', configuration expects model provides "
                     f"input with shape [-1] for ragged input '{name}', which "
                     f"is not supported for optional input")
    if tensor.dims != [-1]:
        # two spaces after "[-1]": Triton's message has them
        raise _error(f"unable to load model '{model}', configuration expects model provides "
                     f"input with shape [-1]  for ragged input '{name}', model provides "
                     f"{_shape(tensor.dims)}")


def _check_batch_inputs(model: str, batch_inputs: list, by_name: dict) -> None:
    """Each batch input target is a model input of the batch input's type."""
    for batch in batch_inputs:
        for target in batch.get("target_name", []):
            tensor = by_name.get(target)
            if tensor is None:
                allowed = ", ".join(sorted(by_name))
                raise _error(f"unexpected batch input '{target}', allowed inputs are: {allowed}")
            _check_type(model, "batch input", {"data_type": batch.get("data_type")}, tensor)


def _check_type(model: str, kind: str, io: dict, tensor: Tensor) -> None:
    provided = ONNX_TO_CONFIG.get(tensor.type, tensor.type)
    if io.get("data_type") != provided:
        raise _error(f"unable to load model '{model}', configuration expects datatype "
                     f"{io.get('data_type')} for {kind} '{tensor.name}', model provides "
                     f"{provided}")


def _check_dims(model: str, io: dict, tensor: Tensor, mbs: int) -> None:
    reshape = io.get("reshape")
    config_dims = [int(d) for d in (reshape.get("shape", []) if isinstance(reshape, dict)
                                    else io.get("dims", []))]
    if not tensor.dims:   # a scalar model tensor: only [1] (or []) fits
        if any(d != 1 for d in config_dims):
            raise _error(f"unable to load model '{model}', scalar tensor '{tensor.name}', "
                         f"should only provide 1 in the model configuration when the model "
                         f"doesn't support batching. Model configuration provided: "
                         f"{_shape(config_dims)}.")
        return
    if mbs > 0 and tensor.dims[0] != -1:
        raise _error(f"model '{model}', tensor '{tensor.name}': for the model to support "
                     f"batching the shape should have at least 1 dimension and the first "
                     f"dimension must be -1; but shape expected by the model is "
                     f"{_shape(tensor.dims)}")
    full = [-1, *config_dims] if mbs > 0 else config_dims
    # A dynamic dim on either side accepts the other (Triton's onnxruntime backend
    # is exact for outputs; tritond lets a fixed config dim narrow a dynamic one).
    same = len(full) == len(tensor.dims) and all(
        m == c or m == -1 or c == -1 for m, c in zip(tensor.dims, full))
    if not same:
        how = ("dimensions (an initial batch dimension because max_batch_size > 0 followed "
               "by the explicit tensor shape, making complete shape " if mbs > 0
               else "dimensions (shape ")
        raise _error(f"model '{model}', tensor '{tensor.name}': the model expects "
                     f"{len(tensor.dims)} dimensions (shape {_shape(tensor.dims)}) but the "
                     f"model configuration specifies {len(full)} {how}{_shape(full)})")


def _shape(values: list[int]) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def _error(message: str) -> TritonError:
    return TritonError(Code.INVALID_ARG, message)
