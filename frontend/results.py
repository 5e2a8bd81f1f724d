"""A request's final Response as the transports' ``InferResult``.

Output views are zero copy over the worker's shm slots; classification
(``classification.py``) replaces an output by its top-k labels. On any failure
the Response's slots go back at once (one ``Release``), since no transport will
ever hold the result that would release them.
"""
from __future__ import annotations

import math

from tritond import messages
from tritond.errors import TritonError

from .classification import classify
from .models import ModelVersion
from .types import InferRequest, InferResult, OutputTensor


class ResponseError(TritonError):
    """An error response of a request the scheduler accepted (queued, then failed, timed
    out or ran): Triton's error carried by a response, after ServerInferAsync succeeded;
    a refusal (``Response.refused``) or the frontend's own checks raise TritonError."""


class Results:
    """Builds results over the process's ``SegmentCache`` mappings."""

    __slots__ = ("client", "cache")

    def __init__(self, client, cache) -> None:
        self.client = client        # InferClient: the Response's releaser
        self.cache = cache          # SegmentCache: the mapped output regions

    def result(self, mv: ModelVersion, req: InferRequest, resp: messages.Response) -> InferResult:
        """Map output refs (zero copy) and apply classification; Release on any failure."""
        release = self.client.releaser(resp)
        try:
            if resp.error is not None:
                raise (TritonError if resp.refused else ResponseError)(
                    resp.error.code, resp.error.message)
            outputs = self._outputs(mv, req, resp.outputs)
        except BaseException:
            if release is not None:
                release()
            raise
        version = str(resp.model_version) if resp.model_version else mv.version_str
        return InferResult(mv.name, version, req.id, resp.parameters, outputs, release,
                           resp.final)

    def _outputs(self, mv: ModelVersion, req: InferRequest, refs: list) -> list[OutputTensor]:
        buffer = self.cache.buffer
        requested = {o.name: o for o in req.outputs} if req.outputs else None
        outs = []
        for ref in refs:
            want = requested.get(ref.name) if requested is not None else None
            if requested is not None and want is None:
                continue                       # a backend that returned extra outputs
            data = buffer(ref.region, ref.offset, ref.nbytes) if ref.kind == messages.SERVER_SHM \
                else None
            out = OutputTensor(ref.name, ref.dtype, ref.shape, data, want)
            if ref.lengths_at and data is not None:
                out.lengths = _table(buffer, ref)
            if want is not None and want.classification:
                out = _classified(mv, out, want.classification)
            outs.append(out)
        if requested is not None and len(outs) > 1:
            order = {name: i for i, name in enumerate(requested)}
            outs.sort(key=lambda o: order[o.name])
        return outs


def _table(buffer, ref: messages.TensorRef) -> memoryview | None:
    """The length table the worker staged after a BYTES output (None when it does not
    fit the segment: it is only a hint, the parse walks then)."""
    try:
        return buffer(ref.region, ref.offset + ref.lengths_at, 4 * math.prod(ref.shape))
    except TritonError:
        return None


def _classified(mv: ModelVersion, out: OutputTensor, k: int) -> OutputTensor:
    spec = mv.outputs.get(out.name)
    batching = mv.max_batch_size > 0 and bool(spec is None or spec.dims)
    data, shape = classify(out.name, out.datatype, out.as_numpy(), k, batching,
                           mv.labels.get(out.name))
    return OutputTensor(out.name, "BYTES", shape, memoryview(data), out.requested)
