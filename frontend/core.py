"""FrontendCore: the transport-neutral infer path (contract: docs/frontend-core.md).

HTTP routes and gRPC servicers convert wire formats to ``types.InferRequest``
and back; everything else happens here: model lookup and validation, the
inputs staged (one copy each) through the process's ``InferClient``, and
zero-copy output views over the worker's shm slots (``results``). The control
plane, the client shm registry, response ordering and the inbox handler are
member objects (``control``, ``shm``, ``ordering``, ``inbox``).

Buffer ownership (docs/architecture.md invariant 3) is the InferClient's: input
slots are freed at the request's final ``Response``, never earlier (a worker
may still be reading them, even after a Cancel); output slots belong to the
worker and go back with one ``Release`` when the transport calls
``InferResult.release``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Callable

from tritond import messages
from tritond.errors import TritonError, unavailable, unsupported
from tritond.inferclient import InferClient
from tritond.scheduler.summary import quantiles_of
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache

from .cache import ResponseCache, open_store
from .clientshm import ClientShm
from .control import ControlPlane
from .firstresponse import FirstResponse, histograms_on
from .memory import release_free_memory
from .inbox import Inbox
from .models import Models, ModelVersion
from .ordering import Ordering
from .params import request_fields
from .results import Results
from .sequences import LiveSequences
from .settings import TraceSettings
from .trace import Tracer
from .types import InferRequest, InferResult
from .validate import check_inputs, check_outputs

_NO_PARAMS = (0, 0, 0, 0, {})
# Inputs of one request up to this many bytes in all share one arena slot (one
# allocation and one free per request; bigger tensors are dominated by their copy).
TOGETHER_BELOW = 64 << 10
# Triton's answer to a unary call (gRPC ModelInfer) for a decoupled model; HTTP
# infer says it its own way (frontend/http/fastpath.py), as Triton does.
DECOUPLED = "ModelInfer RPC doesn't support models with decoupled transaction policy"
log = logging.getLogger("tritond.frontend")


class FrontendCore:
    """One per frontend process; every method runs on the process's event loop."""

    def __init__(self, options: dict, outbox, server_id: str, address: str,
                 scheduler_address: str, parent_address: str = "", tag: str | None = None,
                 peers: list[str] = (), cache_segment: str = ""):
        self.options = options
        self.server_id = server_id       # names the workers' /dev/shm files (custommetrics)
        self.address = address
        self.models = Models(options.model_namespacing)
        self.post = outbox.post
        self.parent = parent_address
        if tag is None:      # "in-<n>" from the address "...-frontend-<n>"
            tag = "in-" + (address.rsplit("-", 1)[-1] if address[-1:].isdigit() else "0")
        arena = ArenaPool(server_id, tag, options.input_arena_byte_size)
        self.cache = SegmentCache(writable=False)
        self.client = InferClient(outbox.post, address, scheduler_address, arena, self.cache)
        self.client.post_many = getattr(outbox, "post_many", None)   # tests: loopback outboxes
        self.client.post_batched = getattr(outbox, "post_batched", None)
        self.shm = ClientShm(options, outbox.post, self.cache)
        self.client.finished = self.shm.answered
        self.ordering = Ordering()
        self.results = Results(self.client, self.cache)
        self.inbox = Inbox(self)
        store, self._own_cache = open_store(options, server_id, tag, cache_segment)
        # summary_latencies=true: the cache's hit/miss summaries too
        self.responses = ResponseCache(
            store, quantiles_of(getattr(options, "metrics_config", [])) is not None)
        # nv_inference_first_response_histogram_ms, with histogram_latencies=true
        self.first_response = FirstResponse(
            histograms_on(getattr(options, "metrics_config", [])))
        self.control = ControlPlane(options, self.models, outbox.post, address,
                                    scheduler_address, parent_address, self.shm,
                                    self.responses, self.first_response,
                                    [p for p in peers if p != address])
        if parent_address:      # the parent owns the client shm registry (tritond/shmtable.py)
            self.shm.query = lambda query_type, /, **fields: self.control.query(
                parent_address, query_type, **fields)
            self.shm.idle = lambda gen: outbox.post(
                parent_address, messages.ShmIdle(self.address, gen))
        # a second frontend writes its own trace files (<file>.frontend<n>)
        index = address.rsplit("-", 1)[-1]
        self.tracer = Tracer(options, "" if index in ("0", address) else f".frontend{index}")
        self.control.traces = TraceSettings(self.tracer)
        self._active = self._dirty = False      # for trim_if_idle
        self.sequences = LiveSequences()        # served while draining (frontend/sequences.py)
        self.on_control: Callable[[object], None] = lambda msg: log.warning("unexpected %r", msg)

    # ------------------------------------------------------------------ inference

    async def infer(self, req: InferRequest, mv: ModelVersion | None = None,
                    cached: bool = True) -> InferResult:
        """Validate, stage and run one request; its one (final) result. Raises TritonError.

        ``mv``: the model version when the transport resolved it already.
        ``cached``: False when the response cache (``cache.py``) runs it on a miss.
        """
        # The hot path: _model and _sent inlined (a call each per request).
        if self.control.draining and not self.sequences.continues(req):
            raise unavailable("Server is shutting down")
        self._active = True
        if mv is None:
            mv = self.models.resolve(req.model, req.version)
        if cached and mv.response_cache and self.responses.store is not None:
            return await self.responses.infer(self, mv, req)
        if mv.decoupled:
            raise unsupported(DECOUPLED)
        request, slots, used = self._prepare(mv, req)
        trace = req.trace
        if trace is not None:
            self._traced(trace, mv, req, request)
        client = self.client
        fut = client.submit(request, slots, mv.sequence)   # a bare future: no task, no generator
        rid = request.rid
        if used:
            self.shm.sent(rid, used)
        if mv.preserve_ordering:
            self.ordering.track(mv.name, mv.version, rid)
        try:
            resp = await fut
        except asyncio.CancelledError:
            client.cancel(rid, fut)           # the slots stay ours until the final Response
            raise
        if self.first_response.on:
            self.first_response.observe(mv, time.monotonic_ns() - request.arrival_ns)
        if trace is None:
            return self.results.result(mv, req, resp)
        trace.worker(resp.trace, resp.children)
        trace.stamp("REQUEST_END")
        result = self.results.result(mv, req, resp)
        if trace.tensors is not None:
            self._traced_outputs(trace, result)
        return result

    def _traced(self, trace, mv: ModelVersion, req: InferRequest,
                request: messages.Request) -> None:
        """A sampled request: REQUEST_START (its arrival), and ``trace=[id]`` asks the
        scheduler and the worker for their timestamps; at level TENSORS, its inputs."""
        trace.model, trace.version, trace.request_id = mv.name, mv.version, req.id
        trace.stamp("REQUEST_START", request.arrival_ns)
        request.trace = [trace.id]
        if trace.tensors is not None:
            for t, ref in zip(req.inputs, request.inputs):
                trace.tensor("TENSOR_QUEUE_INPUT", ref.name, ref.dtype, ref.shape,
                             self._input_bytes(t, ref))

    def _input_bytes(self, t, ref: messages.TensorRef):
        """An input's bytes for a TENSORS trace (None: in CUDA memory, not written)."""
        if t.shm is None:
            return t.data
        if ref.kind == messages.CLIENT_SHM:
            return self.cache.read(ref.region, ref.offset, ref.nbytes, ref.gen)
        return None

    @staticmethod
    def _traced_outputs(trace, result: InferResult) -> None:
        for o in result.outputs:        # client shm outputs: no data (not ours to read)
            trace.tensor("TENSOR_BACKEND_OUTPUT", o.name, o.datatype, o.shape, o.data)

    async def infer_stream(self, req: InferRequest,
                           mv: ModelVersion | None = None) -> AsyncIterator[InferResult]:
        """Every result of one request (``final`` marks the last); an error response
        raises TritonError. Closing the iterator early cancels the request."""
        mv = self._model(req, mv)
        request, slots, used = self._prepare(mv, req)
        trace = req.trace
        if trace is not None:
            self._traced(trace, mv, req, request)
        stream = self.client.stream(request, slots, batched=mv.sequence)
        self._sent(mv, stream.rid, used)
        first = True
        try:
            async for resp in stream:
                if trace is not None and resp.final:
                    trace.worker(resp.trace, resp.children)
                    trace.stamp("REQUEST_END")
                if first:
                    first = False
                    if self.first_response.on:
                        self.first_response.observe(
                            mv, time.monotonic_ns() - request.arrival_ns)
                if resp.error is not None and not resp.final:
                    # One failed response of many: the stream goes on (Triton).
                    yield InferResult(mv.name, mv.version_str, req.id, {}, [], None, False,
                                      error=TritonError(resp.error.code, resp.error.message))
                    continue
                result = self.results.result(mv, req, resp)
                result.empty = resp.empty
                if trace is not None and trace.tensors is not None:
                    self._traced_outputs(trace, result)
                yield result
        finally:
            stream.cancel()                   # nothing is sent once the final one came

    def _model(self, req: InferRequest, mv: ModelVersion | None) -> ModelVersion:
        if self.control.draining and not self.sequences.continues(req):
            raise unavailable("Server is shutting down")
        self._active = True
        return mv if mv is not None else self.models.resolve(req.model, req.version)

    def _prepare(self, mv: ModelVersion, req: InferRequest) -> tuple:
        """(Request, input slots, client shm registrations used) after every check."""
        batch, sizes = check_inputs(mv, req)
        check_outputs(mv, req)
        priority, timeout, corr, flags, custom = (
            request_fields(req.parameters) if req.parameters else _NO_PARAMS)
        if corr:
            self.sequences.note(mv, corr, flags, self.models)
        used: list = []        # client shm registrations this request uses
        outputs = [messages.OutputSpec(o.name, self.shm.output_dest(o, used) if o.shm else None)
                   for o in req.outputs] if req.outputs else []
        refs, slots = self._stage(req, sizes, used)
        # rid and frontend are the InferClient's to fill in.
        return messages.Request(
            0, "", mv.key, mv.version, refs, outputs, batch, req.id, priority, timeout, corr,
            flags, custom, time.monotonic_ns()), slots, used

    def _sent(self, mv: ModelVersion, rid: int, used: list) -> None:
        if used:
            self.shm.sent(rid, used)
        if mv.preserve_ordering:
            self.ordering.track(mv.name, mv.version, rid)

    def _stage(self, req: InferRequest, sizes: list[int], used: list) -> tuple[list, list]:
        """Copy each input once into the arena (client shm inputs: none); free all on failure."""
        refs, slots = [], []
        stage = self.client.stage
        inputs = req.inputs
        try:
            if len(inputs) > 1 and sum(sizes) <= TOGETHER_BELOW \
                    and all(t.shm is None for t in inputs):
                return self.client.stage_together(inputs, sizes, slots), slots
            for t, n in zip(inputs, sizes):
                if t.shm is not None:
                    refs.append(self.shm.input_ref(req.model, t, used, req.id))
                else:
                    refs.append(stage(t.name, t.datatype, t.shape, t.data, n, slots, t.lengths))
        except BaseException:
            self.client.free(slots)
            raise
        return refs, slots

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop this core serves on (the running one, looked up once)."""
        return self.client.event_loop()

    # ------------------------------------------------------------------ inbox

    def on_messages(self, msgs: list) -> None:
        """Inbox handler: Responses, Answers and model tables (``inbox.py``); the rest
        goes to ``on_control``."""
        self.inbox.on_messages(msgs)

    @property
    def in_flight(self) -> int:
        """Requests awaiting a Response plus results not yet released."""
        return self.client.in_flight

    def close(self) -> None:
        """Unlink the input arena and drop every mapping (process exit); write the
        traces collected (Triton writes them when its trace settings end)."""
        self.tracer.close()
        self.client.arena.close()
        self.cache.close()
        if self.responses.store is not None:
            self.responses.store.close()
        if self._own_cache is not None:
            self._own_cache.unlink()
            self._own_cache.close()

    def trim_if_idle(self) -> None:
        """Once a tick (1 s) passed with no new request and nothing in flight, give
        spare big input segments and free heap pages back (``memory``); a busy
        server keeps them, since faulting 64 MiB in again costs more than a copy."""
        if self._active:
            self._active, self._dirty = False, True
        elif self._dirty and not self.in_flight:
            self._dirty = False
            self.client.arena.trim()
            release_free_memory()
