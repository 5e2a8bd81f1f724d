"""Instance placement with a given GPU count: KIND_AUTO / KIND_GPU / gpus [...] as in Triton."""
from __future__ import annotations

import pytest

from tritond.errors import Code, TritonError
from tritond.parent.models import instance_plan
from tritond.repository import normalize, spec_from_config
from tritond.repository.modelconfig import parse_pbtxt


def plan(text: str, gpus: int):
    cfg = parse_pbtxt(text, "c")
    normalize(cfg, gpus=gpus)
    return instance_plan(spec_from_config(cfg, 1))


def test_no_instance_group_is_one_instance_per_gpu_on_a_gpu_host():
    assert plan('name: "m" backend: "python"', 2) == [("m_0", "GPU", 0), ("m_1", "GPU", 1)]
    assert plan('name: "m" backend: "python"', 0) == [("m_0", "CPU", 0)]


def test_cpu_host_is_unchanged_for_auto_and_cpu_groups():
    assert plan('name: "m" backend: "onnxruntime"', 0) == [("m_0", "CPU", 0), ("m_1", "CPU", 0)]
    assert plan('name: "m" backend: "python" instance_group [{ kind: KIND_CPU count: 2 }]',
                4) == [("m_0_0", "CPU", 0), ("m_0_1", "CPU", 0)]


def test_kind_gpu_with_count_and_listed_gpus():
    text = ('name: "m" backend: "python" instance_group [{ kind: KIND_GPU count: 2 '
            'gpus: [1, 3] }]')
    assert [(k, d) for _, k, d in plan(text, 4)] == [("GPU", 1), ("GPU", 1), ("GPU", 3), ("GPU", 3)]
    names = [n for n, _, _ in plan(text, 4)]
    assert len(set(names)) == 4


def test_kind_gpu_without_gpus_uses_every_gpu():
    text = 'name: "m" backend: "python" instance_group [{ kind: KIND_GPU }]'
    assert [d for _, _, d in plan(text, 3)] == [0, 1, 2]


def test_auto_with_a_missing_listed_gpu_becomes_cpu():
    text = 'name: "m" backend: "python" instance_group [{ gpus: [0, 5] }]'
    assert plan(text, 2) == [("m_0_0", "CPU", 0)]
    text = 'name: "m" backend: "python" instance_group [{ gpus: [1] }]'
    assert plan(text, 2) == [("m_0_0", "GPU", 1)]


def _error(text: str, gpus: int) -> TritonError:
    with pytest.raises(TritonError) as err:
        plan(text, gpus)
    assert err.value.code == Code.INVALID_ARG
    return err.value


def test_kind_gpu_on_a_host_without_gpus_is_tritons_error():
    err = _error('name: "m" backend: "python" instance_group [{ name: "g" kind: KIND_GPU }]', 0)
    assert err.message == "instance group g of model m has kind KIND_GPU but no GPUs are available"


def test_unknown_gpu_id_is_tritons_error():
    err = _error('name: "m" backend: "python" '
                 'instance_group [{ name: "g" kind: KIND_GPU gpus: [2] }]', 2)
    assert err.message == ("instance group g of model m specifies invalid or unsupported gpu id "
                           "2. GPUs with at least the minimum required CUDA compute compatibility "
                           "of 6.000000 are: 0, 1")


def test_kind_cpu_listing_gpus_is_tritons_error():
    err = _error('name: "m" backend: "python" '
                 'instance_group [{ name: "g" kind: KIND_CPU gpus: [0] }]', 1)
    assert err.message == "instance group g of model m has kind KIND_CPU but specifies one or more GPUs"


def test_auto_stays_on_cpu_where_the_backend_has_no_cuda_build(monkeypatch):
    # a pip host may hold a CPU-only onnxruntime or torch beside its GPUs
    from tritond import gpus
    monkeypatch.setattr(gpus, "backend_runs_on_gpu", lambda backend: backend == "python")
    assert plan('name: "m" backend: "onnxruntime"', 1) == [("m_0", "CPU", 0), ("m_1", "CPU", 0)]
    assert plan('name: "m" backend: "pytorch"', 1) == [("m_0", "CPU", 0)]
    assert plan('name: "m" backend: "python"', 1) == [("m_0", "GPU", 0)]
    gpu = 'name: "m" backend: "onnxruntime" instance_group [{ kind: KIND_GPU }]'
    assert plan(gpu, 1) == [("m_0_0", "GPU", 0)]     # asked for: the backend says why it cannot
