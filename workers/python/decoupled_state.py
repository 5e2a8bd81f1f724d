"""State outputs in a decoupled Python model's responses: refused per response, as in Triton.

Triton's Python backend never updates implicit state (python_backend calls no
TRITONBACKEND_StateNew/StateUpdate; Triton's docs list implicit state for the
ONNX Runtime, TensorRT and PyTorch backends only). A decoupled model's responses
are not pruned to the requested outputs (python_backend's infer_response.cc), so
each output is added to the response through core's ``InferenceResponse::AddOutput``,
which fails for a name that is not a config output: that response carries
INVALID_ARG "unexpected inference output '<name>' for model '<model>'" instead of
its tensors (the model's ``send`` itself does not raise). The state input keeps
what START gave it (the initial state): no response updates it.

tritond keeps a non-decoupled Python model's state output as the next state (an
extension: docs/compatibility.md); for a decoupled one it does what Triton does,
here. A state output that is also a config output is an ordinary output.
"""
from __future__ import annotations

from . import pb_utils


def stray(spec, model: str) -> dict[str, str]:
    """State output names a decoupled model may not send -> Triton's message (empty when
    the model is not decoupled, has no state, or lists its state outputs as outputs)."""
    seq = spec.sequence_batching
    if not spec.decoupled or seq is None or not seq.states:
        return {}
    outputs = {t.name for t in spec.outputs}
    return {st.output_name: f"unexpected inference output '{st.output_name}' for model "
            f"'{model}'" for st in seq.states if st.output_name not in outputs}


def guard(sink, names: dict[str, str]):
    """``sink`` (a response sender's destination), with a response naming one of
    ``names`` replaced by its error response (the first such output in the
    response's order names it, as Triton adds them in order)."""
    def send(response, final: bool) -> None:
        if isinstance(response, pb_utils.InferenceResponse) and response._error is None:
            for tensor in response._outputs:
                message = names.get(tensor.name())
                if message is not None:
                    response = pb_utils.InferenceResponse(error=pb_utils.TritonError(
                        message, pb_utils.TritonError.INVALID_ARG))
                    break
        sink(response, final)
    return send
