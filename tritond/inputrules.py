"""Triton's input rules for one model: the one checker of every request's inputs.

Triton's core normalizes every request the same way, whoever made it (InferenceRequest::
Normalize): a client's request (the frontend checks those), an ensemble's step and a BLS
call (the scheduler checks those). Both ask :meth:`InputRules.check` over a neutral form,
the request's *signature*: per input ``(name, datatype, *shape)``. Names, datatypes and
shapes decide every rule but the byte sizes, so a signature that passed is remembered and
the next request with it pays one dict lookup. Only the frontend sees tensor bytes: it
checks them after the rules pass, and when the rules refuse a request it asks again with
a ``sized`` callback, called once per input right after that input's own checks (where
Triton checks each input's byte size), so that an earlier input's size error comes first.

The order of the checks is Triton's (a request with several faults gets the first one's
text; checked against Triton 2.51): repeated names, the input count, then per input its
name and (the model batches) its batch dimension, then the batch size, then per input its
datatype, specified dims and shape, and its sizes (``sized``). As in Triton (2.51 and core's
ValidateRequestInputs at HEAD), the input count is all that is checked of the required
inputs: a request whose optional input stands in a required one's place passes, and the
backend meets the missing input (a Python model finds no such tensor, the others fail the
request with their runtime's error).
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

    __slots__ = ("datatype", "dims", "wildcard", "shape_tensor", "elem_size", "count")

    def __init__(self, spec: ts.TensorSpec):
        self.datatype: str = spec.datatype
        self.dims: tuple = tuple(spec.dims)
        self.wildcard: bool = -1 in self.dims       # False: compare tuples directly
        self.count: int = math.prod(self.dims)      # elements per batch row (no -1s only)
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
        self.required = frozenset(t.name for t in spec.inputs if not t.optional)   # counted
        self.passed: dict[tuple, tuple] = {}

    def check(self, signature: tuple, request_id,
              sized: Optional[Callable[[int, Optional[int], int], None]] = None) -> tuple:
        """``(batch, expect)`` of a signature, checked now unless it passed before; raises
        INVALID_ARG with Triton's text. Triton's core prefixes its errors with the
        request's id (``request_tag``); the model's own name check (model.cc) has none."""
        known = self.passed.get(signature)
        if known is not None:
            return known
        batch = self._check_batch(signature, request_id)
        inputs = self.inputs
        batched = self.max_batch_size > 0
        odd = batch < 0             # a negative batch dimension (gRPC): refused below
        expect = []
        for i, sig in enumerate(signature):
            name = sig[0]
            rule = inputs[name]
            if sig[1] != rule.datatype:
                raise invalid_arg(f"{request_tag(request_id)}inference input '{name}' data-type "
                                  f"is '{sig[1]}', but model '{self.model}' expects "
                                  f"'{rule.datatype}'")
            rows = batched and not rule.shape_tensor
            dims = sig[3:] if rows else sig[2:]
            if dims == rule.dims and not rule.wildcard and not odd:    # the usual: no -1s
                count = rule.count * sig[2] if rows else rule.count
            else:
                count = self._check_shape(sig, rule, rows, dims, request_id)
            expect.append((rule.elem_size, count))
            if sized is not None:
                sized(i, rule.elem_size, count)
        known = (max(batch, 0), tuple(expect))      # 0: the model does not batch
        if len(self.passed) >= SIGNATURES:     # many shapes (no batching, odd sizes): start over
            self.passed.clear()
        self.passed[signature] = known
        return known

    def _check_shape(self, sig: tuple, rule: InputRule, rows: bool, dims: tuple,
                     request_id) -> int:
        """An input's dims against its config's (``rows``: less the batch dimension); its
        element count."""
        shape = sig[2:]
        name = sig[0]
        for d in shape:
            if d < 0:
                raise invalid_arg(f"{request_tag(request_id)}All input dimensions should be "
                                  f"specified for input '{name}' for model '{self.model}', "
                                  f"got {dims_str(shape)}")
        if dims != rule.dims and not (rule.wildcard and _fits(rule.dims, dims)):
            batching = self.max_batch_size > 0
            expected = (-1, *rule.dims) if rows else rule.dims
            note = BATCH_NOTE if batching else ""      # Triton's ". " stays without one
            raise invalid_arg(f"{request_tag(request_id)}unexpected shape for input '{name}' "
                              f"for model '{self.model}'. Expected {dims_str(expected)}, got "
                              f"{dims_str(shape)}. {note}")
        return math.prod(shape)

    def _check_batch(self, signature: tuple, request_id) -> int:
        """The checks before any input's datatype, in Triton's order: repeated names (as it
        reads the request), the input count (ValidateRequestInputs), then per input its
        name and, when the model batches, its batch dimension; then the batch size. Returns
        the batch size (0 when the model does not batch)."""
        inputs = self.inputs
        n = len(signature)
        if len({s[0] for s in signature}) != n:
            seen = set()
            dup = next(s[0] for s in signature if s[0] in seen or seen.add(s[0]))
            raise invalid_arg(f"{request_tag(request_id)}input '{dup}' already exists in request")
        if n > len(inputs) or n < len(self.required):
            self._count_error(signature, request_id)
        batching = self.max_batch_size > 0
        batch = None
        for s in signature:
            name = s[0]
            rule = inputs.get(name)
            if rule is None:
                raise invalid_arg(f"unexpected inference input '{name}' for model "
                                  f"'{self.model}'")
            if not batching or rule.shape_tensor:
                continue
            if len(s) == 2:
                raise invalid_arg(f"{request_tag(request_id)}input '{name}' has no shape but "
                                  f"model requires batch dimension for '{self.model}'")
            if batch is None:
                batch = s[2]
            elif s[2] != batch:
                raise invalid_arg(f"{request_tag(request_id)}input '{name}' batch size does "
                                  f"not match other inputs for '{self.model}'")
        if batch is None:
            return 0
        if batch > self.max_batch_size:
            raise invalid_arg(f"{request_tag(request_id)}inference request batch-size must be <= "
                              f"{self.max_batch_size} for '{self.model}'")
        return batch

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
