"""FrontendCore: the transport-neutral infer path (contract: docs/frontend-core.md).

HTTP routes and gRPC servicers convert wire formats to ``types.InferRequest``
and back; everything else happens here: model lookup and §8.1 validation,
one copy of each input into this process's shm arena, the ``Request`` to the
scheduler, and zero-copy output views over the worker's shm slots.

Buffer ownership (ARCHITECTURE.md invariant 3): input slots are freed when the
``Response`` for their request arrives, never earlier (a worker may still be
reading them, even after a Cancel); output slots belong to the worker and are
handed back with one ``Release`` when the transport calls ``InferResult.release``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from tritond import messages
from tritond.errors import TritonError, unavailable, unsupported
from tritond.shm.arena import ArenaPool, is_oneoff
from tritond.shm.views import SegmentCache

from .classification import classify
from .clientshm import ClientShm
from .control import ControlPlane
from .memory import release_free_memory
from .models import Models, ModelVersion, dead_worker_regions
from .ordering import Ordering
from .params import request_fields
from .settings import LogSettings, TraceSettings
from .types import InferRequest, InferResult, OutputTensor
from .validate import check_inputs, check_outputs

_NO_PARAMS = (0, 0, 0, 0, {})
log = logging.getLogger("tritond.frontend")
RELEASE_LINGER_S = 0.005   # idle frontends hand output slots back after this


class FrontendCore(ClientShm, Ordering, ControlPlane):
    """One per frontend process; every method runs on the process's event loop."""

    def __init__(self, options: dict, outbox, server_id: str, address: str,
                 scheduler_address: str, parent_address: str = "", tag: str | None = None):
        self.options = options
        self.address = address
        self.models = Models()
        self._post = outbox.post
        self._scheduler = scheduler_address
        self._parent = parent_address
        if tag is None:      # "in-<n>" from the address "...-frontend-<n>"
            tag = "in-" + (address.rsplit("-", 1)[-1] if address[-1:].isdigit() else "0")
        self._arena = ArenaPool(server_id, tag, options.input_arena_byte_size)
        self._cache = SegmentCache(writable=False)
        self._shm_init()
        self._order_init()
        # Looked up once: 3.11's get_running_loop() is a getpid() syscall per call.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, tuple[asyncio.Future, list]] = {}
        self._queries: dict[int, asyncio.Future] = {}
        self._next_id = 1
        self._unreleased = 0
        self._held: dict[str, list] = {}               # instance -> output slots to release
        self._held_timer: asyncio.TimerHandle | None = None
        self._active = self._dirty = False      # for trim_if_idle
        self.draining = False
        self.logs = LogSettings(options)
        self.traces = TraceSettings(options)
        self.control: Callable[[object], None] = lambda msg: log.warning("unexpected %r", msg)

    # ------------------------------------------------------------------ inference

    async def infer(self, req: InferRequest) -> InferResult:
        """Validate, stage and run one request; raises TritonError."""
        if self.draining:
            raise unavailable("Server is shutting down")
        self._active = True
        mv = self.models.resolve(req.model, req.version)
        if mv.decoupled:
            raise unsupported(f"model '{mv.name}' uses the decoupled transaction policy, "
                              "which needs a streaming endpoint")
        batch, sizes = check_inputs(mv, req)
        check_outputs(mv, req)
        priority, timeout, corr, flags, custom = (
            request_fields(req.parameters) if req.parameters else _NO_PARAMS)
        used: list = []        # client shm registrations this request uses
        outputs = [messages.OutputSpec(o.name, self._shm_dest(o, used) if o.shm else None)
                   for o in req.outputs] if req.outputs else []
        refs, slots = self._stage(req, sizes, used)
        rid = self._next_id
        self._next_id = rid + 1
        fut = self.event_loop().create_future()
        self._pending[rid] = (fut, slots)
        if used:
            self._shm_sent(rid, used)
        if self._held:
            self._send_releases()          # they ride in the same frame as this Request
        self._post(self._scheduler, messages.Request(
            rid, self.address, mv.name, mv.version, refs, outputs, batch, req.id, priority,
            timeout, corr, flags, custom, time.monotonic_ns()))
        if mv.preserve_ordering:
            self._order_track(mv.name, mv.version, rid)
        try:
            resp = await fut
        except asyncio.CancelledError:
            if rid in self._pending:       # the slots stay ours until the Response comes
                self._post(self._scheduler, messages.Cancel(self.address, rid))
            elif fut.done() and not fut.cancelled():
                # Answered in the same loop turn as the cancel: nobody reads it.
                self._drop_outputs(fut.result())
            raise
        return self._result(mv, req, resp)

    def _stage(self, req: InferRequest, sizes: list[int], used: list) -> tuple[list, list]:
        """Copy each input once into the arena (client shm inputs: none); free all on failure."""
        refs, slots = [], []
        alloc = self._arena.alloc
        try:
            for t, n in zip(req.inputs, sizes):
                if t.shm is not None:
                    refs.append(self._shm_input(req.model, t, used))
                    continue
                slot = alloc(n)
                slots.append((slot.region, slot.offset))
                if n:
                    data = t.data
                    if type(data) is memoryview and (data.format != "B" or data.ndim != 1):
                        data = data.cast("B")
                    slot.view[:] = data
                refs.append(slot.ref(t.name, t.datatype, t.shape))
        except BaseException:
            self._free(slots)
            raise
        return refs, slots

    def _free(self, slots: list) -> None:
        free = self._arena.free
        for region, offset in slots:
            free(region, offset)

    def _result(self, mv: ModelVersion, req: InferRequest, resp: messages.Response) -> InferResult:
        """Map output refs (zero copy) and apply classification; Release on any failure."""
        held = [(r.region, r.offset) for r in resp.outputs if r.kind == messages.SERVER_SHM]
        release = self._releaser(resp.instance, held) if held and resp.instance else None
        try:
            if resp.error is not None:
                raise TritonError(resp.error.code, resp.error.message)
            outputs = self._outputs(mv, req, resp.outputs)
        except BaseException:
            if release is not None:
                release()
            raise
        version = str(resp.model_version) if resp.model_version else mv.version_str
        return InferResult(mv.name, version, req.id, resp.parameters, outputs, release)

    def _outputs(self, mv: ModelVersion, req: InferRequest, refs: list) -> list[OutputTensor]:
        buffer = self._cache.buffer
        requested = {o.name: o for o in req.outputs} if req.outputs else None
        outs = []
        for ref in refs:
            want = requested.get(ref.name) if requested is not None else None
            if requested is not None and want is None:
                continue                       # a backend that returned extra outputs
            data = buffer(ref.region, ref.offset, ref.nbytes) if ref.kind == messages.SERVER_SHM \
                else None
            out = OutputTensor(ref.name, ref.dtype, ref.shape, data, want)
            if want is not None and want.classification:
                out = self._classify(mv, out, want.classification)
            outs.append(out)
        if requested is not None and len(outs) > 1:
            order = {name: i for i, name in enumerate(requested)}
            outs.sort(key=lambda o: order[o.name])
        return outs

    def _classify(self, mv: ModelVersion, out: OutputTensor, k: int) -> OutputTensor:
        spec = mv.outputs.get(out.name)
        batching = mv.max_batch_size > 0 and bool(spec is None or spec.dims)
        data, shape = classify(out.name, out.datatype, out.as_numpy(), k, batching,
                               mv.labels.get(out.name))
        return OutputTensor(out.name, "BYTES", shape, memoryview(data), out.requested)

    def _releaser(self, instance: str, slots: list) -> Callable[[], None]:
        self._unreleased += 1

        def release() -> None:
            self._unreleased -= 1
            big = False
            for region, _ in slots:
                if is_oneoff(region):
                    self._cache.forget(region)
                    big = True
            self._release_later(instance, slots, now=big)
        return release

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop this core serves on (the running one, looked up once)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _release_later(self, instance: str, slots: list, now: bool = False) -> None:
        """Queue output slots for their worker (via the scheduler, on its next Execute).

        They wait for this frontend's next Request so that both travel in one
        frame: a Release of its own would wake the scheduler once more per
        request, which at low load costs as much as the request. An idle
        frontend sends them after RELEASE_LINGER_S; one-off (big) segments go now.
        """
        self._held.setdefault(instance, []).extend(slots)
        if now:
            self._send_releases()
        elif self._held_timer is None:
            self._held_timer = self.event_loop().call_later(
                RELEASE_LINGER_S, self._send_releases)

    def _send_releases(self) -> None:
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        held, self._held = self._held, {}
        for instance, slots in held.items():
            self._post(self._scheduler, messages.Release(instance, slots))

    # ------------------------------------------------------------------ inbox

    def on_messages(self, msgs: list) -> None:
        """Inbox handler: Responses, Answers and model tables; the rest goes to ``control``.

        One message that fails to apply is logged and skipped: raising here
        would drop the rest of the frame and leave those requests waiting.
        """
        for msg in msgs:
            try:
                self._on_message(msg)
            except Exception:  # noqa: BLE001 - see above
                log.exception("failed to handle %s", type(msg).__name__)

    def _on_message(self, msg) -> None:
        kind = type(msg)
        if kind is messages.Response:
            if self._order_of and msg.rid in self._order_of:   # preserve_ordering
                for resp in self._order_release(msg):
                    self._on_response(resp)
            else:
                self._on_response(msg)
        elif kind in messages.ANSWERS:
            fut = self._queries.pop(msg.qid, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind is messages.ModelTable:
            self.models.update(msg)
            # A dead worker's arenas are unlinked by the parent; only
            # unmapping them here gives the memory back.
            for region in dead_worker_regions(self._cache.server_regions(), msg):
                self._cache.forget(region)
            if msg.seq and self._parent:     # the parent waits for this before READY=1
                self._post(self._parent, messages.TableApplied(self.address, msg.seq))
        else:
            self.control(msg)

    def _on_response(self, resp: messages.Response) -> None:
        entry = self._pending.pop(resp.rid, None)
        if entry is None:
            log.warning("Response for unknown request %d", resp.rid)
            return
        fut, slots = entry
        self._free(slots)
        if self._shm_uses:
            self._shm_answered(resp.rid, resp.instance)
        if not fut.done():
            fut.set_result(resp)
        else:                                      # cancelled: nobody will read them
            self._drop_outputs(resp)

    def _drop_outputs(self, resp: messages.Response) -> None:
        """Hand an unread Response's output slots back to its worker."""
        if resp.outputs and resp.instance:
            held = [(r.region, r.offset) for r in resp.outputs if r.kind == messages.SERVER_SHM]
            if held:
                self._release_later(resp.instance, held)

    @property
    def in_flight(self) -> int:
        """Requests awaiting a Response plus results not yet released."""
        return len(self._pending) + self._unreleased

    def close(self) -> None:
        """Unlink the input arena and drop every mapping (process exit)."""
        self._arena.close()
        self._cache.close()

    def trim_if_idle(self) -> None:
        """Once a tick (1 s) passed with no new request and nothing in flight, give
        spare big input segments and free heap pages back (``memory``); a busy
        server keeps them, since faulting 64 MiB in again costs more than a copy."""
        if self._active:
            self._active, self._dirty = False, True
        elif self._dirty and not self.in_flight:
            self._dirty = False
            self._arena.trim()
            release_free_memory()
