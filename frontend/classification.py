"""The classification extension: top-k "value:index[:label]" strings.

Applied by the core on the output array, so HTTP and gRPC return the same
BYTES tensor.
"""
from __future__ import annotations

import struct

import numpy as np

from tritond.errors import invalid_arg

_SUPPORTED = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
              "FP32", "FP64"}
MAX_ELEMENTS = 1_000_000
_LEN = struct.Struct("<I").pack


def classify(name: str, datatype: str, arr: np.ndarray, k: int, batching: bool,
             labels: list[str] | None = None) -> tuple[bytes, list[int]]:
    """Serialised BYTES data and shape of the top-``k`` classes of ``arr``.

    ``batching``: the model batches and the output has dims, so each row of the
    first dimension is classified separately (shape ``[batch, k]``).
    """
    if datatype not in _SUPPORTED:
        raise invalid_arg(f"class result not available for output '{name}' due to unsupported "
                          f"type '{datatype}'")
    if arr.size > MAX_ELEMENTS:
        raise invalid_arg(f"output '{name}' has {arr.size} elements, classification supports at "
                          f"most {MAX_ELEMENTS}")
    rows = arr.reshape(arr.shape[0], -1) if batching and arr.ndim > 0 else arr.reshape(1, -1)
    per_row = rows.shape[1]
    k = min(k, per_row)
    fmt = _float_str if datatype in ("FP32", "FP64") else str
    parts = []
    for row in rows:
        # Descending by value; Triton's std::sort is unstable, so tie order is unspecified.
        order = np.argsort(row, kind="stable")[::-1][:k]
        for idx, val in zip(order.tolist(), row[order].tolist()):
            s = f"{fmt(val)}:{idx}"
            if labels is not None and idx < len(labels) and labels[idx]:
                s += ":" + labels[idx]
            b = s.encode()
            parts.append(_LEN(len(b)))
            parts.append(b)
    shape = [rows.shape[0], k] if batching else [k]
    return b"".join(parts), shape


def _float_str(v: float) -> str:
    """C++ std::to_string(float/double): printf("%f")."""
    return "%f" % v
