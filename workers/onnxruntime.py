"""The ONNX Runtime backend: one InferenceSession per worker process.

Auto-complete follows Triton's onnxruntime backend: IO names,
types and dims from the model, ``max_batch_size`` when every IO has a dynamic
leading dim, ``dynamic_batching {}`` when it batches. GPU instances use the
CUDA / TensorRT execution providers (workers/ortproviders.py) and keep tensors
on the device (workers/ortdevice.py).
"""
from __future__ import annotations

import importlib.util
import json
import os
from typing import Optional

import numpy as np
import onnxruntime as ort

from tritond.options import backend_settings
from tritond.spec import ModelSpec
from tritond.errors import Code, TritonError
from tritond.repository.paths import model_file

from . import onnxio, ortbf16, ortdevice, ortproviders
from .ortbf16 import bf16_names
from .backend import Backend, LoadContext, WorkRequest, WorkResult, provisional_spec, run_each

DEFAULT_MAX_BATCH_SIZE = 4
_SCHEDULERS = ("dynamic_batching", "sequence_batching", "ensemble_scheduling")


def _default_max_batch(options) -> int:
    """``--backend-config=[onnxruntime,]default-max-batch-size=<n>``; 4 when unset."""
    value = backend_settings(options, "onnxruntime").get("default-max-batch-size")
    return int(value) if value is not None else DEFAULT_MAX_BATCH_SIZE


class OnnxRuntimeBackend(Backend):
    """Runs ``<model_dir>/<version>/<default_model_filename or model.onnx>``."""

    fuses_batches = True

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self.session: Optional[ort.InferenceSession] = None
        self._strings: set[str] = set()
        self._bf16: set[str] = set()
        # input shapes -> {output: (shape, dtype)} seen on an earlier run, so a later
        # request with client shm outputs can have ORT write straight into them.
        self._shapes: dict[tuple, dict] = {}
        self.device_arrays = False
        self.flat_inputs: frozenset = frozenset()    # workers/batchio.py

    # ------------------------------------------------------------- load

    def model_path(self, spec: ModelSpec) -> str:
        name = spec.default_model_filename or "model.onnx"
        path = model_file(self.ctx.model_dir, self.ctx.version, name)   # inside the version dir
        if os.path.isdir(path):  # a directory holding model.onnx (+ external data)
            path = model_file(self.ctx.model_dir, self.ctx.version, os.path.join(name, "model.onnx"))
        if not os.path.isfile(path):
            raise TritonError(Code.NOT_FOUND,
                              f"unable to load model '{self.ctx.model}': "
                              f"ONNX model file '{path}' does not exist")
        return path

    def _session(self, spec: ModelSpec) -> ort.InferenceSession:
        path = self.model_path(spec)
        opts = ort.SessionOptions()
        # One worker process per model instance, and typically several instances
        # on a small host: one intra-op thread each avoids oversubscribing the
        # cores (ORT's default is one thread per core in *every* process).
        opts.intra_op_num_threads = int(spec.parameters.get("intra_op_thread_count") or 1)
        opts.inter_op_num_threads = int(spec.parameters.get("inter_op_thread_count") or 1)
        level = spec.graph_level
        opts.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL if level == -1 else
            ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if level == 1 else
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        providers = self._providers(spec)      # a missing GPU provider fails before ORT runs
        try:
            return ort.InferenceSession(path, sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - any ORT failure is a load failure
            raise TritonError(Code.INTERNAL,
                              f"unable to load model '{self.ctx.model}' from '{path}': {exc}") from exc

    def _providers(self, spec: ModelSpec) -> list:
        return ortproviders.providers(self.ctx.model, self.ctx.kind, self.ctx.device_id,
                                      spec.config_json, ort.get_available_providers())

    def load(self, spec: ModelSpec) -> None:
        self.spec = spec
        if self.session is None:
            self.session = self._session(spec)
        # Once per load: the checker reads Triton's JSON form (as `tritond check` does).
        onnxio.check(self.ctx.model, json.loads(spec.config_json),
                     onnxio.describe(self.session.get_inputs()),
                     onnxio.describe(self.session.get_outputs()),
                     onnxio.describe(self.session.get_overridable_initializers()))
        self._strings = {i.name for i in self.session.get_inputs() if i.type == "tensor(string)"}
        self._bf16 = bf16_names(self.session)
        # Triton's ragged inputs: the model takes the batch's elements flat ([-1]);
        # onnxio.check refused any other model shape
        self.flat_inputs = frozenset(t.name for t in spec.inputs if t.allow_ragged_batch)
        # GPU instance: tensors stay on the device through IOBinding (workers/ortdevice.py)
        self.device_arrays = (self.ctx.kind == "GPU" and not self._strings and not self._bf16
                              and importlib.util.find_spec("cupy") is not None)

    def unload(self) -> None:
        self.session = None

    # ------------------------------------------------------ auto-complete

    def auto_complete(self, config: dict) -> dict:
        """Fill IO, max_batch_size and dynamic_batching from the ONNX model."""
        if config.get("input") and config.get("output"):
            return config
        if self.session is None:
            self.session = self._session(provisional_spec(config))
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        capable = all(len(t.shape) >= 1 and onnxio.dims(t.shape)[0] == -1 for t in (*ins, *outs))
        mbs = int(config.get("max_batch_size", 0) or 0)
        if mbs == 0 and capable:
            mbs = _default_max_batch(self.ctx.options)
        elif mbs > 0 and not capable:
            raise TritonError(Code.INVALID_ARG,
                              f"autofill failed for model '{self.ctx.model}': model does not support "
                              f"batching while non-zero max_batch_size is specified")
        config = dict(config, max_batch_size=mbs)
        if mbs > 1 and not any(k in config for k in _SCHEDULERS):
            config["dynamic_batching"] = {}
        if not config.get("input"):
            config["input"] = [self._io(t, mbs > 0) for t in ins]
        if not config.get("output"):
            config["output"] = [self._io(t, mbs > 0) for t in outs]
        return config

    def _io(self, tensor, batched: bool) -> dict:
        dtype = onnxio.ONNX_TO_CONFIG.get(tensor.type)
        if dtype is None:
            raise TritonError(Code.UNSUPPORTED,
                              f"unable to autofill for '{self.ctx.model}': tensor '{tensor.name}' "
                              f"has unsupported type {tensor.type}")
        dims = onnxio.dims(tensor.shape)[1 if batched else 0:]
        entry = {"name": tensor.name, "data_type": dtype, "dims": dims or [1]}
        if not dims:  # Triton needs rank >= 1: present a scalar as [1]
            entry["reshape"] = {"shape": []}
        return entry

    # ------------------------------------------------------------ execute

    def execute(self, requests: list[WorkRequest]) -> list[WorkResult]:
        # Unfused requests run one by one: one bad request fails only itself.
        return run_each(requests, self._run, "onnxruntime")

    def _run(self, w: WorkRequest) -> WorkResult:
        if self.device_arrays:
            return WorkResult(outputs=ortdevice.run(self.session, self.ctx.device_id,
                                                    w.inputs, w.outputs))
        if w.dests and not self._strings and not self._bf16:
            done = self._run_into(w)
            if done is not None:
                return done
        feed = {n: (_to_str(n, a) if n in self._strings else a) for n, a in w.inputs.items()}
        if self._bf16:
            values = ortbf16.run(self.session, w.outputs, feed, self._bf16)
        else:
            values = self.session.run(w.outputs, feed)
        if w.dests and not self._strings:
            if len(self._shapes) >= 256:    # bounded: models with ever-new shapes
                self._shapes.clear()
            self._shapes[_shape_key(w)] = {n: (v.shape, v.dtype) for n, v in zip(w.outputs, values)}
        return WorkResult(outputs={n: (_to_bytes(v) if v.dtype == object else v)
                                   for n, v in zip(w.outputs, values)})


    def _run_into(self, w: WorkRequest) -> Optional[WorkResult]:
        """IO binding with outputs bound to their buffers (client shm, a sequence slot's next
        state; the others to new arrays), shapes known from an earlier run of the same input
        shapes; None when that is not possible."""
        key = _shape_key(w)
        shapes = self._shapes.get(key)
        if shapes is None or any(n not in shapes for n in w.outputs):
            return None
        binding = self.session.io_binding()
        for n, a in w.inputs.items():
            binding.bind_cpu_input(n, np.ascontiguousarray(a))   # a view: no copy
        outs = {}
        for n in w.outputs:
            shape, dtype = shapes[n]
            count = int(np.prod(shape))
            buf = w.dests.get(n)
            if not count or (buf is not None and count * dtype.itemsize > len(buf)):
                return None             # the writer reports "too small" as Triton does
            arr = (np.empty(shape, dtype) if buf is None
                   else np.frombuffer(buf, dtype, count).reshape(shape))
            binding.bind_output(n, "cpu", 0, dtype.type, list(shape), arr.ctypes.data)
            outs[n] = arr
        try:
            self.session.run_with_iobinding(binding)
        except Exception:  # noqa: BLE001 - e.g. a shape that depends on values: run plainly
            self._shapes.pop(key, None)
            return None
        return WorkResult(outputs=outs)


def _shape_key(w: WorkRequest) -> tuple:
    return tuple((n, a.shape) for n, a in w.inputs.items())


def _to_str(name: str, arr: np.ndarray) -> np.ndarray:
    """BYTES elements -> str: ORT would str() a bytes object ("b'..'")."""
    try:
        return np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b,
                            otypes=[object])(arr)
    except UnicodeDecodeError:
        raise TritonError(Code.INVALID_ARG,
                          f"input '{name}' holds bytes that are not UTF-8; "
                          f"ONNX Runtime string tensors are UTF-8") from None


def _to_bytes(arr: np.ndarray) -> np.ndarray:
    """ORT string outputs (str) -> BYTES object arrays of bytes."""
    return np.vectorize(lambda s: s.encode("utf-8") if isinstance(s, str) else s,
                        otypes=[object])(arr)
