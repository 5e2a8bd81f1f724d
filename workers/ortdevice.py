"""ONNX Runtime on a GPU instance with tensors kept on the device (IOBinding).

A KIND_GPU instance (CUDA or TensorRT execution provider) binds each client
CUDA shared-memory input where it lies (a cupy array: its device pointer), host
inputs as CPU inputs (ORT copies them to the device once), and lets ORT
allocate every output on the device. The outputs come back as cupy arrays over
ORT's own memory (the OrtValue is kept alive by the array), which the worker
copies device to device into a client CUDA region or once to the host.
Used only when cupy is installed; string and BF16 models take the plain path.
"""
from __future__ import annotations

import numpy as np

from tritond.shm.cuda import is_device_array
from tritond.shm.dtypes import _NP

from .onnxio import ONNX_TO_CONFIG


def run(session, device_id: int, inputs: dict, outputs: list[str]) -> dict:
    """Run ``session`` once; returns output name -> cupy array on ``cuda:<device_id>``."""
    import cupy

    binding = session.io_binding()
    keep = []           # contiguous copies must outlive the run
    for name, arr in inputs.items():
        if is_device_array(arr):
            arr = cupy.ascontiguousarray(arr)
            keep.append(arr)
            binding.bind_input(name, "cuda", arr.device.id, arr.dtype.type, list(arr.shape),
                               arr.data.ptr)
        else:
            binding.bind_cpu_input(name, np.ascontiguousarray(arr))
    for name in outputs:
        binding.bind_output(name, "cuda", device_id)
    binding.synchronize_inputs()
    session.run_with_iobinding(binding)
    binding.synchronize_outputs()
    return {name: _as_cupy(value, device_id) for name, value in zip(outputs, binding.get_outputs())}


def _as_cupy(value, device_id: int):
    import cupy

    dtype = np.dtype(_NP[ONNX_TO_CONFIG[value.data_type()].removeprefix("TYPE_")])
    shape = tuple(value.shape())
    nbytes = int(np.prod(shape)) * dtype.itemsize
    # owner=value: the OrtValue (and its device memory) lives as long as the array
    mem = cupy.cuda.UnownedMemory(value.data_ptr(), nbytes, value, device_id)
    return cupy.ndarray(shape, dtype, cupy.cuda.MemoryPointer(mem, 0))
