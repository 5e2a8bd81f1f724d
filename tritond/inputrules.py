"""Triton's input rules for one model: the one checker of every request's inputs.

Triton's core normalizes every request the same way, whoever made it (InferenceRequest::
Normalize): a client's request (the frontend checks those), an ensemble's step and a BLS
call (the scheduler checks those). Both ask :meth:`InputRules.check` over a neutral form,
the request's *signature*: per input ``(name, datatype, *shape)``. Names, datatypes and
shapes decide every rule but the byte sizes, so a signature that passed is remembered and
the next request with it pays one dict lookup. Only the frontend sees tensor bytes: it
passes a ``sized`` callback, called once per input right after that input's own checks
(Triton checks each input's byte size there too), and checks the sizes of a remembered
signature itself.

The order of the checks (a request with several faults gets the first one's text):
repeated names, the input count, unknown names, missing required inputs (these four look
at names only), then per input its datatype, specified dims, batch dimension and shape,
then its sizes (``sized``), and last the request's batch size.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

from tritond import spec as ts
from tritond.errors import BATCH_NOTE, dims_str, invalid_arg, names_str, request_tag
from tritond.shm.dtypes import DTYPES

SIGNATURES = 64     # passed signatures kept per model (then start over)


class InputRule:
    """One config input, pre-digested for the checks."""

    __slots__ = ("datatype", "dims", "wildcard", "shape_tensor", "elem_size")

    def __init__(self, spec: ts.TensorSpec):
        self.datatype: str = spec.datatype
        self.dims: tuple = tuple(spec.dims)
        self.wildcard: bool = -1 in self.dims       # False: compare tuples directly
        self.shape_tensor: bool = spec.is_shape_tensor
        # None: BYTES. The loader refused any other datatype a protocol lacks (a request
        # can name none of those either), so an unknown one never gets past the type check.
        known = DTYPES.get(spec.datatype)
        self.elem_size: Optional[int] = known.size if known is not None else None


class InputRules:
    """The input rules of one model's config, and the signatures that passed them.

    Built whenever the model table changes (a reload gets new rules, so it starts with
    no remembered signatures). ``passed`` maps a signature to ``(batch size or 0,
    ((element size, element count) per input))``.
    """

    __slots__ = ("model", "max_batch_size", "inputs", "required", "passed")

    def __init__(self, spec: ts.ModelSpec):
        self.model: str = spec.name
        self.max_batch_size: int = spec.max_batch_size
        self.inputs = {t.name: InputRule(t) for t in spec.inputs}
        self.required = frozenset(t.name for t in spec.inputs if not t.optional)
        self.passed: dict[tuple, tuple] = {}

    def check(self, signature: tuple, request_id,
              sized: Optional[Callable[[int, Optional[int], int], None]] = None) -> tuple:
        """``(batch, expect)`` of a signature, checked now unless it passed before; raises
        INVALID_ARG with Triton's text. Triton's core prefixes its errors with the
        request's id (``request_tag``); the model's own name check (model.cc) has none."""
        known = self.passed.get(signature)
        if known is not None:
            return known
        self._check_names(signature, request_id)
        inputs = self.inputs
        batching = self.max_batch_size > 0
        batch = -1
        expect = []
        for i, sig in enumerate(signature):
            name = sig[0]
            rule = inputs[name]
            if sig[1] != rule.datatype:
                raise invalid_arg(f"{request_tag(request_id)}inference input '{name}' data-type "
                                  f"is '{sig[1]}', but model '{self.model}' expects "
                                  f"'{rule.datatype}'")
            shape = sig[2:]
            for d in shape:
                if d < 0:
                    raise invalid_arg(f"{request_tag(request_id)}All input dimensions should be "
                                      f"specified for input '{name}' for model '{self.model}', "
                                      f"got {dims_str(shape)}")
            dims = shape
            if batching and not rule.shape_tensor:
                if not shape:
                    raise invalid_arg(f"{request_tag(request_id)}input '{name}' has no shape but "
                                      f"model requires batch dimension for '{self.model}'")
                if batch < 0:
                    batch = shape[0]
                elif shape[0] != batch:
                    raise invalid_arg(f"{request_tag(request_id)}input '{name}' batch size does "
                                      f"not match other inputs for '{self.model}'")
                dims = shape[1:]
            if dims != rule.dims and not (rule.wildcard and _fits(rule.dims, dims)):
                expected = (-1, *rule.dims) if batching and not rule.shape_tensor else rule.dims
                note = BATCH_NOTE if batching else ""      # Triton's ". " stays without one
                raise invalid_arg(f"{request_tag(request_id)}unexpected shape for input '{name}' "
                                  f"for model '{self.model}'. Expected {dims_str(expected)}, got "
                                  f"{dims_str(shape)}. {note}")
            count = math.prod(shape)
            expect.append((rule.elem_size, count))
            if sized is not None:
                sized(i, rule.elem_size, count)
        if batching and batch > self.max_batch_size:
            raise invalid_arg(f"{request_tag(request_id)}inference request batch-size must be <= "
                              f"{self.max_batch_size} for '{self.model}'")
        known = (max(batch, 0) if batching else 0, tuple(expect))
        if len(self.passed) >= SIGNATURES:     # many shapes (no batching, odd sizes): start over
            self.passed.clear()
        self.passed[signature] = known
        return known

    def _check_names(self, signature: tuple, request_id) -> None:
        inputs = self.inputs
        n = len(signature)
        names = {s[0] for s in signature}
        if len(names) != n:                     # Triton refuses it as it reads the request
            seen = set()
            dup = next(s[0] for s in signature if s[0] in seen or seen.add(s[0]))
            raise invalid_arg(f"{request_tag(request_id)}input '{dup}' already exists in request")
        if n > len(inputs) or n < len(self.required):
            self._count_error(signature, request_id)
        for s in signature:
            if s[0] not in inputs:
                raise invalid_arg(f"unexpected inference input '{s[0]}' for model "
                                  f"'{self.model}'")
        if n < len(inputs) and not self.required.issubset(names):   # an optional one in a
            self._count_error(signature, request_id)                # required one's place

    def _count_error(self, signature: tuple, request_id) -> None:
        got = [s[0] for s in signature]
        missing = sorted(self.required.difference(got))
        n_all, n_req = len(self.inputs), len(self.required)
        expected = (f"{n_all} inputs" if n_all == n_req else
                    f"number of inputs between {n_req} and {n_all}")
        raise invalid_arg(f"{request_tag(request_id)}expected {expected} but got {len(got)} "
                          f"inputs for model '{self.model}'. Got input(s) {names_str(got)}, but "
                          f"missing required input(s) {names_str(missing)}. Please provide all "
                          "required input(s).")


def _fits(expected: tuple, got: tuple) -> bool:
    """Whether ``got`` matches config dims with -1 wildcards."""
    if len(expected) != len(got):
        return False
    for e, g in zip(expected, got):
        if e != -1 and e != g:
            return False
    return True
