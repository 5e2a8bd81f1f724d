"""GPU metrics with Triton's names, read through NVML (``nvidia-ml-py``, the ``gpu`` extras).

Triton reads these from DCGM; tritond asks NVML for the same six figures of
every CUDA-visible device (``CUDA_VISIBLE_DEVICES`` applied as
``tritond.gpus`` applies it), labelled ``gpu_uuid`` as Triton labels them.
NVML calls block (a driver ioctl each, milliseconds under load), so the
metrics app polls them in a thread every ``--metrics-interval-ms``, never on
the event loop; a scrape only reads the last poll. Without NVML (no package,
no driver) there is no GPU family at all, as on a Triton without GPUs.
"""
from __future__ import annotations

import logging
import os
import threading

from prometheus_client.metrics_core import Metric

from tritond import gpus

log = logging.getLogger("tritond.metrics")

# name, HELP (Triton core's metrics.cc), type
FAMILIES = (
    ("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)", "gauge"),
    ("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", "gauge"),
    ("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", "gauge"),
    ("nv_gpu_power_usage", "GPU power usage in watts", "gauge"),
    ("nv_gpu_power_limit", "GPU power management limit in watts", "gauge"),
    ("nv_energy_consumption", "GPU energy consumption in joules since the Triton Server started",
     "counter"),
)


class GpuSampler:
    """The last NVML reading of each visible GPU; :meth:`poll` blocks (call it off the loop)."""

    def __init__(self, nvml, handles: list, uuids: list[str]) -> None:
        self._nvml = nvml
        self._handles = handles
        self.uuids = uuids
        self._lock = threading.Lock()       # poll runs in a thread, families on the loop
        self._values = [dict.fromkeys([n for n, _, _ in FAMILIES], 0.0) for _ in handles]
        self._warned: set = set()
        # As Triton: joules since the server started (the driver's counter runs since boot)
        self._last_energy_mj = [self._baseline(h) for h in handles]

    def _baseline(self, handle) -> int:
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception:  # noqa: BLE001 - not supported: the first reading becomes the start
            return 0

    def poll(self) -> None:
        for i, handle in enumerate(self._handles):
            reading = {name: self._read(i, name, handle) for name, _, _ in FAMILIES}
            with self._lock:
                values = self._values[i]
                for name, value in reading.items():
                    if value is not None:
                        values[name] = value

    def _read(self, i: int, name: str, handle):
        """One figure in Triton's unit, or None when NVML cannot give it (warned once)."""
        nv = self._nvml
        try:
            if name == "nv_gpu_utilization":
                return nv.nvmlDeviceGetUtilizationRates(handle).gpu * 0.01
            if name == "nv_gpu_memory_total_bytes":
                return nv.nvmlDeviceGetMemoryInfo(handle).total
            if name == "nv_gpu_memory_used_bytes":
                return nv.nvmlDeviceGetMemoryInfo(handle).used
            if name == "nv_gpu_power_usage":
                return nv.nvmlDeviceGetPowerUsage(handle) / 1000.0          # mW -> W
            if name == "nv_gpu_power_limit":
                return nv.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0  # mW -> W
            return self._energy(i, nv.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception as exc:  # noqa: BLE001 - NVMLError_NotSupported etc.: that figure only
            if (i, name) not in self._warned:
                self._warned.add((i, name))
                log.warning("unable to get %s for GPU %s: %s", name, self.uuids[i], exc)
            return None

    def _energy(self, i: int, total_mj: int) -> float:
        if not self._last_energy_mj[i]:
            self._last_energy_mj[i] = total_mj
        return (total_mj - self._last_energy_mj[i]) * 0.001

    def families(self) -> list[Metric]:
        out = []
        with self._lock:
            for name, doc, kind in FAMILIES:
                fam = Metric(name, doc, kind)
                for uuid, values in zip(self.uuids, self._values):
                    fam.add_sample(name, {"gpu_uuid": uuid}, values[name])
                out.append(fam)
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down: nothing to do about it
            pass


def sampler() -> GpuSampler | None:
    """A sampler over the CUDA-visible GPUs, or None (no NVML, no driver, no GPU)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound on a CPU host
        log.info("GPU metrics are not available: NVML did not start (%s)", exc)
        return None
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                   for i in range(pynvml.nvmlDeviceGetCount())]
        uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
    except Exception as exc:  # noqa: BLE001
        log.warning("GPU metrics are not available: %s", exc)
        pynvml.nvmlShutdown()
        return None
    chosen = gpus.visible_indices(uuids, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if not chosen:
        pynvml.nvmlShutdown()
        return None
    for i in chosen:
        log.info("Collecting metrics for GPU %d: %s", chosen.index(i), uuids[i])
    return GpuSampler(pynvml, [handles[i] for i in chosen], [uuids[i] for i in chosen])


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
