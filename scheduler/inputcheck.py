"""Triton's input checks for the requests no frontend checked: ensemble steps and BLS calls.

Triton's core normalizes every request the same way, whoever made it (InferenceRequest::
Normalize), so a step fed a tensor of the wrong shape, or a BLS call with a wrong datatype,
fails with the texts a client's request would get: one checker for both,
``tritond.inputrules`` (the model's ``SchedConfig.rules``). The scheduler never sees tensor
bytes, so only the names, datatypes and shapes are checked here; a signature that passed
costs one dict lookup.
"""
from __future__ import annotations

from tritond import messages
from tritond.errors import TritonError
from tritond.inputrules import InputRules


def input_error(rules: InputRules, refs: list, request_id) -> messages.ErrorInfo | None:
    """The INVALID_ARG ``refs`` (TensorRefs, or the scheduler's InputDims) get as inputs of
    the model ``rules`` describe, or None when they pass."""
    signature = tuple([(r.name, r.dtype, *r.shape) for r in refs])
    if signature in rules.passed:
        return None
    try:
        rules.check(signature, request_id)
    except TritonError as exc:
        return messages.ErrorInfo(int(exc.code), exc.message)
    return None
