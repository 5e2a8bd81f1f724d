"""One ``Execute`` descriptor, start to finish: map inputs, run, write outputs.

The inputs and the run are here; the outputs and Responses are
``workers/responses.py``'s :class:`~workers.responses.Responses`.

Pure of sockets: :meth:`Executor.run` returns the ``Response`` messages (with
their frontend addresses) and the ``Executed`` summary;
``workers/runner.py`` posts them. A model exception fails only this batch's
requests; the worker keeps serving.
"""
from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np

from tritond import messages
from tritond.errors import Code, TritonError
from tritond.messages import ErrorInfo, Execute, Response
from tritond.namespaces import identifier
from tritond.shm.cuda import is_device_array

from . import childtraces, sequence_rows
from .batchio import BatchIO, Unfusable
from .backend import Backend, WorkRequest, WorkResult
from .outputs import OutputWriter
from .responses import TRACED, Responses, Share, error_of, stamps
from .shapes import ModelIO

log = logging.getLogger("tritond.workers.executor")


class Executor:
    """Runs Execute batches for one loaded backend instance."""

    def __init__(self, backend: Backend, io: ModelIO, cache, writer: OutputWriter,
                 instance: str, seq=None, lookup=None) -> None:
        self.backend = backend
        self.io = io
        self.cache = cache
        self.writer = writer
        self.instance = instance     # this worker's address (Response.instance)
        self.seq = seq               # workers.sequence.SequenceIO of a sequence model
        self.responses = Responses(io, writer, instance)
        # workers.cachelookup.CacheLookup of a cached model (else None: one test a batch)
        self.lookup = lookup
        # batch inputs / flat ragged inputs / batch outputs (workers/batchio.py); the
        # backend names the ragged inputs its model takes flat
        self.batchio = BatchIO(io.spec, getattr(backend, "flat_inputs", frozenset()))

    def run(self, ex: Execute) -> tuple[list[tuple[str, Response]], messages.Executed]:
        """Execute one batch; returns ([(frontend, Response)], Executed)."""
        start = time.monotonic_ns()
        errors: dict[int, ErrorInfo] = {}
        slots = ex.slots
        requests, visit = ex.requests, None
        if self.lookup is not None and not slots:   # ensemble steps, BLS calls: hits not run
            requests, visit = self.lookup.find(requests)
        if slots and self.seq is not None:
            if ex.ended:
                self.seq.ended(ex.ended)
            work = sequence_rows.map_inputs(self, ex, errors)
        else:
            work = self._map_inputs(requests, errors)
        t_in = time.monotonic_ns()
        results = self._execute(work)
        t_infer = time.monotonic_ns()
        if slots and self.seq is not None:
            sequence_rows.keep_states(self.seq, ex, work, results, Share, self.io)
            quiet = sequence_rows.skip_not_ready(ex, errors)
            responses = self.responses.build(ex.requests, work, results, errors, quiet)
        else:
            responses = self.responses.build(requests, work, results, errors)
            if slots:
                responses = sequence_rows.answered(self.writer, responses, slots)
        if visit is not None:
            responses = self.lookup.finish(visit, responses)
        end = time.monotonic_ns()
        for _, resp in responses:
            if resp.trace is TRACED:
                resp.trace = stamps(ex, resp.rid, start, t_in, t_infer, end)
        if childtraces.OPEN:        # a traced request made BLS calls (workers/childtraces.py)
            childtraces.attach(ex.requests, responses)
        stats = messages.ExecStats(
            batch_size=sum(max(r.batch, 1) for r in ex.requests),
            compute_input_ns=t_in - start, compute_infer_ns=t_infer - t_in,
            compute_output_ns=end - t_infer, start_ns=start, end_ns=end)
        executed = sequence_rows.executed(self.instance, ex, stats, errors, results)
        if visit is not None:
            executed.hits, executed.misses = visit.hits, visit.misses
            executed.failed.extend(visit.failed)
        return responses, executed

    # ------------------------------------------------------------- inputs

    def _map_inputs(self, requests, errors) -> dict[int, WorkRequest]:
        """Zero-copy views of every request's inputs (a bad region fails that request)."""
        work = {}
        for req in requests:
            try:
                inputs = {ref.name: self._view(ref) for ref in req.inputs}
            except Exception as exc:  # noqa: BLE001 - reported to the client as data
                errors[req.rid] = error_of(exc)
                continue
            names = self.io.requested([o.name for o in req.outputs])
            work[req.rid] = WorkRequest(req, inputs, names, self._dests(req))
        return work

    def _dests(self, req: messages.Request) -> dict:
        """Client-shm output buffers a backend may write into directly (see WorkRequest)."""
        dests = {}
        for o in req.outputs:
            d = o.dest
            if d is not None and d.kind == messages.CLIENT_SHM:
                try:
                    dests[o.name] = self.cache.buffer(d.region, d.offset, d.nbytes, d.gen)
                except Exception:  # noqa: BLE001 - the writer reports it as this request's error
                    pass
        return dests

    def _view(self, ref: messages.TensorRef) -> np.ndarray:
        arr = self.cache.array(ref)     # client shm: a view of the client's own pages
        if ref.kind == messages.CUDA_SHM and not getattr(self.backend, "device_arrays", False):
            arr = arr.get()             # a host-only backend: the one device-to-host copy
        shape = self.io.backend_shape(ref.name, ref.shape)
        return arr if arr.shape == shape else arr.reshape(shape)

    # ------------------------------------------------------------ execute

    def execute(self, work: dict[int, WorkRequest]) -> dict:
        """The backend run of requests already mapped (the warmup's, workers/warmup.py):
        their results by rid (a fused batch's: ``Share`` parts), no Responses."""
        return self._execute(work)

    def _execute(self, work: dict[int, WorkRequest]) -> dict[int, WorkResult]:
        """Run the backend: fused into one batch when it can, else as a list."""
        if not work:
            return {}
        items = list(work.values())
        if self.batchio.active and self.backend.fuses_batches:
            if self.io.batched:
                return self._run_batch_io(items)
            # no batch dimension to join along: each request is its own batch, and
            # its outputs all its own (no rows to split)
            return {k: v for w in items for k, v in self._run_unbatched_io(w).items()}
        if self.backend.fuses_batches and self.io.batched and len(items) > 1:
            fused = self._fuse(items)
            if fused is not None:
                return self._run_fused(items, fused)
        return self._run_list(items)

    def _run_batch_io(self, items: list[WorkRequest]) -> dict[int, WorkResult]:
        """Ragged batching: the batch joined with its batch inputs, even a batch of one;
        requests that cannot be joined run one at a time, each its own batch."""
        try:
            return self._run_fused(items, self.batchio.gather(items))
        except Unfusable:
            pass
        except Exception as exc:  # noqa: BLE001 - e.g. a missing source input: try each
            if len(items) == 1:
                return {items[0].request.rid: WorkResult(error=error_of(exc))}
        results: dict[int, WorkResult] = {}
        for w in items:
            results.update(self._run_batch_io([w]))
        return results

    def _run_unbatched_io(self, w: WorkRequest) -> dict[int, WorkResult]:
        try:
            joined = self.batchio.gather([w])   # same request: results keyed by its rid
        except Exception as exc:  # noqa: BLE001 - e.g. a missing source input
            return {w.request.rid: WorkResult(error=error_of(exc))}
        return self._run_list([joined])

    def _run_list(self, items: list[WorkRequest]) -> dict[int, WorkResult]:
        try:
            results = self.backend.execute(items)
            if results is None or len(results) != len(items):
                got = "None" if results is None else f"{len(results)} results"
                raise TritonError(Code.INTERNAL,
                                  f"backend returned {got} for {len(items)} requests")
        except Exception as exc:  # noqa: BLE001 - a model exception fails only this batch
            log.warning("execute failed for model '%s': %s", identifier(self.backend.ctx.model), exc)
            err = error_of(exc)
            return {w.request.rid: WorkResult(error=err) for w in items}
        return {w.request.rid: r for w, r in zip(items, results)}

    def _fuse(self, items: list[WorkRequest]) -> Optional[WorkRequest]:
        """The requests' inputs joined along the batch dim (None: not possible).

        An input whose requests' tensors already lie back to back in one
        segment, in request order, becomes one view over that span; only the
        others are copied by ``np.concatenate``.
        """
        names = list(items[0].inputs)
        if any(list(w.inputs) != names for w in items):
            return None
        inputs = {}
        for n in names:
            arrays = [w.inputs[n] for w in items]
            span = self._span(n, items, arrays)
            if span is None:
                try:
                    span = _concatenate(arrays, self.seq)
                except ValueError:  # differing non-batch dims (ragged): run them one by one
                    return None
            inputs[n] = span
        wanted = list(dict.fromkeys(n for w in items for n in w.outputs))
        return WorkRequest(items[0].request, inputs, wanted)

    def _span(self, name: str, items: list[WorkRequest], arrays: list) -> Optional[np.ndarray]:
        """One view over input ``name`` of every request, if their bytes are adjacent."""
        refs = []
        for w in items:
            ref = next((r for r in w.request.inputs if r.name == name), None)
            if ref is None:
                return None
            refs.append(ref)
        first = refs[0]
        if first.kind == messages.CUDA_SHM or first.dtype == "BYTES" or not first.shape:
            return None
        end, rows, rest = first.offset, 0, first.shape[1:]
        for ref in refs:
            if ref.offset != end or ref.region != first.region or ref.kind != first.kind \
                    or ref.gen != first.gen or ref.dtype != first.dtype \
                    or ref.shape[1:] != rest or not ref.shape:
                return None
            end += ref.nbytes
            rows += ref.shape[0]
        whole = messages.TensorRef(name, first.dtype, [rows, *rest], first.region, first.offset,
                                   end - first.offset, first.kind, first.device, first.gen)
        try:
            view = self._view(whole)
        except Exception:  # noqa: BLE001 - e.g. sizes that do not add up: copy instead
            return None
        return view if view.shape[0] == sum(a.shape[0] for a in arrays) else None

    def _run_fused(self, items, fused: WorkRequest) -> dict[int, WorkResult]:
        (result,) = self._run_list([fused]).values()
        if result.error is not None:
            return {w.request.rid: result for w in items}
        # Marks each per-request result as a share of ``result`` (split on write).
        return {w.request.rid: Share(result, i) for i, w in enumerate(items)}


def _concatenate(arrays: list, seq=None):
    """Joined along dim 0: on the device if any is (cupy), adjacent slot states as a view."""
    if any(is_device_array(a) for a in arrays):
        import cupy
        return cupy.concatenate([cupy.asarray(a) for a in arrays])
    whole = seq.joined(arrays) if seq is not None else None      # sequence_state.py
    return np.concatenate(arrays) if whole is None else whole
