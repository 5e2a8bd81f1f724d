"""BF16 through ONNX Runtime: numpy has no bfloat16, so those tensors travel as
their raw 16-bit patterns (uint16 arrays, as tritond stores BF16) and cross the
ORT boundary as OrtValues of element type bfloat16."""
from __future__ import annotations

import ctypes

import numpy as np

BF16 = "tensor(bfloat16)"
_ONNX_BFLOAT16 = 16     # onnx.TensorProto.BFLOAT16


def bf16_names(session) -> set[str]:
    """Inputs and outputs of a session that are bfloat16."""
    return {t.name for t in (*session.get_inputs(), *session.get_outputs()) if t.type == BF16}


def run(session, output_names: list[str], feed: dict[str, np.ndarray], bf16: set[str]) -> list:
    """``session.run`` for a model with bfloat16 tensors; BF16 outputs come back as uint16."""
    import onnxruntime as ort

    values = {}
    for name, arr in feed.items():
        arr = np.ascontiguousarray(arr)
        if name in bf16:
            values[name] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
                arr.view(np.uint16), _ONNX_BFLOAT16)
        else:
            values[name] = ort.OrtValue.ortvalue_from_numpy(arr)
    outs = session.run_with_ort_values(output_names, values)
    return [_bits(v) if name in bf16 else v.numpy() for name, v in zip(output_names, outs)]


def _bits(value) -> np.ndarray:
    shape = value.shape()
    count = int(np.prod(shape)) if shape else 1
    if count == 0:
        return np.zeros(shape, np.uint16)
    raw = (ctypes.c_uint16 * count).from_address(value.data_ptr())
    return np.frombuffer(raw, np.uint16).reshape(shape).copy()  # ORT frees its buffer
