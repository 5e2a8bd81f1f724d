"""State outputs in a decoupled Python model's responses: pruned, as in Triton.

Triton's Python backend never updates implicit state (it calls no
TRITONBACKEND_StateNew/StateUpdate; Triton's docs list implicit state for the
ONNX Runtime, TensorRT and PyTorch backends only), and its response sender prunes
every response to the request's requested outputs (python_backend's
response_sender.cc, ``PruneOutputTensors``): the outputs the client named, else
every config output (core's request normalisation). A state output the model
sends is therefore dropped, unless it is also a config output the request asks
for (then the client gets it as an ordinary output); the state input keeps what
START gave it (the initial state), whatever the responses carried.

tritond keeps a non-decoupled Python model's state output as the next state (an
extension: docs/compatibility.md), and for that the worker adds the state output
names to each row's outputs (workers/sequence_rows.py). A decoupled model's
responses go through the worker's hub instead, with the requested outputs only.
"""
from __future__ import annotations


def pruned(spec) -> bool:
    """Whether the requests of this model answer through the hub with their requested
    outputs only: a decoupled model with implicit state."""
    seq = spec.sequence_batching
    return bool(spec.decoupled and seq is not None and seq.states)


def requested(req, spec) -> list[str]:
    """The outputs a response to ``req`` keeps: those it names, else every config output."""
    if req.outputs:
        return [o.name for o in req.outputs]
    return [t.name for t in spec.outputs]
