"""A BLS call's admission: the checks ``SchedulerCore.add`` runs on a request a Python
model's ``exec``/``async_exec`` sends (Request.batch -1: no frontend looked at it), and
the wording of its refusals as python_backend's request executor words them."""
from __future__ import annotations

import msgspec

from tritond import messages
from tritond.errors import Code

from .inputcheck import input_error
from .outputcheck import output_error
from .outputs import Reply, _error
from .wire import dims_decode

# python_backend's request_executor.cc, word for word (its trailing quote included)
_UNARY_DECOUPLED = ("Model %s is using the decoupled. The current BLS request call doesn't "
                    "support models using the decoupled transaction policy. Please use "
                    "'decoupled=True' argument to the 'exec' or 'async_exec' calls for "
                    "decoupled models.'")


def _batch_of(req) -> int:
    inputs = dims_decode(req.inputs) if type(req.inputs) is msgspec.Raw else req.inputs
    return inputs[0].shape[0] if inputs and inputs[0].shape else 1


def admit(model, req) -> Reply | None:
    """None when ``req`` (a BLS call for ``model``, None if unknown) may be queued, with its
    batch size and cache flag set; else the refusal to answer it with."""
    if model is None or not model.ready:   # python_backend asks ModelIsReady first
        return _error(req, Code.INTERNAL, "Failed for execute the inference request. "
                      f"Model '{req.model}' is not ready.")
    if req.unary and model.cfg.spec.decoupled:
        return _error(req, Code.INTERNAL, _UNARY_DECOUPLED % req.model)
    inputs = dims_decode(req.inputs) if type(req.inputs) is msgspec.Raw else req.inputs
    # Triton normalizes BLS requests too
    wrong = input_error(model.cfg.rules, inputs, req.request_id)
    if wrong is None and type(req.outputs) is msgspec.Raw:
        wrong = output_error(model.cfg.spec, req.outputs)
    if wrong is not None:
        return _error(req, Code(wrong.code), wrong.message)
    req.batch = _batch_of(req) if model.cfg.max_batch_size > 0 else 0
    req.cache = model.cached       # no frontend looked it up: its worker does
    return None


def worded(out: list, req) -> list:
    """``out`` with a BLS call's immediate refusal worded as python_backend's request
    executor words what ``TRITONSERVER_ServerInferAsync`` refuses (INTERNAL, the model
    named)."""
    for o in out:
        if type(o) is Reply and o.frontend == req.frontend and o.response.rid == req.rid \
                and o.response.error is not None:
            o.response.error = messages.ErrorInfo(int(Code.INTERNAL), (
                f"Model {req.model} - Error when running inference: "
                f"{o.response.error.message}"))
    return out
