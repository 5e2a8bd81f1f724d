"""BLS calls: ``pb_utils.InferenceRequest.exec()`` over the BLS channel (``async_exec()``:
``bls_async_call.py``, on the same pieces).

Inputs: a tensor the model received (its shm ``TensorRef`` is attached by the
backend) passes by reference when it lives in the server's shared memory; any
other ``pb_utils.Tensor`` (a client shm input included) is copied once into the
BLS input arena. Outputs come back as numpy views of the answering
worker's shared memory (no copy; BYTES are decoded) and their slots go back
to that worker when the ``InferenceResponse`` and its tensors are dropped.
"""
from __future__ import annotations

import queue
import weakref

import numpy as np

from tritond import messages
from tritond.shm import dtypes

from . import bls, blstrace
from .response_iterator import ResponseIterator
from .inference import (TRITONSERVER_MEMORY_CPU, TRITONSERVER_MEMORY_CPU_PINNED,
                        TRITONSERVER_MEMORY_GPU, InferenceResponse, TritonError,
                        TritonModelException)
from .tensor import Tensor

_BY_ENUM = {d.enum: d.name for d in dtypes.DTYPES.values()}
POLL_S = 0.02            # how often a waiting call checks whether its caller was cancelled


def _callers_cancelled() -> bool:
    """Whether every request the model is executing was cancelled (then its BLS calls are).

    The backend sets ``pb_utils._executing`` around ``execute``; a call cannot
    tell which of a batch's requests it serves, so it is cancelled only when
    all of them are. ``is_cancelled`` polls the worker's inbox: the model's
    thread calls it, never the BLS thread.
    """
    from . import pb_utils
    callers = pb_utils._executing
    return bool(callers) and all(r.is_cancelled() for r in callers)


def build(pb, ch: bls.BlsChannel, decoupled: bool = False) -> tuple[messages.Request, list]:
    """The ``messages.Request`` of a BLS ``pb_utils.InferenceRequest`` (inputs staged);
    ``decoupled``: the caller iterates the responses (else a decoupled model refuses it)."""
    if not pb.model_name:
        raise TritonModelException("BLS: InferenceRequest needs a model_name")
    _check_memory(pb._preferred_memory)
    slots: list = []
    refs = []
    try:
        for tensor in pb.inputs():
            refs.append(_input(tensor, ch, slots))
    except BaseException:
        ch.client.free(slots)
        raise
    batch = -1                       # the scheduler knows whether the model batches
    version = int(pb.model_version) if pb.model_version not in (None, "") else -1
    req = messages.Request(
        0, "", pb.model_name, version, refs,
        [messages.OutputSpec(n) for n in pb._requested], batch,   # noqa: SLF001 - in order
        pb.request_id(), 0, int(pb.timeout() or 0), pb.correlation_id(), pb.flags(),
        dict(pb._parameters))
    req.unary = not decoupled
    return req, slots


def _check_memory(preferred) -> None:
    """``preferred_memory``: outputs come back in CPU memory (shared memory views), which
    is what CPU asks for; GPU gets CPU memory too, as from a Triton built without GPU
    support (python_backend's ResponseAlloc); any other type is refused."""
    kind = getattr(preferred, "preferred_memory_type", None)
    if kind not in (TRITONSERVER_MEMORY_CPU, TRITONSERVER_MEMORY_CPU_PINNED,
                    TRITONSERVER_MEMORY_GPU):
        raise TritonModelException(f"BLS: invalid preferred memory type {kind!r} (expected "
                                   f"TRITONSERVER_MEMORY_CPU or TRITONSERVER_MEMORY_GPU)")


def _input(tensor, ch: bls.BlsChannel, slots: list) -> messages.TensorRef:
    arr = tensor._array                     # numpy, or cupy for a GPU tensor
    ref = getattr(tensor, "_ref", None)
    # A received input goes on by reference when it lies in the server's shared memory.
    # A client's region (system or CUDA) passes by reference only to the model it was
    # sent to: the frontend tells that model's worker (not a BLS callee's) to drop its
    # mapping when the client unregisters it, so a callee gets a copy (as from Triton's
    # Python backend, whose stub holds its own copy of every input).
    if ref is not None and list(arr.shape) == list(ref.shape) \
            and ref.kind == messages.SERVER_SHM:
        return messages.TensorRef(tensor.name(), ref.dtype, ref.shape, ref.region, ref.offset,
                                  ref.nbytes, ref.kind, ref.device, ref.gen, ref.lengths_at)
    if not tensor.is_cpu():
        arr = arr.get()                     # a GPU tensor the model made: staged via the host
    datatype = _BY_ENUM.get(tensor.triton_dtype())
    if datatype is None:
        raise TritonModelException(f"BLS: tensor '{tensor.name()}' has an unknown datatype")
    table = None
    if datatype == "BYTES":
        data, table = dtypes.serialize_bytes_table(arr)     # the callee splits with the table
        nbytes = len(data)
    else:
        arr = np.ascontiguousarray(arr)
        data = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b""
        nbytes = arr.nbytes
    with ch.lock:
        return ch.client.stage(tensor.name(), datatype, list(arr.shape), data, nbytes, slots,
                               table)


class _Lease:
    """Owns the output slots of one BLS Response until the last holder is gone."""

    __slots__ = ("__weakref__",)


def response(resp: messages.Response, ch: bls.BlsChannel) -> InferenceResponse:
    """A ``pb_utils.InferenceResponse`` over ``resp``'s outputs (views; released on drop)."""
    if resp.error is not None:
        ch.release(lambda: ch.client.drop(resp))
        code = TritonError.code_of(resp.error.code)
        return _unread(InferenceResponse(error=TritonError(resp.error.message, code)))
    lease = _Lease()
    with ch.lock:
        release = ch.client.releaser(resp)
        try:
            arrays = [ch.cache.array(ref) for ref in resp.outputs]
        except Exception as exc:  # noqa: BLE001 - a mapping failure fails this call only
            if release is not None:
                release()
            return _unread(InferenceResponse(
                error=TritonError(f"BLS: cannot read outputs: {exc}")))
    tensors = []
    for ref, arr in zip(resp.outputs, arrays):
        t = Tensor._typed(ref.name, arr, dtypes.DTYPES[ref.dtype].enum)
        t._lease = lease
        tensors.append(t)
    out = InferenceResponse(output_tensors=tensors, parameters=dict(resp.parameters))
    out._lease = lease
    if resp.empty:                  # the callee's bare FINAL flag: no response to read
        _unread(out)
    if release is not None:
        weakref.finalize(lease, ch.release, release)
    return out


def _unread(out: InferenceResponse) -> InferenceResponse:
    """``parameters()`` is "" (python_backend reads a response's parameters only when it
    has no error, and there are none to read without a response)."""
    out._unread = True
    return out


def execute(pb, decoupled: bool = False):
    """``exec()``: block this thread until the answer comes (reading it here, or from
    the BLS thread once one runs)."""
    ch = bls.channel()
    bls.check_serving()
    req, slots = build(pb, ch, decoupled)
    if decoupled:
        return stream(pb, ch, req, slots)
    answers: queue.SimpleQueue = queue.SimpleQueue()
    rid = ch.send(req, slots, blstrace.watch(pb, req, answers.put))
    return _final(answers, ch, rid)


def stream(pb, ch: bls.BlsChannel, req: messages.Request, slots: list) -> ResponseIterator:
    """Send a decoupled call; its ResponseIterator (for ``exec`` and ``async_exec``)."""
    ch.start_reader()               # the iterator may be read on a blocked loop: a thread reads
    answers: queue.SimpleQueue = queue.SimpleQueue()
    reader = [lambda: None]         # the iterator, weakly: the sink must not keep it alive

    def put(resp) -> None:
        answers.put(resp)
        if (it := reader[0]()) is not None:
            it.arrived()

    sink = _Unread(ch, put, _drain_queue(answers))
    rid = ch.send(req, slots, blstrace.watch(pb, req, sink.put))
    it = ResponseIterator(answers, ch, rid, sink.token())
    reader[0] = weakref.ref(it)
    return it


class _Unread:
    """The responses of a call nobody will read: once a decoupled call's iterator is gone
    (dropped unfinished, or never started) or an ``async_exec`` was given up, those
    queued and those still to come are released to their worker at once, as Triton's
    ResponseIterator frees them when it is destroyed; else the callee's output slots
    were held for good."""

    __slots__ = ("ch", "_put", "_drain", "abandoned", "__weakref__")

    def __init__(self, ch: bls.BlsChannel, put, drain) -> None:
        self.ch, self._put, self._drain, self.abandoned = ch, put, drain, False

    def put(self, resp) -> None:
        """A Response of the call (the BLS thread, under ``ch.lock``)."""
        if self.abandoned:
            self.ch.client.drop(resp)
        else:
            self._put(resp)

    def token(self) -> "_Token":
        """An object for the iterator's frame to hold: its end abandons the rest, and so
        does ``token.end()`` (once: the iterator's ``finally``)."""
        token = _Token()
        token.end = weakref.finalize(token, self.abandon)
        return token

    def abandon(self) -> None:
        self.ch.release(self._abandon)

    def _abandon(self) -> None:
        self.abandoned = True
        for resp in self._drain():
            self.ch.client.drop(resp)


class _Token:
    __slots__ = ("end", "__weakref__")


def _drain_queue(answers: queue.SimpleQueue):
    def drain() -> list:
        items = []
        while True:
            try:
                items.append(answers.get_nowait())
            except queue.Empty:
                return items
    return drain


class _Unary:
    """What a non-decoupled call keeps of its answers: the first real response (any
    other is released unread), and one cancel sent once the caller's request is cancelled."""

    __slots__ = ("ch", "rid", "first", "cancelled")

    def __init__(self, ch: bls.BlsChannel, rid: int) -> None:
        self.ch, self.rid, self.first, self.cancelled = ch, rid, None, False

    def idle(self) -> None:
        if not self.cancelled and _callers_cancelled():
            self.cancelled = True
            self.ch.cancel(self.rid)

    def take(self, resp) -> InferenceResponse | None:
        """The call's answer once ``resp`` is the final one, else None."""
        if self.first is None and (resp.outputs or resp.error is not None or resp.final):
            self.first = resp
        else:
            self.ch.release(lambda r=resp: self.ch.client.drop(r))
        return response(self.first, self.ch) if resp.final else None


def _final(answers: queue.SimpleQueue, ch: bls.BlsChannel, rid: int) -> InferenceResponse:
    call = _Unary(ch, rid)
    while True:
        try:
            resp = ch.wait(answers, POLL_S)
        except queue.Empty:
            call.idle()
            continue
        if (answer := call.take(resp)) is not None:
            return answer

