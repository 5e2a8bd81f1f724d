"""Triton's input checks for the requests no frontend checked: ensemble steps and BLS calls.

Triton's core normalizes every request the same way, whoever made it (InferenceRequest::
Normalize), so a step fed a tensor of the wrong shape, or a BLS call with a wrong datatype,
fails with the texts a client's request would get (frontend/validate.py has those checks
for client requests). The request's id leads the message (``request_tag``). A signature
(names, datatypes, shapes) that passed is remembered per model spec, so a steady pipeline
pays one dict lookup per request.
"""
from __future__ import annotations

from tritond import messages
from tritond.errors import BATCH_NOTE, Code, dims_str, names_str, request_tag

_PASSED: dict[tuple, None] = {}
_KEEP = 4096            # signatures remembered over all models (then start over)


def input_error(spec, max_batch_size: int, refs: list, request_id) -> messages.ErrorInfo | None:
    """The INVALID_ARG ``refs`` (TensorRefs, or the scheduler's InputDims) get as inputs of
    the model ``spec`` describes, or None when they pass."""
    key = (id(spec), *[(r.name, r.dtype, *r.shape) for r in refs])
    if key in _PASSED:
        return None
    if len(refs) > len(spec.inputs):    # the count first, as the frontend's check
        return messages.ErrorInfo(int(Code.INVALID_ARG), request_tag(request_id) + _count_text(
            spec, [r.name for r in refs],
            sorted(t.name for t in spec.inputs if not t.optional
                   and t.name not in {r.name for r in refs})))
    names = {t.name for t in spec.inputs}
    for ref in refs:                    # model.cc's check: no request id in front
        if ref.name not in names:
            return messages.ErrorInfo(int(Code.INVALID_ARG), (
                f"unexpected inference input '{ref.name}' for model '{spec.name}'"))
    text = _problem(spec, max_batch_size, refs)
    if text is None:
        if len(_PASSED) >= _KEEP:
            _PASSED.clear()
        _PASSED[key] = None
        return None
    return messages.ErrorInfo(int(Code.INVALID_ARG), request_tag(request_id) + text)


def _problem(spec, max_batch_size: int, refs: list) -> str | None:
    configs = {t.name: t for t in spec.inputs}
    got = [r.name for r in refs]
    required = sorted(t.name for t in spec.inputs if not t.optional and t.name not in got)
    if required:
        return _count_text(spec, got, required)
    batching = max_batch_size > 0
    batch = -1
    for ref in refs:
        cfg = configs[ref.name]
        if ref.dtype != cfg.datatype:
            return (f"inference input '{ref.name}' data-type is '{ref.dtype}', but model "
                    f"'{spec.name}' expects '{cfg.datatype}'")
        shape = list(ref.shape)
        dims = shape
        if batching and not cfg.is_shape_tensor:
            if not shape:
                return (f"input '{ref.name}' has no shape but model requires batch dimension "
                        f"for '{spec.name}'")
            if batch < 0:
                batch = shape[0]
            elif shape[0] != batch:
                return (f"input '{ref.name}' batch size does not match other inputs for "
                        f"'{spec.name}'")
            dims = shape[1:]
        if not cfg.allow_ragged_batch and not _fits(cfg.dims, dims):
            expected = [-1, *cfg.dims] if batching and not cfg.is_shape_tensor else cfg.dims
            return (f"unexpected shape for input '{ref.name}' for model '{spec.name}'. "
                    f"Expected {dims_str(expected)}, got {dims_str(shape)}. "
                    f"{BATCH_NOTE if batching else ''}")
    if batching and batch > max_batch_size:
        return f"inference request batch-size must be <= {max_batch_size} for '{spec.name}'"
    return None


def _count_text(spec, got: list, required: list) -> str:
    n_all, n_req = len(spec.inputs), sum(1 for t in spec.inputs if not t.optional)
    expected = (f"{n_all} inputs" if n_all == n_req else
                f"number of inputs between {n_req} and {n_all}")
    return (f"expected {expected} but got {len(got)} inputs for model '{spec.name}'. "
            f"Got input(s) {names_str(got)}, but missing required input(s) {names_str(required)}. "
            "Please provide all required input(s).")


def _fits(expected, got) -> bool:
    return len(expected) == len(got) and all(e == -1 or e == g for e, g in zip(expected, got))
