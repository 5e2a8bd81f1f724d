"""Raw binary infer requests: ``Inference-Header-Content-Length: 0``.

The whole body is the data of the model's only input; there is no JSON, so
the name, datatype and shape come from the model config, as Triton's core
does for a raw input (``InferenceRequest::Normalize``, ``AddRawInput``):

- the model must have exactly one input;
- a non-BYTES input may have at most one variable dimension, whose size is
  the byte count divided by the fixed part (a remainder is then caught by the
  ordinary byte-size check, with its ordinary error);
- a BYTES input must have shape [1]: the body is that one element, and the
  4-byte length prefix Triton prepends is added here;
- a batching model gets batch 1, and every output comes back binary.
"""
from __future__ import annotations

import math
import struct

from tritond.errors import invalid_arg, request_tag

# A raw body has no JSON header and so no request id: Triton's core says so in front.
_NO_ID = request_tag("")

from ..models import ModelVersion
from ..types import InferRequest, InputTensor


def decode_raw(body, mv: ModelVersion, model: str, version: str) -> tuple[InferRequest, bool]:
    """(request, binary_data_output default = True) for a raw body sent to ``mv``."""
    if len(mv.inputs) != 1:
        raise invalid_arg(
            f"{_NO_ID}Raw request must only have 1 input (found 1) to be deduced but got "
            f"{len(mv.inputs)} inputs in '{mv.name}' model configuration")
    spec = next(iter(mv.inputs.values()))
    dims = list(spec.dims)
    if spec.datatype == "BYTES":
        if dims != [1]:
            raise invalid_arg(f"{_NO_ID}For BYTE datatype raw input '{spec.name}', the model "
                              f"must have input shape [1]")
        # One copy of a (rare, small) BYTES body: the serialised form the core expects.
        data = struct.pack("<I", len(body)) + bytes(body)
    else:
        if dims.count(-1) > 1:
            raise invalid_arg(f"{_NO_ID}The shape of the raw input '{spec.name}' can not be "
                              f"deduced because there are more than one variable-sized dimension")
        if -1 in dims:
            fixed = math.prod(d for d in dims if d != -1) * (spec.elem_size or 1)
            dims[dims.index(-1)] = len(body) // fixed if fixed else 0
        data = memoryview(body)
    shape = [1, *dims] if mv.max_batch_size > 0 and not spec.shape_tensor else dims
    req = InferRequest(model, version)
    req.inputs.append(InputTensor(spec.name, spec.datatype, shape, data))
    return req, True
