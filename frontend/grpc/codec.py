"""ModelInferRequest -> :class:`InferRequest`.

Tensor bytes are never copied here: ``raw_input_contents`` entries are the
``bytes`` protobuf made (or, for big requests, memoryview slices of the
received message: ``wire.parse_request``), handed to the core, which copies
each once into shared memory. Responses of both infer RPCs are encoded by
``wire``, straight from the shared-memory views.
"""
from __future__ import annotations

from tritond.errors import invalid_arg
from tritond.frontend.types import InferRequest, InputTensor, RequestedOutput
from tritond.protos import grpc_service_pb2 as pb

from . import contents, params


def decode_request(msg: pb.ModelInferRequest, raw=None) -> InferRequest:
    """Convert a ModelInferRequest; INVALID_ARG with Triton's messages on bad input.

    ``raw_input_contents[i]`` belongs to the i-th input that does not use
    shared memory. Like Triton, surplus raw entries are ignored. ``raw``
    replaces the message's own entries when the caller split them off
    (``wire.parse_request``).
    """
    model = msg.model_name
    if raw is None:
        raw = msg.raw_input_contents
    nraw = len(raw)
    inputs = []
    used = 0
    for t in msg.inputs:
        tparams = t.parameters
        shm = params.shm_ref(tparams, t.name) if tparams else None
        if shm is not None:
            if t.HasField("contents"):
                raise invalid_arg("unexpected 'content' provided when using shared memory for "
                                  f"input tensor '{t.name}' for model '{model}'")
            data = None
        elif t.HasField("contents"):
            if nraw:
                raise invalid_arg("contents field must not be specified when using "
                                  f"raw_input_contents for '{t.name}' for model '{model}'")
            data = contents.to_bytes(t, model, msg.id)
        elif used < nraw:
            data = raw[used]
            used += 1
        else:
            raise invalid_arg(f"unable to find data for input tensor '{t.name}' for model "
                              f"'{model}' in request.")
        # shape[:] is a list, built twice as fast as list(shape).
        inputs.append(InputTensor(t.name, t.datatype, t.shape[:], data, shm,
                                  params.tensor_params(tparams) if tparams else {}))
    return InferRequest(model, msg.model_version, msg.id,
                        params.request_params(msg.parameters) if msg.parameters else {},
                        inputs,
                        [_output(o) for o in msg.outputs] if msg.outputs else None)


def _output(o) -> RequestedOutput:
    """One requested output: classification top-k and/or a client shm destination."""
    oparams = o.parameters
    if not oparams:
        return RequestedOutput(o.name)
    shm = params.shm_ref(oparams, o.name)
    top_k = params.classification(oparams)
    if shm is not None and top_k:
        raise invalid_arg("output can't set both 'shared_memory_region' and 'classification'")
    rest = {k: v for k, v in params.tensor_params(oparams).items() if k != "classification"}
    return RequestedOutput(o.name, False, top_k, shm, rest)
