"""On a GPU host: /metrics reports every CUDA-visible GPU through the real NVML."""
from __future__ import annotations

import os

import pytest

from tests.integration.sched_repo import wait_for
from tests.integration.test_gpu_metrics import GPU_FAMILIES
from tests.integration.test_metrics import scrape, value
from tests.server import Server


def test_gpu_families_for_each_visible_gpu(tmp_path):
    pynvml = pytest.importorskip("pynvml")
    from tritond import gpus
    pynvml.nvmlInit()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        uuids = [u.decode() if isinstance(u, bytes) else u
                 for u in (pynvml.nvmlDeviceGetUUID(h) for h in handles)]
        totals = {u: pynvml.nvmlDeviceGetMemoryInfo(h).total for u, h in zip(uuids, handles)}
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handles[0])
            energy = True
        except pynvml.NVMLError:        # e.g. not supported in this sandbox: reads 0
            energy = False
    finally:
        pynvml.nvmlShutdown()
    visible = [uuids[i] for i in gpus.visible_indices(uuids, os.environ.get("CUDA_VISIBLE_DEVICES"))]
    srv = Server([tmp_path], "--metrics-interval-ms=200")
    try:
        types, samples = scrape(srv)
        assert {n: types.get(n) for n in GPU_FAMILIES} == GPU_FAMILIES
        for name in GPU_FAMILIES:
            assert {dict(lb)["gpu_uuid"] for n, lb in samples if n == name} == set(visible)
        for uuid in visible:
            assert value(samples, "nv_gpu_memory_total_bytes", gpu_uuid=uuid) == totals[uuid]
            assert 0 <= value(samples, "nv_gpu_utilization", gpu_uuid=uuid) <= 1
            assert value(samples, "nv_gpu_power_limit", gpu_uuid=uuid) >= 0
        first = visible[0]
        if energy:
            wait_for(lambda: value(scrape(srv)[1], "nv_energy_consumption", gpu_uuid=first) > 0,
                     timeout=30, what="energy to be counted")
    finally:
        srv.stop()
