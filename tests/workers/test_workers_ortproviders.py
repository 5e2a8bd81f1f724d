"""ONNX Runtime execution providers per instance kind, and the KIND_GPU error on a CPU build."""
from __future__ import annotations

import json

import onnxruntime as ort
import pytest

from tritond.errors import Code, TritonError
from tritond.workers import ortproviders
from tritond.workers.onnxruntime import OnnxRuntimeBackend

from tests.specs import spec_from_dict

from . import models
from .helpers import context

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def _accel(*accelerators) -> str:
    return json.dumps({"optimization": {"execution_accelerators": {
        "gpu_execution_accelerator": list(accelerators)}}})


def test_cpu_instance_runs_on_the_cpu_provider_even_with_a_gpu_build():
    assert ortproviders.providers("m", "CPU", 0, "", GPU_BUILD) == ["CPUExecutionProvider"]


def test_gpu_instance_gets_cuda_on_its_device():
    assert ortproviders.providers("m", "GPU", 2, "{}", GPU_BUILD) == [
        ("CUDAExecutionProvider", {"device_id": 2}), "CPUExecutionProvider"]


def test_tensorrt_accelerator_goes_ahead_of_cuda():
    config = _accel({"name": "tensorrt", "parameters": {
        "precision_mode": "FP16", "max_workspace_size_bytes": "1073741824",
        "trt_engine_cache_enable": "true"}})
    assert ortproviders.providers("m", "GPU", 1, config, GPU_BUILD) == [
        ("TensorrtExecutionProvider", {"device_id": 1, "trt_fp16_enable": True,
                                       "trt_max_workspace_size": "1073741824",
                                       "trt_engine_cache_enable": "true"}),
        ("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]


@pytest.mark.parametrize("config, available, words", [
    ("{}", ["CPUExecutionProvider"], "needs the CUDA execution provider of onnxruntime-gpu"),
    (_accel({"name": "tensorrt"}), GPU_BUILD[1:], "with the TensorRT execution provider"),
    (_accel({"name": "openvino"}), GPU_BUILD, "unknown Execution Accelerator 'openvino'"),
    (_accel({"name": "tensorrt", "parameters": {"precision_mode": "INT4"}}), GPU_BUILD,
     "unsupported precision mode 'INT4'"),
    (_accel({"name": "tensorrt", "parameters": {"bogus": "1"}}), GPU_BUILD,
     "unknown parameter 'bogus' is provided for TensorRT"),
])
def test_gpu_provider_errors(config, available, words):
    with pytest.raises(TritonError) as err:
        ortproviders.providers("m", "GPU", 0, config, available)
    assert words in err.value.message


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                    reason="onnxruntime-gpu installed")
def test_kind_gpu_onnx_model_fails_to_load_naming_onnxruntime_gpu(repo):
    model = models.add_sub(repo)
    backend = OnnxRuntimeBackend(context(model, kind="GPU"))
    config = {"name": "add_sub", "backend": "onnxruntime",
              "instance_group": [{"kind": "KIND_GPU", "gpus": [0]}]}
    with pytest.raises(TritonError) as err:
        backend.load(spec_from_dict(config))
    assert err.value.code == Code.UNAVAILABLE
    assert "unable to load model 'add_sub': a KIND_GPU instance needs the CUDA execution " \
        "provider of onnxruntime-gpu" in err.value.message
    assert backend.session is None
