"""A batch's answers: each request's outputs written into shm, and its ``Response``.

:class:`~workers.executor.Executor` maps inputs and runs the backend; what the
backend returned becomes Responses here. A fused batch's result (one
:class:`Share` per request) is written once and sliced per request; an output
that cannot be written fails only its own request.
"""
from __future__ import annotations

import math

from tritond import messages
from tritond.errors import Code, TritonError
from tritond.messages import ErrorInfo, Execute, Response

from .backend import WorkRequest, WorkResult
from .batchio import scatter_shape
from .outputs import OutputWriter, as_output
from .shapes import ModelIO

TRACED = [0]      # marks a traced request's Response until Executor.run knows the batch's end


def error_of(exc: BaseException) -> ErrorInfo:
    if isinstance(exc, TritonError):
        return ErrorInfo(int(exc.code), exc.message)
    return ErrorInfo(int(Code.INTERNAL), str(exc) or type(exc).__name__)


class Share:
    """Request ``index``'s part of a fused batch ``result``."""

    __slots__ = ("result", "index")

    def __init__(self, result: WorkResult, index: int) -> None:
        self.result = result
        self.index = index


def stamps(ex: Execute, rid: int, start: int, t_in: int, t_infer: int, end: int) -> list:
    """A traced request's Response.trace: the scheduler's QUEUE_START, then the
    batch's compute timestamps (every request of a batch shares them, as in Triton)."""
    for req in ex.requests:
        if req.rid == rid:
            return [*req.trace[1:2], start, t_in, t_infer, end]
    return []


class Responses:
    """Writes one batch's outputs and builds its Responses, for one instance."""

    def __init__(self, io: ModelIO, writer: OutputWriter, instance: str) -> None:
        self.io = io
        self.writer = writer
        self.instance = instance     # this worker's address (Response.instance)

    def build(self, requests, work, results, errors,
              quiet=frozenset()) -> list[tuple[str, Response]]:
        """Write outputs into shm and build one Response per request, except the
        ``quiet`` ones (a sequence batch's not-ready rows: nobody waits for them, so no
        Response is made for them only to be dropped; their outputs are discarded)."""
        refs: dict[int, list] = {rid: [] for rid in work}
        batches: dict[int, list] = {}     # one fused result each (ragged: maybe several)
        for w in work.values():
            res = results.get(w.request.rid)
            if isinstance(res, Share):
                batches.setdefault(id(res.result), []).append(w)
        for shares in batches.values():
            self._write_fused(shares, results, refs, errors)
        for rid, w in work.items():
            res = results[rid]
            if isinstance(res, Share) or rid in errors or res.streamed:
                continue
            if res.error is not None:
                errors[rid] = res.error
                continue
            self._write_one(w, res, refs, errors)
        out = []
        for req in requests:
            err = errors.get(req.rid)
            if err is not None:
                self.writer.discard(refs.get(req.rid, ()))
                if req.rid in quiet:
                    continue
                out.append((req.frontend, Response(req.rid, error=err, instance=self.instance,
                                                   model_version=req.version)))
                continue
            res = results[req.rid]
            if not isinstance(res, Share) and res.streamed:
                continue                    # its response sender answers (workers/streams.py)
            params = res.result.parameters if isinstance(res, Share) else res.parameters
            resp = Response(req.rid, outputs=refs[req.rid], parameters=params,
                            instance=self.instance, model_version=req.version)
            if req.trace:           # stamped by Executor.run once the batch's end is known
                resp.trace = TRACED
            out.append((req.frontend, resp))
        return out

    def _write_one(self, w: WorkRequest, res: WorkResult, refs, errors) -> None:
        outs, later = [], None
        try:
            produced = res.outputs
            dests = {o.name: o.dest for o in w.request.outputs if o.dest is not None}
            for name in w.outputs:
                arr = produced.get(name)
                if arr is None:
                    continue  # Python models may omit outputs; Triton returns what exists
                arr = as_output(arr)
                outs.append((name, arr, self.io.client_shape(name, arr.shape), dests.get(name)))
        except Exception as exc:  # noqa: BLE001 - e.g. an unsupported array type
            later = error_of(exc)
        try:
            # the outputs before a failing one are still written: an error of
            # theirs comes first (the writer stops at the first); build discards them
            got = self.writer.write_all(outs)
        except Exception as exc:  # noqa: BLE001 - e.g. an unsupported dtype
            got = error_of(exc)
        if type(got) is list:
            refs[w.request.rid].extend(got)
            got = later
        if got is not None:
            errors[w.request.rid] = got

    def _write_fused(self, shares: list[WorkRequest], results, refs, errors) -> None:
        batch = results[shares[0].request.rid].result
        rows = [next(iter(w.inputs.values())).shape[0] for w in shares]
        names = dict.fromkeys(n for w in shares for n in w.outputs)
        for name in names:
            arr = batch.outputs.get(name)
            if arr is None:
                continue
            arr = as_output(arr)
            if name in self.io.scatter:
                self._scatter(name, arr, shares, refs, errors)
                continue
            if arr.ndim == 0 or arr.shape[0] != sum(rows):
                err = ErrorInfo(int(Code.INTERNAL), f"output '{name}' has shape {list(arr.shape)}, "
                                f"expected a batch of {sum(rows)}")
                for w in shares:
                    errors.setdefault(w.request.rid, err)
                continue
            try:
                self._slice(name, arr, shares, rows, refs, errors)
            except Exception as exc:  # noqa: BLE001 - e.g. an unsupported dtype
                for w in shares:
                    errors.setdefault(w.request.rid, error_of(exc))

    def _scatter(self, name, arr, shares, refs, errors) -> None:
        """A batch output: each request's part is as many elements as the shape its
        source input gives it (BATCH_SCATTER_WITH_INPUT_SHAPE), in request order."""
        try:
            source = self.io.scatter[name]
            shapes = [scatter_shape(self.io.outputs[name], w.inputs[source].shape,
                                    self.io.batched) for w in shares]
            counts = [math.prod(s) for s in shapes]
            if arr.size < sum(counts):
                raise TritonError(Code.INTERNAL, f"batch output '{name}' has {arr.size} "
                                  f"elements, the batch's inputs '{source}' need {sum(counts)}")
            self._slice(name, arr.reshape(-1), shares, counts, refs, errors,
                        [self.io.client_shape(name, s) for s in shapes])
        except Exception as exc:  # noqa: BLE001 - fails this batch's requests
            for w in shares:
                errors.setdefault(w.request.rid, error_of(exc))

    def _slice(self, name, arr, shares, rows, refs, errors, scattered=None) -> None:
        shapes, dests = [], []
        for i, (w, n) in enumerate(zip(shares, rows)):
            want = name in w.outputs and w.request.rid not in errors
            shape = (scattered[i] if scattered is not None
                     else self.io.client_shape(name, (n, *arr.shape[1:])))
            shapes.append(shape if want else None)
            dests.append(next((o.dest for o in w.request.outputs if o.name == name), None))
        for w, ref in zip(shares, self.writer.write_batch(name, arr, rows, shapes, dests)):
            if isinstance(ref, ErrorInfo):
                errors[w.request.rid] = ref
            elif ref is not None:
                refs[w.request.rid].append(ref)
