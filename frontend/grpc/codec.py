"""ModelInferRequest -> :class:`InferRequest`, :class:`InferResult` -> ModelInferResponse.

The hot path of the gRPC frontend. Tensor bytes are never copied here on the
way in: ``raw_input_contents`` entries are the ``bytes`` protobuf already
made, handed to the core, which copies each once into shared memory. On the
way out each output is copied once, from its shared-memory view into the
response message (``bytes(memoryview)``), after which the result may be
released. Semantics follow protocol.md §2.3. Unary ModelInfer goes through
``wire``, which skips protobuf's copies of the tensor bytes and uses
``decode_request`` for the rest.
"""
from __future__ import annotations

from tritond.errors import invalid_arg
from tritond.frontend.types import InferRequest, InferResult, InputTensor, RequestedOutput
from tritond.protos import grpc_service_pb2 as pb

from . import contents, params

_Response = pb.ModelInferResponse
_StreamResponse = pb.ModelStreamInferResponse


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
            data = contents.to_bytes(t, model)
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


def encode_result(result: InferResult, resp: pb.ModelInferResponse | None = None
                  ) -> pb.ModelInferResponse:
    """Build the ModelInferResponse (into ``resp`` if given); the caller then releases ``result``.

    Every output gets an InferOutputTensor and a ``raw_output_contents`` entry
    at the same position; the entry is empty for shm outputs and zero-size
    ones (``data`` is None or empty). ``contents`` is never filled.
    """
    # Building in place (outputs.add, one extend) is ~1.6x faster than
    # constructing sub-messages and passing them to the constructor.
    if resp is None:
        resp = _Response(model_name=result.model_name, model_version=result.model_version,
                         id=result.id)
    else:
        resp.model_name, resp.model_version, resp.id = (
            result.model_name, result.model_version, result.id)
    add = resp.outputs.add
    raws = []
    for o in result.outputs:
        add(name=o.name, datatype=o.datatype, shape=o.shape)
        data = o.data
        raws.append(bytes(data) if data is not None else b"")
    resp.raw_output_contents.extend(raws)
    if result.parameters:
        params.fill(result.parameters, resp.parameters)
    return resp


def stream_response(result: InferResult) -> pb.ModelStreamInferResponse:
    """The (final, non-decoupled) ModelStreamInfer response for ``result``.

    Encoded in place into the wrapper's ``infer_response``: passing a built
    response to the constructor would copy it.
    """
    wrapper = _StreamResponse()
    resp = encode_result(result, wrapper.infer_response)
    resp.parameters["triton_final_response"].bool_param = True
    return wrapper


def stream_error(message: str, request_id: str) -> pb.ModelStreamInferResponse:
    """An in-stream error: ``error_message`` plus an infer_response holding only the id."""
    return _StreamResponse(error_message=message, infer_response=_Response(id=request_id))
