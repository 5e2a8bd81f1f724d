"""The PyTorch backend: one TorchScript module (``model.pt``) per worker process.

Imported only inside a worker of a ``backend: "pytorch"`` model, so torch is
loaded nowhere else. IO mapping follows Triton (workers/pytorchio.py). A GPU
instance runs on ``cuda:<device_id>``: client CUDA shared-memory inputs reach
it through DLPack where they lie (no copy), host inputs are copied to the
device once, and its outputs stay on the device as cupy arrays that the worker
copies device to device into a client CUDA region or once to the host (without
cupy they come back to the host here). A CPU instance takes the shared-memory
inputs as tensors without a copy. Parameters honoured: ``INFERENCE_MODE`` (default true),
``DISABLE_OPTIMIZED_EXECUTION`` (default false), ``INTRA_OP_THREAD_COUNT`` /
``INTER_OP_THREAD_COUNT`` (default 1 each: several worker processes share the
cores, as ``workers/onnxruntime.py`` explains).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from typing import Optional

import numpy as np

from tritond.errors import Code, TritonError
from tritond.repository.paths import model_file
from tritond.shm.cuda import is_device_array
from tritond.spec import ModelSpec

from . import pytorchio
from .backend import Backend, LoadContext, WorkRequest, WorkResult, run_each

try:
    import torch
except ImportError as exc:   # backend_class reports it as "backend 'pytorch' is not available: ..."
    raise ImportError(f"torch is not installed ({exc}); install it with "
                      f"pip install 'tritond[torch]'") from None

# Inputs are read-only views of shared memory; a model that writes its inputs
# is broken under Triton too. torch warns about every such view otherwise.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


class PyTorchBackend(Backend):
    """Runs ``<model_dir>/<version>/<default_model_filename or model.pt>``."""

    fuses_batches = True

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self.module = None
        self.device = None
        self._inputs: dict[str, int] = {}
        self._outputs: dict[str, int] = {}
        self._dtypes: dict[str, "torch.dtype"] = {}
        self._inference_mode = True
        self.device_arrays = False
        self.flat_inputs: frozenset = frozenset()    # workers/batchio.py

    def model_path(self, spec: ModelSpec) -> str:
        path = model_file(self.ctx.model_dir, self.ctx.version,
                          spec.default_model_filename or "model.pt")
        if not os.path.isfile(path):
            raise TritonError(Code.NOT_FOUND, f"unable to load model '{self.ctx.model}': "
                              f"TorchScript model file '{path}' does not exist")
        return path

    def load(self, spec: ModelSpec) -> None:
        self.spec = spec
        params = spec.parameters
        self._inference_mode = pytorchio.flag(params, "INFERENCE_MODE", True)
        optimized = not pytorchio.flag(params, "DISABLE_OPTIMIZED_EXECUTION", False)
        torch.set_num_threads(int(params.get("INTRA_OP_THREAD_COUNT") or 1))
        with contextlib.suppress(RuntimeError):   # only settable before the first parallel op
            torch.set_num_interop_threads(int(params.get("INTER_OP_THREAD_COUNT") or 1))
        self.device = self._device()
        path = self.model_path(spec)
        try:
            self.module = torch.jit.load(path, map_location=self.device)
        except Exception as exc:  # noqa: BLE001 - any torch failure is a load failure
            raise TritonError(Code.INTERNAL, f"unable to load model '{self.ctx.model}' from "
                              f"'{path}': {exc}") from exc
        self.module.eval()
        torch._C._set_graph_executor_optimize(optimized)
        arguments = [a.name for a in self.module.forward.schema.arguments[1:]]
        self._bind(spec, arguments)

    def _bind(self, spec: ModelSpec, arguments: list[str]) -> None:
        """Where each input, control input and state goes in forward() and its results
        (Triton's rules, workers/pytorchio.py), and the torch dtype of each tensor."""
        model = self.ctx.model
        seq = spec.sequence_batching
        controls = list(seq.controls) if seq is not None else []
        states = list(seq.states) if seq is not None else []
        for c in controls:
            if c.datatype == "BYTES":
                raise TritonError(Code.UNSUPPORTED, f"unable to load model '{model}': "
                                  f"control input '{c.input}' has datatype BYTES, which the "
                                  "PyTorch backend of tritond does not support yet")
        at_control = pytorchio.control_positions(model, [c.input for c in controls])
        inputs, outputs = [t.name for t in spec.inputs], [t.name for t in spec.outputs]
        # batch inputs (workers/batchio.py) come after the config inputs, as in Triton
        targets = [n for b in spec.batch_inputs for n in b.targets]
        positions = pytorchio.input_positions(model, inputs + targets, arguments,
                                              len(controls) + len(states))
        # Triton's pytorch backend feeds every ragged input flat ([total elements]),
        # whatever max_batch_size (IsInputRagged reads only the config's flag)
        self.flat_inputs = frozenset(t.name for t in spec.inputs if t.allow_ragged_batch)
        self._outputs = pytorchio.output_positions(model, outputs)
        if states:
            at_state, state_out = pytorchio.state_positions(
                model, inputs, arguments, outputs,
                [(st.input_name, st.output_name) for st in states])
            positions.update(at_state)
            self._outputs.update(state_out)
        positions.update(at_control)
        self._inputs = pytorchio.checked_inputs(model, positions, len(arguments))
        self._dtypes = {t.name: self._dtype(t.name, t.datatype)
                        for t in (*spec.inputs, *spec.outputs)}
        for b in spec.batch_inputs:
            self._dtypes.update((n, self._dtype(n, b.datatype)) for n in b.targets)
        for st in states:     # control inputs keep the dtype their config gives them
            self._dtypes[st.input_name] = self._dtype(st.input_name, st.datatype)

    def _device(self) -> "torch.device":
        if self.ctx.kind != "GPU":
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise TritonError(Code.UNAVAILABLE, f"unable to load model '{self.ctx.model}': "
                              f"instance {self.ctx.instance} is KIND_GPU but this torch "
                              f"build has no CUDA ({torch.__version__})")
        torch.cuda.set_device(self.ctx.device_id)
        # CUDA shm inputs as cupy arrays (when cupy is there to open them), not host copies
        self.device_arrays = importlib.util.find_spec("cupy") is not None
        return torch.device("cuda", self.ctx.device_id)

    def _dtype(self, tensor: str, datatype: str) -> "torch.dtype":
        name = pytorchio.TORCH_DTYPES.get(datatype)
        if name is None:
            raise TritonError(Code.UNSUPPORTED, f"unable to load model '{self.ctx.model}': "
                              f"tensor '{tensor}' has datatype {datatype}, which "
                              f"the PyTorch backend of tritond does not support yet")
        return getattr(torch, name)

    def unload(self) -> None:
        self.module = None

    def execute(self, requests: list[WorkRequest]) -> list[WorkResult]:
        return run_each(requests, self._run, "PyTorch")

    def _run(self, w: WorkRequest) -> WorkResult:
        args: list[Optional[torch.Tensor]] = [None] * len(self._inputs)
        for name, position in self._inputs.items():
            args[position] = self._tensor(name, w.inputs[name])
        mode = torch.inference_mode() if self._inference_mode else torch.no_grad()
        with mode:
            values = pytorchio.results(self.ctx.model, self.module(*args))
        outputs = {}
        for name in w.outputs:
            index = self._outputs[name]
            # a state's output is not checked here: its slot buffer takes it as it comes
            pytorchio.check_output(self.ctx.model, name, index, values, self._dtypes.get(name))
            outputs[name] = self._output(values[index].detach())
        return WorkResult(outputs=outputs)

    def _output(self, tensor: "torch.Tensor"):
        if tensor.device.type == "cuda" and self.device_arrays:
            import cupy
            # stays on the device: the worker copies it once, to where it goes
            return cupy.from_dlpack(tensor.contiguous())
        return tensor.cpu().numpy()

    def _tensor(self, name: str, array: np.ndarray) -> "torch.Tensor":
        if array.dtype == object:
            raise TritonError(Code.INVALID_ARG, f"input '{name}': BYTES tensors are not "
                              f"supported by the PyTorch backend of tritond yet")
        if is_device_array(array):     # client CUDA shm: the same device memory, no copy
            tensor = torch.from_dlpack(array)
        else:
            tensor = torch.from_numpy(np.ascontiguousarray(array))   # a view of shm: no copy
        want = self._dtypes.get(name)
        if want is not None and tensor.dtype != want:
            tensor = tensor.to(want)
        return tensor if self.device.type == "cpu" else tensor.to(self.device, non_blocking=False)
