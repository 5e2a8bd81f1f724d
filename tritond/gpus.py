"""How many GPUs this server can place model instances on.

No GPU package is required: without an NVIDIA driver (neither
``/proc/driver/nvidia/version`` nor ``/dev/nvidiactl``: sandboxes such as gVisor
expose only the device nodes) the answer is 0 at once, without importing anything. With one, NVML
(``nvidia-ml-py``, the ``gpu`` extra) lists the physical devices, and
``CUDA_VISIBLE_DEVICES`` is applied as CUDA applies it (indices or ``GPU-``
UUID prefixes, up to the first entry that names no device); without NVML, cupy
or torch count the devices (both already honour ``CUDA_VISIBLE_DEVICES``).
Devices below Triton's minimum compute capability (6.0) are not counted, as in
Triton. The parent counts once and hands the count to every normalisation
(``repository.normalize(cfg, gpus=...)``), including the workers' (``Load.gpus``).

Device ids are CUDA's ordinals within ``CUDA_VISIBLE_DEVICES``; a GPU instance
is told its id (``model_instance_device_id``) and the server does not narrow
``CUDA_VISIBLE_DEVICES`` per worker, as Triton does not: a model uses
``cuda:<device_id>``.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import os
import pathlib
import re

log = logging.getLogger("tritond.gpus")

MIN_COMPUTE_CAPABILITY = 6.0
_DRIVER_MARKERS = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


def visible_count(devices: list[tuple[str, float]], cuda_visible: str | None) -> int:
    """Usable GPUs among physical ``devices`` ((uuid, compute capability), NVML order).

    ``cuda_visible`` is CUDA_VISIBLE_DEVICES (None: unset, all visible). As in
    CUDA, parsing stops at the first entry naming no device; a device named
    twice stops it too.
    """
    return sum(1 for i in visible_indices([u for u, _ in devices], cuda_visible)
               if devices[i][1] >= MIN_COMPUTE_CAPABILITY)


def visible_indices(uuids: list[str], cuda_visible: str | None) -> list[int]:
    """Physical (NVML) indices of the CUDA-visible devices, in CUDA ordinal order."""
    if cuda_visible is None:
        return list(range(len(uuids)))
    chosen: list[int] = []
    for entry in (e.strip() for e in cuda_visible.split(",")):
        index = _device_index(entry, uuids)
        if index is None or index in chosen:
            break
        chosen.append(index)
    return chosen


def _device_index(entry: str, uuids: list[str]) -> int | None:
    if entry.lstrip("-").isdigit():
        index = int(entry)
        return index if 0 <= index < len(uuids) else None
    if entry.startswith("GPU-"):
        matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
        return matches[0] if len(matches) == 1 else None
    return None


def driver_present() -> bool:
    return any(os.path.exists(p) for p in _DRIVER_MARKERS)


@functools.lru_cache(maxsize=1)
def count() -> int:
    """Usable GPUs on this host (cached: the parent asks once)."""
    if not driver_present():
        return 0
    for probe in (_nvml_count, _cupy_count, _torch_count):
        try:
            found = probe()
        except Exception as exc:  # noqa: BLE001 - a broken probe means try the next
            log.warning("GPU discovery through %s failed: %s", probe.__name__, exc)
            continue
        if found is not None:
            return found
    log.warning("an NVIDIA driver is present but no GPU package is installed "
                "(pip install 'tritond[gpu-cuda12]' or '[gpu-cuda13]'): no GPU instances")
    return 0


@functools.lru_cache(maxsize=None)
def backend_runs_on_gpu(backend: str) -> bool:
    """Whether KIND_AUTO may become KIND_GPU for ``backend`` in this install.

    Triton's GPU containers always hold CUDA builds; a pip host may hold a CPU-only
    onnxruntime or torch beside a GPU, and an AUTO model must then stay on the CPU
    rather than fail its load. Read from the installed files: nothing is imported."""
    if backend == "onnxruntime":
        return onnxruntime_has_cuda(_package_dir("onnxruntime"))
    if backend == "pytorch":
        return torch_has_cuda(_package_dir("torch"))
    return True


def _package_dir(name: str) -> pathlib.Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def onnxruntime_has_cuda(package: pathlib.Path | None) -> bool:
    """onnxruntime-gpu ships the CUDA execution provider as a library beside the core."""
    return package is not None and any((package / "capi").glob("libonnxruntime_providers_cuda*"))


def torch_has_cuda(package: pathlib.Path | None) -> bool:
    """torch/version.py names the CUDA it was built with, or None for a CPU build."""
    try:
        text = (package / "version.py").read_text() if package is not None else ""
    except OSError:
        return False
    match = re.search(r"^cuda\s*(?::[^=\n]*)?=\s*(\S.*)$", text, re.MULTILINE)
    return bool(match) and match.group(1).strip() != "None"


def _nvml_count() -> int | None:
    if importlib.util.find_spec("pynvml") is None:
        return None
    import pynvml

    pynvml.nvmlInit()
    try:
        devices = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            devices.append((uuid.decode() if isinstance(uuid, bytes) else uuid,
                            major + minor / 10))
    finally:
        pynvml.nvmlShutdown()
    return visible_count(devices, os.environ.get("CUDA_VISIBLE_DEVICES"))


def _cupy_count() -> int | None:
    if importlib.util.find_spec("cupy") is None:
        return None
    from cupy.cuda import runtime

    return sum(1 for i in range(runtime.getDeviceCount())
               if _capability(runtime.getDeviceProperties(i)) >= MIN_COMPUTE_CAPABILITY)


def _capability(props: dict) -> float:
    return props["major"] + props["minor"] / 10


def _torch_count() -> int | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return sum(1 for i in range(torch.cuda.device_count())
               if sum(x / 10 ** k for k, x in enumerate(torch.cuda.get_device_capability(i)))
               >= MIN_COMPUTE_CAPABILITY)
