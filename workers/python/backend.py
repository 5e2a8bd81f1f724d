"""The Python backend: runs a Triton ``model.py`` (``class TritonPythonModel``) unchanged.

Triton runs each instance in a stub process; here the worker process is that
stub. The model is imported as module ``<version>.<file stem>`` with the model
directory (so ``<version>`` is a namespace package, as in Triton), the version
directory and the repository on ``sys.path``.
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys

from tritond.errors import Code, TritonError
from tritond.repository.paths import model_file
from tritond.shm.dtypes import DTYPES
from tritond.spec import ModelSpec

from ..backend import Backend, LoadContext, WorkRequest, WorkResult
from . import failures, pb_utils

MODULE_NAME = "triton_python_backend_utils"


def _load_error(ctx: LoadContext, what: str, exc: BaseException) -> TritonError:
    if isinstance(exc, TritonError):
        return exc
    message = f"{what} for model '{ctx.model}' failed: {failures.describe(exc)}"
    failures.report(message, exc)
    return TritonError(Code.INTERNAL, message)


class PythonBackend(Backend):
    """``TritonPythonModel``: auto_complete_config / initialize / execute / finalize."""

    fuses_batches = False   # Python models get the list of requests, as in Triton

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self.module = None
        self.model = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------- import

    def _import(self, filename: str):
        """Import ``<version>/model.py`` (or default_model_filename) once."""
        if self.module is not None:
            return self.module
        ctx = self.ctx
        filename = filename or "model.py"
        version_dir = os.path.join(ctx.model_dir, str(ctx.version))
        path = model_file(ctx.model_dir, ctx.version, filename)   # no escape from the version dir
        if not os.path.isfile(path):
            raise TritonError(Code.NOT_FOUND, f"unable to load model '{ctx.model}': "
                                              f"Python model file '{path}' does not exist")
        sys.modules[MODULE_NAME] = pb_utils
        pb_utils._model_dir = ctx.model_dir
        for entry in (ctx.repository, version_dir, ctx.model_dir):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        package = str(ctx.version)
        # Another model of the same version number imported in this process
        # (tests) must not shadow ours: forget the namespace package first.
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        try:
            self.module = importlib.import_module(f"{package}.{os.path.splitext(filename)[0]}")
        except Exception as exc:  # noqa: BLE001 - any import failure is a load failure
            raise _load_error(ctx, f"importing '{path}'", exc) from exc
        if not hasattr(self.module, "TritonPythonModel"):
            raise TritonError(Code.INVALID_ARG,
                              f"'{path}' does not define class TritonPythonModel")
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
            raise _load_error(self.ctx, "auto_complete_config", exc) from exc
        if not isinstance(result, pb_utils.ModelConfig):
            raise TritonError(Code.INTERNAL,
                              f"auto_complete_config function in model '{self.ctx.model}' must "
                              f"return a valid pb_utils.ModelConfig object.")
        return result.as_dict()

    # --------------------------------------------------------------- load

    def load(self, spec: ModelSpec) -> None:
        self.spec = spec
        if spec.decoupled:
            raise TritonError(Code.UNSUPPORTED, f"model '{self.ctx.model}': decoupled Python "
                                                f"models are not supported by tritond yet")
        cls = self._import(spec.default_model_filename).TritonPythonModel
        try:
            self.model = cls()
            if hasattr(self.model, "initialize"):
                self._call(self.model.initialize, self._args(spec))
        except Exception as exc:  # noqa: BLE001
            raise _load_error(self.ctx, "initialize", exc) from exc

    def _args(self, spec: ModelSpec) -> dict:
        """Exactly Triton's ``initialize`` args (protocol.md §5.1a), all strings."""
        ctx = self.ctx
        return {
            "model_config": spec.config_json,
            "model_instance_kind": ctx.kind,
            "model_instance_name": ctx.instance,
            "model_instance_device_id": str(ctx.device_id),
            "model_repository": ctx.model_dir,
            "model_version": str(ctx.version),
            "model_name": ctx.model,
        }

    def _call(self, fn, *args):
        """Call a model method; ``async def`` ones run on this backend's event loop."""
        result = fn(*args)
        if inspect.isawaitable(result):
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            result = self._loop.run_until_complete(result)
        return result

    def unload(self) -> None:
        try:
            if self.model is not None and hasattr(self.model, "finalize"):
                self._call(self.model.finalize)
        finally:
            self.model = None
            if self._loop is not None:
                self._loop.close()
                self._loop = None

    # ------------------------------------------------------------ execute

    def execute(self, requests: list[WorkRequest]) -> list[WorkResult]:
        pb_requests = [self._request(w) for w in requests]
        try:
            responses = self._call(self.model.execute, pb_requests)
        except Exception as exc:  # noqa: BLE001 - the model's exception, as Triton reports it
            failures.report(self._failure(failures.describe(exc)), exc)
            return self._all_failed(pb_requests, failures.describe(exc))
        return self._results(pb_requests, responses)

    def _request(self, w: WorkRequest) -> pb_utils.InferenceRequest:
        req = w.request
        tensors = [pb_utils.Tensor(ref.name, w.inputs[ref.name], DTYPES[ref.dtype].enum)
                   for ref in req.inputs]
        if len(w.inputs) > len(tensors):   # sequence control and state inputs (workers/sequence.py)
            tensors += [pb_utils.Tensor(n, a) for n, a in w.inputs.items()
                        if all(t.name() != n for t in tensors)]
        pb = pb_utils.InferenceRequest(
            request_id=req.request_id, correlation_id=req.correlation_id, inputs=tensors,
            requested_output_names=w.outputs, model_name=self.ctx.model,
            model_version=req.version, flags=req.flags, timeout=req.timeout_us)
        pb._parameters = dict(req.parameters)  # already validated by the frontend
        pb._cancel_key = (req.frontend, req.rid)
        return pb

    def _results(self, pb_requests, responses) -> list[WorkResult]:
        """Check the model's return value (§5.5) and convert each response."""
        if responses is None:  # every request must then have used its response sender
            responses = [r._sender.response if r._sender and r._sender.closed else None
                         for r in pb_requests]
        elif not isinstance(responses, (list, tuple)):
            return self._all_failed(pb_requests, "Expected a list in the execute return, got "
                                    f"{type(responses).__name__}")
        if len(responses) != len(pb_requests):
            return self._all_failed(
                pb_requests, "Number of InferenceResponse objects do not match the number of "
                f"InferenceRequest objects. InferenceRequest(s) size is:{len(pb_requests)}, "
                f"and InferenceResponse(s) size is:{len(responses)}")
        if any(r is None for r in responses):
            return self._all_failed(pb_requests, "execute returned None for a request that did "
                                    "not send its response through the response sender")
        return [self._result(r) for r in responses]

    def _all_failed(self, pb_requests, message: str) -> list[WorkResult]:
        return [WorkResult.failed(Code.INTERNAL, self._failure(message)) for _ in pb_requests]

    def _failure(self, message: str) -> str:
        # Triton's stub names the instance ("add_sub_0_0"), not the model.
        return f"Failed to process the request(s) for model '{self.ctx.instance}', message: {message}"

    @staticmethod
    def _result(resp) -> WorkResult:
        if not isinstance(resp, pb_utils.InferenceResponse):
            return WorkResult.failed(Code.INTERNAL, f"execute returned a {type(resp).__name__}, "
                                                    f"expected pb_utils.InferenceResponse")
        if resp.has_error():
            err = resp.error()
            return WorkResult.failed(err.code(), err.message())
        outputs = {t.name(): t.as_numpy() for t in resp.output_tensors()}
        return WorkResult(outputs=outputs, parameters=json.loads(resp.parameters()))
