"""The Python backend: runs a Triton ``model.py`` (``class TritonPythonModel``) unchanged.

Triton runs each instance in a stub process; here the worker process is that
stub. The model file is imported as ``<version>.<file stem>`` (``modelfile.py``:
``<version>`` is a namespace package, as in Triton).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import threading

from tritond.errors import Code, TritonError
from tritond.shm.dtypes import DTYPES
from tritond.spec import ModelSpec

from .. import cancel
from ..backend import Backend, LoadContext, WorkRequest, WorkResult
from . import (bls, blstrace, custom_metrics, decoupled_state, failures, modelfile, pb_utils,
               reschedule, returns)

CANCEL_POLL_S = 0.02      # how often a wait for an async execute reads the inbox for cancels


class PythonBackend(Backend):
    """``TritonPythonModel``: auto_complete_config / initialize / execute / finalize."""

    fuses_batches = False   # Python models get the list of requests, as in Triton

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self.module = None
        self.model = None
        self._bg: asyncio.AbstractEventLoop | None = None     # async def methods run here
        self._sequence_tensors: dict = {}     # (name, id(array)) -> (array, Tensor)
        self._pruned = False       # decoupled with implicit state: decoupled_state.py

    def _import(self, filename: str):
        """Import the model file once."""
        if self.module is None:
            self.module = modelfile.import_model(self.ctx, filename)
        return self.module

    # ------------------------------------------------------ auto-complete

    def auto_complete(self, config: dict) -> dict:
        """Run the static ``auto_complete_config(pb_utils.ModelConfig)`` when defined."""
        cls = self._import(config.get("default_model_filename", "")).TritonPythonModel
        hook = getattr(cls, "auto_complete_config", None)
        if hook is None:
            return config
        try:
            result = hook(pb_utils.ModelConfig(json.dumps(config)))
        except Exception as exc:  # noqa: BLE001 - the model's ValueError etc.
            raise modelfile.load_error(self.ctx, "auto_complete_config", exc) from exc
        if not isinstance(result, pb_utils.ModelConfig):
            raise TritonError(Code.INTERNAL,
                              f"auto_complete_config function in model '{self.ctx.model}' must "
                              f"return a valid pb.ModelConfig object.")   # python_backend's text
        return result.as_dict()

    # --------------------------------------------------------------- load

    def load(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._pruned = decoupled_state.pruned(spec)
        self.device_arrays = modelfile.device_inputs(self.ctx, spec)
        cls = self._import(spec.default_model_filename).TritonPythonModel
        try:
            self.model = cls()
            if hasattr(self.model, "initialize"):
                self._call(self.model.initialize, modelfile.initialize_args(self.ctx, spec))
        except Exception as exc:  # noqa: BLE001
            raise modelfile.load_error(self.ctx, "initialize", exc) from exc
        bls.serving(True)

    @property
    def user_ready(self):
        """The model's own readiness check when it defines ``is_ready()`` (python_backend
        asks it on every model-ready query: workers/python/readiness.py), else None."""
        return self._is_ready if callable(getattr(self.model, "is_ready", None)) else None

    def _is_ready(self) -> bool:
        """Call ``is_ready()`` on the readiness thread, beside ``execute``; an ``async def``
        one on the model's event loop. python_backend accepts only a bool."""
        result = self.model.is_ready()
        if inspect.isawaitable(result):
            result = asyncio.run_coroutine_threadsafe(result, self._async_loop()).result()
        if not isinstance(result, bool):
            raise TritonError(Code.INTERNAL, "is_ready() must return a boolean value")
        return result

    def _call(self, fn, *args, watch: bool = False):
        """Call a model method; an ``async def`` one runs on the model's event loop, which
        keeps running after it returned (python_backend's stub loop): tasks it started
        (``asyncio.create_task``, e.g. responses sent later) go on. ``watch`` (execute):
        meanwhile this thread reads the inbox for cancels, which the model's thread cannot
        (``is_cancelled()`` and BLS calls' cancellation rely on it)."""
        result = fn(*args)
        if inspect.isawaitable(result):
            future = asyncio.run_coroutine_threadsafe(result, self._async_loop())
            while True:
                try:
                    return future.result(timeout=CANCEL_POLL_S if watch else None)
                except concurrent.futures.TimeoutError:
                    cancel.poll()
        return result

    def _async_loop(self) -> asyncio.AbstractEventLoop:
        """The model's one event loop, in a thread of its own (started on first use)."""
        if self._bg is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="model-asyncio",
                             daemon=True).start()
            self._bg = loop
        return self._bg

    def unload(self) -> None:
        bls.serving(False)
        try:
            if self.model is not None and hasattr(self.model, "finalize"):
                self._call(self.model.finalize)
        finally:
            self.model = None
            custom_metrics.close()       # its series leave /metrics with the model
            if self._bg is not None:
                self._bg.call_soon_threadsafe(self._bg.stop)
                self._bg = None

    # ------------------------------------------------------------ execute

    def execute(self, requests: list[WorkRequest]) -> list[WorkResult]:
        pb_requests = [self._request(w) for w in requests]
        pb_utils._executing = pb_requests        # BLS calls follow their cancellation
        try:
            if self.spec is not None and self.spec.decoupled:
                return reschedule.decoupled(self, pb_requests, self._execute_decoupled(pb_requests))
            responses = self._call(self.model.execute, pb_requests, watch=True)
        except Exception as exc:  # noqa: BLE001 - the model's exception, as Triton reports it
            failures.report(returns.failure(self, failures.describe(exc)), exc)
            return returns.keep_sent(pb_requests, returns.all_failed(self, pb_requests,
                                                                     failures.describe(exc)))
        finally:
            pb_utils._executing = []
        return returns.keep_sent(pb_requests,
                                 reschedule.results(self, requests, pb_requests, responses))

    def _request(self, w: WorkRequest) -> pb_utils.InferenceRequest:
        req = w.request
        of = pb_utils.Tensor._of        # the worker's own views: no per-tensor checks
        tensors = [of(ref.name, w.inputs[ref.name], DTYPES[ref.dtype].enum)
                   for ref in req.inputs]
        for tensor, ref in zip(tensors, req.inputs):
            tensor._ref = ref        # BLS passes it on by reference (bls_call.py)
        if len(w.inputs) > len(tensors):   # sequence control and state inputs (workers/sequence.py)
            own = {ref.name for ref in req.inputs}
            kept = self._sequence_tensors
            for n, a in w.inputs.items():
                if n not in own:
                    t = kept.get((n, id(a)))    # _sequence_tensor's cache, looked up inline
                    tensors.append(t[1] if t is not None and t[0] is a
                                   else self._sequence_tensor(n, a))
        # Parameters were validated by the frontend; the lists are this request's own.
        outputs = decoupled_state.requested(req, self.spec) if self._pruned else w.outputs
        pb = pb_utils.InferenceRequest._received(
            req.request_id, req.correlation_id, tensors, list(outputs), self.ctx.model,
            req.version, req.flags, req.timeout_us,
            blstrace.trace_of(req) if req.trace else None, dict(req.parameters),
            (req.frontend, req.rid))
        if self.spec is not None and self.spec.decoupled:
            pb._decoupled = True
            hub = self.streams
            if hub is not None:   # every response goes through the worker's hub
                pb.get_response_sender().attach(reschedule.sink(hub, req, outputs))
        return pb

    def _sequence_tensor(self, name: str, arr) -> pb_utils.Tensor:
        """The Tensor of a sequence control or state input. The worker keeps those arrays
        read-only across steps (workers/sequence.py), so each one's Tensor is made once."""
        if arr.flags.writeable:
            return pb_utils.Tensor(name, arr)
        key = (name, id(arr))
        kept = self._sequence_tensors.get(key)
        if kept is not None and kept[0] is arr:     # the array itself is held: no id reuse
            return kept[1]
        if len(self._sequence_tensors) >= 4096:
            self._sequence_tensors.clear()
        tensor = pb_utils.Tensor(name, arr)
        self._sequence_tensors[key] = (arr, tensor)
        return tensor

    # ---------------------------------------------------------- decoupled

    def _execute_decoupled(self, pb_requests) -> list[WorkResult]:
        """Run a decoupled ``execute``: it must return None; responses come through
        the senders, now or later (an ``async def`` one runs in the background)."""
        try:
            returned = self.model.execute(pb_requests)
            if inspect.isawaitable(returned):
                self._background(returned, pb_requests)    # Triton does not wait for it
                returned = None
        except Exception as exc:  # noqa: BLE001 - the model's exception, as Triton reports it
            self._fail_open(pb_requests, returns.failure(self, failures.describe(exc)), exc)
            returned = None
        self._check_none(returned, pb_requests)
        return [WorkResult(streamed=True) for _ in pb_requests]

    def _check_none(self, returned, pb_requests) -> None:
        if returned is not None:       # the stub's own words: no exception type, no trace
            self._fail_open(pb_requests, returns.failure(
                self, f"Python model '{self.ctx.instance}' is using the decoupled mode and the "
                "execute function must return None."))

    def _fail_open(self, pb_requests, message: str, exc: BaseException | None = None) -> None:
        """After a failed execute: requests whose sender is still open get the error, final."""
        failures.report(message, exc)
        response = pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
        for pb in pb_requests:
            sender = pb.get_response_sender()
            if not sender.closed:
                try:
                    sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                except pb_utils.TritonModelException:
                    pass                 # closed by a model thread meanwhile

    def _background(self, coro, pb_requests) -> None:
        """Run a decoupled ``async def execute`` on the model's loop, not waiting for it."""

        def done(fut) -> None:
            try:
                returned = fut.result()
            except BaseException as exc:  # noqa: BLE001 - reported as the requests' error
                self._fail_open(pb_requests, returns.failure(self, failures.describe(exc)), exc)
                return
            self._check_none(returned, pb_requests)
        asyncio.run_coroutine_threadsafe(coro, self._async_loop()).add_done_callback(done)
