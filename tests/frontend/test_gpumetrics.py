"""GpuSampler: units, the energy counter, unsupported figures, NVML absent."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest

from tritond.frontend import gpumetrics, promtext

FAKE = pathlib.Path(__file__).resolve().parent / "fake_nvml" / "pynvml.py"


@pytest.fixture
def nvml():
    # the NVML stand-in (NVML cannot run without a driver), loaded privately: no sys.modules entry
    spec = importlib.util.spec_from_file_location("fake_pynvml", FAKE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.nvmlInit()
    return mod


def test_units_are_tritons(nvml):
    s = gpumetrics.GpuSampler(nvml, [0], ["GPU-a"])
    s.poll()
    text = promtext.render(s.families()).decode()
    assert 'nv_gpu_utilization{gpu_uuid="GPU-a"} 0.37' in text
    assert 'nv_gpu_power_usage{gpu_uuid="GPU-a"} 123.456' in text       # mW -> W
    assert 'nv_gpu_power_limit{gpu_uuid="GPU-a"} 700' in text
    assert 'nv_gpu_memory_used_bytes{gpu_uuid="GPU-a"} 1073741824' in text
    assert "# TYPE nv_energy_consumption counter" in text


def test_energy_counts_joules_since_the_sampler_started(nvml):
    s = gpumetrics.GpuSampler(nvml, [0], ["GPU-a"])      # the server's start: the baseline
    s.poll()
    assert s._values[0]["nv_energy_consumption"] == pytest.approx(1.5)   # 1500 mJ later
    s.poll()
    s.poll()
    assert s._values[0]["nv_energy_consumption"] == pytest.approx(4.5)


def test_unsupported_figure_keeps_zero_and_warns_once(nvml, caplog):
    s = gpumetrics.GpuSampler(nvml, [1], ["GPU-b"])
    s.poll()
    s.poll()
    assert s._values[0]["nv_gpu_power_usage"] == 0
    assert s._values[0]["nv_gpu_power_limit"] == 400.0
    assert sum("nv_gpu_power_usage" in r.getMessage() for r in caplog.records) == 1


def test_before_the_first_poll_every_figure_is_zero(nvml):
    s = gpumetrics.GpuSampler(nvml, [0, 1], ["GPU-a", "GPU-b"])
    fams = s.families()
    assert [f.name for f in fams] == [n for n, _, _ in gpumetrics.FAMILIES]
    assert all(sample.value == 0 for f in fams for sample in f.samples)
    assert all(len(f.samples) == 2 for f in fams)
