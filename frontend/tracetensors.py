"""The TENSORS trace level: Triton's ``{"id", "activity", "tensor": {...}}`` objects.

``TENSOR_QUEUE_INPUT`` for each input as it is queued and ``TENSOR_BACKEND_OUTPUT``
for each output the model produced, written by the frontend, which holds both
(the inputs it staged, the outputs' shared-memory views). Values are written as
Triton's tracer writes them (C++ stream formatting: six significant digits for
floats, 1/0 for BOOL, each BYTES element in quotes, nothing for FP16/BF16), except
INT8/UINT8, which Triton prints as raw characters and tritond as numbers (raw
bytes would not be valid JSON). Only traced requests at this level pay for it.
"""
from __future__ import annotations

import json

import numpy as np

from tritond.shm import dtypes

NO_DATA = ("FP16", "BF16")       # Triton writes their data as an empty string


def tensor_object(trace_id: int, activity: str, name: str, datatype: str, shape: list,
                  data) -> str:
    tensor = {"name": name, "data": _data(datatype, shape, data),
              "shape": ",".join(str(d) for d in shape), "dtype": datatype}
    return json.dumps({"id": trace_id, "activity": activity, "tensor": tensor},
                      separators=(",", ":"))


def _data(datatype: str, shape: list, data) -> str:
    if data is None or datatype in NO_DATA:
        return ""
    count = dtypes.num_elements(shape)
    if datatype == "BYTES":
        items = dtypes.deserialize_bytes(data, count).reshape(-1)
        return ",".join('"' + bytes(v).decode("utf-8", "backslashreplace") + '"'
                        for v in items)
    values = np.frombuffer(data, dtype=dtypes.np_dtype(datatype), count=count)
    if datatype in ("FP32", "FP64"):
        return ",".join(format(float(v), "g") for v in values)
    if datatype == "BOOL":
        return ",".join("1" if v else "0" for v in values)
    return ",".join(str(int(v)) for v in values)
