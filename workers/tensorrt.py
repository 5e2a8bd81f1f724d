"""The TensorRT backend: one serialized engine (``model.plan``) per worker, GPU instances only.

Imported only inside a worker of a ``backend: "tensorrt"`` / ``platform:
"tensorrt_plan"`` model, through the ``tensorrt`` Python API (TensorRT 10+:
tensors by name, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``) with cupy for device memory and the stream. Each
instance owns one execution context on its device (``cuda:<device_id>``).
Inputs from client CUDA shared memory are bound where they lie (no copy);
host inputs are copied to the device once; outputs are cupy arrays that the
worker copies device to device into a client CUDA region, or once to the host.
Config/engine rules that need no TensorRT live in workers/tensorrtio.py.
"""
from __future__ import annotations

import os

import numpy as np

from tritond.errors import Code, TritonError
from tritond.repository.paths import model_file
from tritond.spec import ModelSpec

from . import tensorrtio
from .backend import Backend, LoadContext, WorkRequest, WorkResult, run_each

try:
    import tensorrt as trt
except ImportError as exc:   # backend_class reports "backend 'tensorrt' is not available: ..."
    raise ImportError(f"the tensorrt Python package is not installed ({exc}); install "
                      f"TensorRT 10 or later for the host's CUDA (pip install tensorrt-cu12 "
                      f"or tensorrt-cu13) and cupy (pip install 'tritond[gpu-cuda12]' or "
                      f"'[gpu-cuda13]')") from None
try:
    import cupy
except ImportError as exc:
    raise ImportError(f"cupy is not installed ({exc}); the TensorRT backend keeps tensors on "
                      f"the GPU with it: pip install 'tritond[gpu-cuda12]' or "
                      f"'[gpu-cuda13]'") from None


class TensorRTBackend(Backend):
    """Runs ``<model_dir>/<version>/<default_model_filename or model.plan>``."""

    fuses_batches = True
    device_arrays = True        # CUDA shm inputs arrive as cupy arrays, bound in place

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self.engine = self.context = self.stream = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._profiles: list[dict] = []
        self._profile = 0

    def load(self, spec: ModelSpec) -> None:
        self.spec = spec
        model = self.ctx.model
        if self.ctx.kind != "GPU":
            raise TritonError(Code.INVALID_ARG,
                              f"unable to load model '{model}': the TensorRT backend runs GPU "
                              f"instances only; instance {self.ctx.instance} is KIND_"
                              f"{self.ctx.kind}")
        path = model_file(self.ctx.model_dir, self.ctx.version,
                          spec.default_model_filename or "model.plan")
        if not os.path.isfile(path):
            raise TritonError(Code.NOT_FOUND, f"unable to load model '{model}': TensorRT "
                              f"engine file '{path}' does not exist")
        self.device = cupy.cuda.Device(self.ctx.device_id)
        with self.device:
            self.stream = cupy.cuda.Stream(non_blocking=True)
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            with open(path, "rb") as f:
                self.engine = runtime.deserialize_cuda_engine(f.read())
            if self.engine is None:
                raise TritonError(Code.INTERNAL, f"unable to load model '{model}': TensorRT "
                                  f"could not deserialize '{path}' (built for another TensorRT "
                                  f"version or GPU?)")
            self.context = self.engine.create_execution_context()
        self._bind(spec)

    def _bind(self, spec: ModelSpec) -> None:
        engine = self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins = {n: engine.get_tensor_dtype(n).name for n in names
               if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
        outs = {n: engine.get_tensor_dtype(n).name for n in names if n not in ins}
        tensorrtio.check_bindings(self.ctx.model, {t.name: t.datatype for t in spec.inputs},
                                  ins, "input")
        tensorrtio.check_bindings(self.ctx.model, {t.name: t.datatype for t in spec.outputs},
                                  outs, "output")
        self._inputs, self._outputs = list(ins), list(outs)
        dynamic = any(d < 0 for n in self._inputs for d in engine.get_tensor_shape(n))
        # (min, max) of each input per profile; a static engine takes its one shape only
        self._profiles = [
            {n: tuple(tuple(s) for s in engine.get_tensor_profile_shape(n, p))[0::2]
             for n in self._inputs}
            for p in range(engine.num_optimization_profiles)] if dynamic else []

    def unload(self) -> None:
        self.context = self.engine = None

    def execute(self, requests: list[WorkRequest]) -> list[WorkResult]:
        with self.device:
            return run_each(requests, self._run, "TensorRT")

    def _run(self, w: WorkRequest) -> WorkResult:
        ctx, keep = self.context, []
        with self.stream:
            arrays = {n: self._on_device(n, w.inputs[n]) for n in self._inputs}
            shapes = {n: a.shape for n, a in arrays.items()}
            if len(self._profiles) > 1:
                profile = tensorrtio.pick_profile(shapes, self._profiles)
                if profile != self._profile:
                    ctx.set_optimization_profile_async(profile, self.stream.ptr)
                    self._profile = profile
            elif self._profiles:
                tensorrtio.pick_profile(shapes, self._profiles)      # a clear error if outside
            for name, arr in arrays.items():
                if not ctx.set_input_shape(name, arr.shape):
                    raise TritonError(Code.INVALID_ARG, f"TensorRT refused shape "
                                      f"{list(arr.shape)} for input '{name}'")
                ctx.set_tensor_address(name, arr.data.ptr)
                keep.append(arr)
            outputs = {}
            for name in self._outputs:
                shape = tuple(ctx.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise TritonError(Code.UNSUPPORTED, f"output '{name}' has a data-dependent "
                                      f"shape {list(shape)}, which tritond does not support yet")
                dtype = trt.nptype(self.engine.get_tensor_dtype(name))
                out = outputs[name] = cupy.empty(shape, dtype)
                ctx.set_tensor_address(name, out.data.ptr)
            if not ctx.execute_async_v3(self.stream.ptr):
                raise TritonError(Code.INTERNAL, "TensorRT execute_async_v3 failed")
            self.stream.synchronize()       # outputs are read on other streams next
        return WorkResult(outputs={n: outputs[n] for n in w.outputs if n in outputs})

    def _on_device(self, name: str, arr) -> "cupy.ndarray":
        """Input ``name`` in this instance's device memory: a CUDA shm input as it lies,
        a host one copied once."""
        want = trt.nptype(self.engine.get_tensor_dtype(name))
        if isinstance(arr, cupy.ndarray) and arr.device.id == self.ctx.device_id:
            out = cupy.ascontiguousarray(arr)
        elif isinstance(arr, cupy.ndarray):
            out = cupy.array(arr)           # a region on another GPU: one peer copy
        else:
            out = cupy.asarray(np.ascontiguousarray(arr))      # host: one copy to the device
        return out if out.dtype == want else out.view(want)
