"""ONNX Runtime execution providers for an instance, as Triton's onnxruntime backend picks them.

A CPU instance runs on the CPU provider. A GPU instance needs the CUDA provider
(``onnxruntime-gpu``): without it the load fails naming the package, rather
than running a KIND_GPU instance on the CPU unseen. Triton's
``optimization { execution_accelerators { gpu_execution_accelerator [...] } }``
maps ``tensorrt`` to the TensorRT provider (ahead of CUDA, which runs what
TensorRT cannot) and ``cuda`` to options of the CUDA provider.
"""
from __future__ import annotations

import json

from tritond.errors import Code, TritonError

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"

# Triton's TensorRT accelerator parameters -> ORT TensorRT provider options.
_TRT_KEYS = {"max_workspace_size_bytes": "trt_max_workspace_size",
             "trt_engine_cache_enable": "trt_engine_cache_enable",
             "trt_engine_cache_path": "trt_engine_cache_path",
             "max_partition_iterations": "trt_max_partition_iterations",
             "min_subgraph_size": "trt_min_subgraph_size"}


def providers(model: str, kind: str, device_id: int, config_json: str,
              available: list[str]) -> list:
    """The provider list for ``InferenceSession`` (``available``: ORT's available providers)."""
    if kind != "GPU":
        return [CPU]
    if CUDA not in available:
        raise TritonError(Code.UNAVAILABLE,
                          f"unable to load model '{model}': a KIND_GPU instance needs the CUDA "
                          f"execution provider of onnxruntime-gpu (pip uninstall onnxruntime; "
                          f"pip install onnxruntime-gpu); this onnxruntime provides "
                          f"{', '.join(available)}")
    cuda_options: dict = {"device_id": device_id}
    chosen = []
    for accel in _gpu_accelerators(config_json):
        name, params = accel.get("name", ""), accel.get("parameters", {}) or {}
        if name == "tensorrt":
            if TRT not in available:
                raise TritonError(Code.UNAVAILABLE,
                                  f"unable to load model '{model}': gpu_execution_accelerator "
                                  f"'tensorrt' needs an onnxruntime-gpu build with the TensorRT "
                                  f"execution provider; this onnxruntime provides "
                                  f"{', '.join(available)}")
            chosen.append((TRT, {"device_id": device_id, **trt_options(params)}))
        elif name == "cuda":
            cuda_options.update({k: v for k, v in params.items()})
        else:
            raise TritonError(Code.INVALID_ARG,
                              f"unable to load model '{model}': unknown Execution Accelerator "
                              f"'{name}' is requested")
    return [*chosen, (CUDA, cuda_options), CPU]


def trt_options(params: dict) -> dict:
    """Triton's TensorRT accelerator parameters as ORT TensorRT provider options."""
    mapped: dict = {}
    for key, value in params.items():
        if key == "precision_mode":
            if value not in ("FP32", "FP16"):
                raise TritonError(Code.INVALID_ARG,
                                  f"unsupported precision mode '{value}' is requested")
            mapped["trt_fp16_enable"] = value == "FP16"
        elif key in _TRT_KEYS:
            mapped[_TRT_KEYS[key]] = value
        elif key.startswith("trt_"):
            mapped[key] = value
        else:
            raise TritonError(Code.INVALID_ARG,
                              f"unknown parameter '{key}' is provided for TensorRT Execution "
                              f"Accelerator")
    return mapped


def _gpu_accelerators(config_json: str) -> list[dict]:
    config = json.loads(config_json) if config_json else {}
    return (config.get("optimization", {}).get("execution_accelerators", {})
            .get("gpu_execution_accelerator", []))
