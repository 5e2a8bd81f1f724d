"""``triton_python_backend_utils`` for tritond (``import triton_python_backend_utils as pb_utils``).

The Python backend installs this module under Triton's name before importing a
``model.py``, so models written for Triton run unchanged. The classes live in
small modules next to this one; this module is the public surface
plus the small helpers Triton defines in Python.
"""
from __future__ import annotations

import json  # noqa: F401 - Triton's module has these names; model code may reach them
import struct  # noqa: F401   through it (pb_utils.np, pb_utils.json)
from typing import Optional

import numpy as np  # noqa: F401

from tritond import messages

from .inference import (  # noqa: F401 - re-exported API
    TRITONSERVER_MEMORY_CPU,
    TRITONSERVER_MEMORY_CPU_PINNED,
    TRITONSERVER_MEMORY_GPU,
    TRITONSERVER_RESPONSE_COMPLETE_FINAL,
    InferenceRequest,
    InferenceResponse,
    InferenceResponseSender,
    InferenceTrace,
    PreferredMemory,
    TritonError,
    TritonModelException,
)
from .model_config import ModelConfig  # noqa: F401
from .telemetry import Logger, Metric, MetricFamily  # noqa: F401
from .tensor import (  # noqa: F401
    TRITON_STRING_TO_NUMPY,
    Tensor,
    deserialize_bytes_tensor,
    numpy_to_triton_type,
    serialize_byte_tensor,
    triton_string_to_numpy,
    triton_to_numpy_type,
)

# python_backend's C++ classes live in its ``c_python_backend_utils`` module, and
# models print their types (python_backend's own messages do: "found type '<class
# 'c_python_backend_utils.InferenceResponse'>'"): ours read the same (modelfile.py
# installs that module name too, so pickling by reference finds them).
C_MODULE = "c_python_backend_utils"
for _cls in (InferenceRequest, InferenceResponse, InferenceResponseSender, InferenceTrace,
             PreferredMemory, TritonError, TritonModelException, Logger, Metric,
             MetricFamily, Tensor):
    _cls.__module__ = C_MODULE

TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = messages.SEQUENCE_START
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = messages.SEQUENCE_END
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2

_model_dir: Optional[str] = None
_instance_name = ""        # Triton's instance name (python_backend's stub names it in errors)
_executing: list = []      # the requests in execute(): BLS calls follow their cancellation


def get_model_dir() -> Optional[str]:
    """The model's version directory, ``<repository>/<model>/<version>`` (python_backend's
    stub: the directory of the model file path it was started with, a Python-based
    backend's model too; set by the backend at load)."""
    return _model_dir


def get_input_tensor_by_name(inference_request, name: str):
    """The input Tensor called ``name``, or None."""
    for tensor in inference_request.inputs():
        if tensor._name == name:     # name()'s field: called per input per row, per step
            return tensor
    return None


def get_output_tensor_by_name(inference_response, name: str):
    """The output Tensor called ``name``, or None."""
    for tensor in inference_response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config: dict, name: str):
    """The config entry of input ``name``, or None."""
    return next((e for e in model_config.get("input", []) if e["name"] == name), None)


def get_output_config_by_name(model_config: dict, name: str):
    """The config entry of output ``name``, or None."""
    return next((e for e in model_config.get("output", []) if e["name"] == name), None)


def using_decoupled_model_transaction_policy(model_config: dict) -> bool:
    """True when ``model_transaction_policy.decoupled`` is set."""
    return bool((model_config.get("model_transaction_policy") or {}).get("decoupled", False))


def _control(kind: type, timeout_s=None, **fields) -> messages.Answer:
    """A model control query to the parent (workers/python/bls.py); errors raise."""
    from . import bls
    ch = bls.channel()
    answer = ch.ask(kind, ch.load_timeout_s if timeout_s is None else timeout_s, **fields)
    if answer.error is not None:
        raise TritonModelException(answer.error.message)
    return answer


def load_model(model_name: str, config: str = "", files: Optional[dict] = None) -> None:
    """Triton's model loading API for Python models (explicit model control mode only):
    load or reload ``model_name``; ``config`` overrides its config (JSON). ``files``
    (``file:`` overrides) are refused, as by tritond's load endpoint."""
    if not isinstance(config, str):
        raise TritonModelException("load_model: 'config' must be a string holding JSON")
    _control(messages.LoadQuery, name=model_name, config=config,
             files=sorted(files or {}))


def unload_model(model_name: str, unload_dependents: bool = False) -> None:
    """Unload ``model_name`` (and the ensembles using it if ``unload_dependents``)."""
    _control(messages.UnloadQuery, name=model_name, unload_dependents=bool(unload_dependents))


def is_model_ready(*args, **kwargs) -> bool:
    """``is_model_ready(model_name: str, model_version: str = "") -> bool``: whether the
    model (version; "" for its latest ready one) is ready to serve. As python_backend, the
    core's ModelIsReady answers (tritond/parent/modelready.py): a model that defines
    ``is_ready()`` is asked too. Errors raise in python_backend's words."""
    model_name, model_version = _ready_args(args, kwargs)
    from . import bls
    ch = bls.channel()
    answer = ch.ask(messages.ReadyQuery, 30.0, name=model_name, version=model_version)
    if answer.error is not None:
        raise TritonModelException(
            "Failed to check model readiness: Failed to process the request for model "
            f"'{_instance_name}', message: {answer.error.message}")
    return answer.ready


_READY_SIGNATURE = (
    "is_model_ready(): incompatible function arguments. The following argument types are "
    "supported:\n    1. (model_name: str, model_version: str = '') -> bool\n\nInvoked with: ")


def _ready_args(args: tuple, kwargs: dict) -> tuple[str, str]:
    """The binding's arguments, checked as pybind11 checks them (TypeError, its text)."""
    names = ("model_name", "model_version")
    bound = dict(zip(names, args))
    fits = len(args) <= 2 and not (set(kwargs) - set(names)) and not (set(kwargs) & set(bound))
    bound.update(kwargs)
    bound.setdefault("model_version", "")
    if not fits or not isinstance(bound.get("model_name"), str) or \
            not isinstance(bound["model_version"], str):
        invoked = ", ".join(repr(a) for a in args)
        if kwargs:
            invoked += "; kwargs: " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise TypeError(_READY_SIGNATURE + invoked)
    return bound["model_name"], bound["model_version"]
