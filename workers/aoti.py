"""The PyTorch backend's ``platform: "torch_aoti"``: one AOTInductor package per worker.

A ``model.pt2`` (``torch._inductor.aoti_compile_and_package`` of a
``torch.export`` program) is opened with ``torch._inductor.aoti_load_package``;
its runner takes and returns flat tensor lists, named by the package's call
specification (workers/aotispec.py) as Triton's backend names them. Tensors go
in and out as the TorchScript backend moves them (workers/pytorch.py: shared
memory views on CPU, ``cuda:<device_id>`` on GPU, requests fused along dim 0
when the model batches). Load errors use Triton's texts (src/pt2).

As under Triton, the package trusts that the config's datatypes and dims are
the ones it was compiled for (requests are checked against the config, not the
package): ``AOTI_RUNTIME_CHECK_INPUTS=1`` in the server's environment makes
the runner check each input's dtype and dims itself (a package exported with
the default 0/1 specialisation then refuses a dim of 1).
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Optional

from tritond.errors import Code, TritonError
from tritond.repository.paths import model_file
from tritond.spec import ModelSpec

from . import aotispec, pytorchio
from .backend import WorkRequest, WorkResult, run_each
from .pytorch import PyTorchBackend, torch

try:
    from torch._inductor import aoti_load_package
except ImportError:     # backend_class reports it as "... is not available: ..."
    raise ImportError(f"torch {torch.__version__} has no torch._inductor.aoti_load_package; "
                      "platform 'torch_aoti' needs torch 2.6 or newer") from None

log = logging.getLogger("tritond.workers.aoti")


class AotiBackend(PyTorchBackend):
    """Runs ``<model_dir>/<version>/<default_model_filename or model.pt2>``."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.runner = None

    def auto_complete(self, config: dict) -> dict:
        # Triton's backend says so and leaves the config as it is
        log.warning("Auto-complete configuration is not supported for Inductor models. "
                    "Skipping auto-complete for model \"%s\".", self.ctx.model)
        return config

    def model_path(self, spec: ModelSpec) -> str:
        path = model_file(self.ctx.model_dir, self.ctx.version,
                          spec.default_model_filename or "model.pt2")
        if not os.path.isfile(path):
            raise TritonError(Code.UNAVAILABLE, f"PyTorch inductor model file \"{path}\" "
                              "is unreachable or inaccessible.")
        return path

    def load(self, spec: ModelSpec) -> None:
        self.spec = spec
        params = spec.parameters
        self._inference_mode = pytorchio.flag(params, "INFERENCE_MODE", True)
        torch.set_num_threads(int(params.get("INTRA_OP_THREAD_COUNT") or 1))
        with contextlib.suppress(RuntimeError):   # only settable before the first parallel op
            torch.set_num_interop_threads(int(params.get("INTER_OP_THREAD_COUNT") or 1))
        self.device = self._device()
        path = self.model_path(spec)
        index = self.device.index if self.device.type == "cuda" else -1
        try:
            compiled = aoti_load_package(path, device_index=index)
            call_spec = compiled.loader.get_call_spec()
        except Exception as exc:  # noqa: BLE001 - any torch failure is a load failure
            raise TritonError(Code.INTERNAL, f"unable to load model '{self.ctx.model}' from "
                              f"'{path}': {exc}") from exc
        self.runner = compiled.loader
        self._bind_names(spec, *aotispec.call_spec_names(self.ctx.model, call_spec))

    def _bind_names(self, spec: ModelSpec, inputs: list[str], outputs: list[str]) -> None:
        """Triton's load-time checks, in its order: input count, input names and
        datatypes, no sequence batching, at least one output, output names and datatypes."""
        instance = self.ctx.instance
        seq = spec.sequence_batching
        extra = len(seq.controls) + len(seq.states) if seq is not None else 0
        expected = len(spec.inputs) + extra
        if expected != len(inputs):
            raise TritonError(Code.INTERNAL, f"Failed to load model \"{instance}\" "
                              f"configuration expects {expected} inputs, but model expects "
                              f"{len(inputs)} inputs.")
        self._inputs = aotispec.bind(instance, "input", [t.name for t in spec.inputs], inputs)
        self._dtypes = {t.name: self._aoti_dtype("input", t.name, t.datatype)
                        for t in spec.inputs}
        if seq is not None:
            raise TritonError(Code.INTERNAL, "Sequence batching is not supported yet.")
        if not spec.outputs:
            raise TritonError(Code.INTERNAL, f"Configuration for model \"{instance}\" must "
                              "define at least one output, none were specified.")
        self._outputs = aotispec.bind(instance, "output", [t.name for t in spec.outputs],
                                      outputs)
        self._dtypes.update({t.name: self._aoti_dtype("output", t.name, t.datatype)
                             for t in spec.outputs})

    def _aoti_dtype(self, kind: str, name: str, datatype: str) -> "torch.dtype":
        if datatype == "BYTES":   # Triton's backend takes them as lists of strings
            raise TritonError(Code.UNSUPPORTED, f"unable to load model '{self.ctx.model}': "
                              f"{kind} '{name}' has datatype BYTES, which the PyTorch "
                              "backend of tritond does not support yet")
        if datatype not in pytorchio.TORCH_DTYPES:
            raise TritonError(Code.INTERNAL, f"Unsupported datatype TYPE_{datatype} for "
                              f"{kind} \"{name}\" for model instance \"{self.ctx.instance}\".")
        return getattr(torch, pytorchio.TORCH_DTYPES[datatype])

    def unload(self) -> None:
        self.runner = None

    def execute(self, requests: list[WorkRequest]) -> list[WorkResult]:
        return run_each(requests, self._run, "PyTorch AOTInductor")

    def _run(self, w: WorkRequest) -> WorkResult:
        flat: list[Optional[torch.Tensor]] = [None] * len(self._inputs)
        for name, position in self._inputs.items():
            flat[position] = self._tensor(name, w.inputs[name])
        mode = torch.inference_mode() if self._inference_mode else torch.no_grad()
        with mode:
            values = self.runner.run(flat)
        outputs = {}
        for name in w.outputs:
            outputs[name] = self._output(self._checked(name, values).detach())
        return WorkResult(outputs=outputs)

    def _checked(self, name: str, values: list) -> "torch.Tensor":
        """Triton's checks of one result against its config output."""
        index, instance = self._outputs[name], self.ctx.instance
        if index >= len(values):
            raise TritonError(Code.INVALID_ARG, f"The output \"{name}\" in the model "
                              "configuration refers to an output index which doesn't exist. "
                              f"This model has {len(values) - 1} outputs.")
        got, want = values[index], self._dtypes[name]
        if got.dtype != want:
            raise TritonError(Code.INTERNAL, f"Inductor model instance \"{instance}\" output "
                              f"tensor \"{name}\" has datatype "
                              f"{pytorchio.config_type(got.dtype)} but model configuration "
                              f"expects {pytorchio.config_type(want)}.")
        if got.dim() == 0:
            raise TritonError(Code.INTERNAL, f"Inductor model instance \"{instance}\" output "
                              f"tensor \"{name}\" is a scalar which is not supported.")
        return got
