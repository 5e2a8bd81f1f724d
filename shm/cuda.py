"""CUDA IPC regions registered by clients (optional: cupy and a GPU, ``tritond[gpu-cuda1x]``).

The frontend only asks :func:`available` / :func:`unavailable_reason`; a worker
opens each registration's ``cudaIpcMemHandle_t`` once (:class:`CudaRegions`,
cached by ``(handle, gen)``, closed on ``Forget``) and hands the model a cupy
array over the client's device memory: no device-to-host copy. cupy is
imported lazily so that CPU-only hosts never pay for (or need) it.
"""
from __future__ import annotations

import base64
import functools
from typing import Optional

from tritond.errors import invalid_arg, unsupported


@functools.lru_cache(maxsize=1)
def _devices() -> tuple[int, str]:
    """(number of CUDA devices, why none) probed once per process."""
    try:
        import cupy
    except ImportError:
        return 0, "cupy is not installed (install tritond[gpu-cuda12] or tritond[gpu-cuda13])"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - any CUDA init failure means "no GPU"
        return 0, f"no usable CUDA device ({exc})"
    return n, "" if n else "no CUDA device is present"


def available() -> bool:
    return _devices()[0] > 0


def unavailable_reason(device_id: int) -> str:
    """'' when ``device_id`` can hold CUDA shared memory, else why not (one line)."""
    count, why = _devices()
    if why:
        return f"CUDA shared memory is not available on this server: {why}"
    if device_id >= count:
        return f"invalid device id {device_id}: this server has {count} CUDA device(s)"
    return ""


class CudaRegions:
    """A worker's open IPC handles: one ``ipcOpenMemHandle`` per registration."""

    def __init__(self) -> None:
        self._ptrs: dict[tuple[str, int], tuple[int, int]] = {}   # -> (device pointer, device)

    def _ptr(self, ref) -> int:
        key = (ref.region, ref.gen)
        hit = self._ptrs.get(key)
        if hit is None:
            why = unavailable_reason(max(ref.device, 0))
            if why:
                raise unsupported(why)
            import cupy
            with cupy.cuda.Device(ref.device):
                ptr = cupy.cuda.runtime.ipcOpenMemHandle(base64.b64decode(ref.region))
            hit = self._ptrs[key] = (ptr, ref.device)
        return hit[0]

    def array(self, ref, np_dtype, shape):
        """A cupy array over ``ref`` (zero copy; the model may use it via DLPack)."""
        import cupy
        if ref.offset < 0 or ref.nbytes < 0:
            raise invalid_arg(f"bad CUDA shared memory range for '{ref.name}'")
        mem = cupy.cuda.UnownedMemory(self._ptr(ref) + ref.offset, ref.nbytes, self, ref.device)
        return cupy.ndarray(shape, np_dtype, cupy.cuda.MemoryPointer(mem, 0))

    def write(self, ref, arr) -> None:
        """Copy a host or device array into ``ref`` (the one allowed output copy)."""
        import cupy
        dst = self.array(ref, arr.dtype, arr.shape)
        dst.set(arr) if not isinstance(arr, cupy.ndarray) else cupy.copyto(dst, arr)

    def forget(self, region: str, gen: int) -> None:
        hit = self._ptrs.pop((region, gen), None)
        if hit is not None:
            import cupy
            with cupy.cuda.Device(hit[1]):
                cupy.cuda.runtime.ipcCloseMemHandle(hit[0])

    def close(self) -> None:
        for region, gen in list(self._ptrs):
            self.forget(region, gen)


def is_device_array(arr) -> Optional[bool]:
    """True for cupy arrays (without importing cupy on CPU hosts)."""
    return type(arr).__module__.startswith("cupy")
