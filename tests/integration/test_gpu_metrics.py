"""GPU metrics on a real tritond: Triton's six GPU families through NVML.

NVML cannot run without an NVIDIA driver, so the server under test finds the
small NVML stand-in of tests/frontend/fake_nvml on its PYTHONPATH (two GPUs,
fixed figures); tritond itself is the real one. tests/gpu/test_gpu_metrics.py
runs the same scrape against the real NVML on a GPU host.
"""
from __future__ import annotations

import os
import pathlib
import urllib.request

import pytest

from tests.integration.sched_repo import wait_for
from tests.integration.test_metrics import scrape, value
from tests.server import Server

FAKE = pathlib.Path(__file__).resolve().parents[1] / "frontend" / "fake_nvml"
GPU0 = "GPU-11111111-aaaa-bbbb-cccc-000000000000"
GPU1 = "GPU-22222222-aaaa-bbbb-cccc-000000000000"
GPU_FAMILIES = {"nv_gpu_utilization": "gauge", "nv_gpu_memory_total_bytes": "gauge",
                "nv_gpu_memory_used_bytes": "gauge", "nv_gpu_power_usage": "gauge",
                "nv_gpu_power_limit": "gauge", "nv_energy_consumption": "counter"}


def _env(**extra) -> dict:
    path = os.pathsep.join(p for p in (str(FAKE), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, **extra}
    if "CUDA_VISIBLE_DEVICES" not in extra:
        env["CUDA_VISIBLE_DEVICES"] = "0,1"     # the fake's two GPUs, whatever the host sets
    return env


def _text(srv) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
        return r.read().decode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server([tmp_path_factory.mktemp("empty")], "--metrics-interval-ms=50", env=_env())
    yield server
    server.stop()


def test_six_families_per_gpu_with_tritons_help(srv):
    types, samples = scrape(srv)
    assert {n: types[n] for n in GPU_FAMILIES} == GPU_FAMILIES
    text = _text(srv)
    for line in ("# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)",
                 "# HELP nv_gpu_memory_total_bytes GPU total memory, in bytes",
                 "# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes",
                 "# HELP nv_gpu_power_usage GPU power usage in watts",
                 "# HELP nv_gpu_power_limit GPU power management limit in watts",
                 "# HELP nv_energy_consumption GPU energy consumption in joules since the "
                 "Triton Server started"):
        assert line in text
    for name in GPU_FAMILIES:
        assert {dict(labels)["gpu_uuid"] for n, labels in samples if n == name} == {GPU0, GPU1}
    assert value(samples, "nv_gpu_utilization", gpu_uuid=GPU0) == pytest.approx(0.37)
    assert value(samples, "nv_gpu_memory_total_bytes", gpu_uuid=GPU0) == 143_771_000_832
    assert value(samples, "nv_gpu_memory_used_bytes", gpu_uuid=GPU1) == 3 << 30
    assert value(samples, "nv_gpu_power_usage", gpu_uuid=GPU0) == pytest.approx(123.456)
    assert value(samples, "nv_gpu_power_limit", gpu_uuid=GPU1) == 400.0


def test_a_figure_nvml_cannot_give_reads_zero_and_the_rest_still_come(srv):
    _, samples = scrape(srv)
    assert value(samples, "nv_gpu_power_usage", gpu_uuid=GPU1) == 0
    assert value(samples, "nv_gpu_power_limit", gpu_uuid=GPU1) == 400.0
    assert "unable to get nv_gpu_power_usage for GPU " + GPU1 in srv.output()


def test_energy_counts_joules_since_start_and_grows_with_each_poll(srv):
    first = value(scrape(srv)[1], "nv_energy_consumption", gpu_uuid=GPU0)
    assert first > 0 and first % 1.5 == 0           # 1.5 J per reading since the start
    wait_for(lambda: value(scrape(srv)[1], "nv_energy_consumption", gpu_uuid=GPU0) > first,
             timeout=30, what="the energy counter to grow")


def test_cuda_visible_devices_chooses_the_gpus_reported(tmp_path):
    server = Server([tmp_path], env=_env(CUDA_VISIBLE_DEVICES="GPU-2222"))
    try:
        _, samples = scrape(server)
        assert {dict(labels)["gpu_uuid"] for n, labels in samples
                if n == "nv_gpu_memory_total_bytes"} == {GPU1}
    finally:
        server.stop()


def test_allow_gpu_metrics_false_drops_the_gpu_families(tmp_path):
    server = Server([tmp_path], "--allow-gpu-metrics=false", env=_env())
    try:
        types, _ = scrape(server)
        assert not set(GPU_FAMILIES) & set(types)
        assert "nv_cpu_utilization" in types
    finally:
        server.stop()


def test_no_nvml_no_gpu_families(tmp_path):
    try:
        import pynvml
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("NVML runs on this host: tests/gpu/test_gpu_metrics.py covers it")
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - nvidia-ml-py installed, but no driver: NVML fails
        pass
    server = Server([tmp_path])
    try:
        types, _ = scrape(server)
        assert not set(GPU_FAMILIES) & set(types)
    finally:
        server.stop()
