"""The batch-shaped backend interface and the backend registry.

A backend turns a list of requests into a same-length list of results. It sees
numpy arrays only (zero-copy views of shared memory for inputs); where the
outputs go is the worker main's business (``workers/outputs.py``).

Backends are registered by import string and imported only inside the worker
process that needs one, so a worker for an ONNX model never imports the Python
backend's machinery and vice versa.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Optional

import numpy as np

from tritond import messages
from tritond.errors import Code, TritonError
from tritond.options import Options
from tritond.spec import ModelSpec

REGISTRY: dict[str, str] = {
    "onnxruntime": "tritond.workers.onnxruntime:OnnxRuntimeBackend",
    "python": "tritond.workers.python.backend:PythonBackend",
    "pytorch": "tritond.workers.pytorch:PyTorchBackend",
    "tensorrt": "tritond.workers.tensorrt:TensorRTBackend",
}
"""Backend name (config ``backend``) -> ``"module:Class"``."""

PLATFORMS: dict[tuple[str, str], str] = {
    ("pytorch", "torch_aoti"): "tritond.workers.aoti:AotiBackend",
}
"""(backend, platform) -> ``"module:Class"`` where one backend serves two model formats."""


@dataclasses.dataclass(frozen=True)
class LoadContext:
    """Where and what a backend instance loads (from the parent's ``Load``)."""

    model: str
    version: int
    instance: str              # e.g. "simple_0_1"
    kind: str                  # "CPU" | "GPU" | "MODEL"
    device_id: int
    model_dir: str             # <repository>/<model>
    repository: str
    options: Any = dataclasses.field(default_factory=Options)   # tritond.options.Options
    # A Python-based backend's directory (its model.py); "" for a model's own code
    runtime_dir: str = ""


@dataclasses.dataclass
class WorkRequest:
    """One request as a backend sees it.

    ``inputs`` are numpy views of shared memory (BYTES: object arrays of
    ``bytes``), already reshaped per the config's input ``reshape``.
    ``outputs`` are the requested output names (all config outputs when the
    client named none).
    """

    request: messages.Request
    inputs: dict[str, np.ndarray]
    outputs: list[str]
    # Output name -> the client shm bytes it will be written to. A backend that
    # knows an output's shape before running may produce it right there (a
    # numpy view of this buffer); the worker then skips its copy.
    dests: dict[str, memoryview] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class WorkResult:
    """A backend's answer for one request: outputs, or an error (as data)."""

    outputs: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    error: Optional[messages.ErrorInfo] = None
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    # True: the request is answered through the worker's StreamHub (a response
    # sender), now or later; the worker posts no Response for it.
    streamed: bool = False
    # True (with streamed): the model rescheduled the request (iterative sequences);
    # it is reported in Executed.rescheduled and runs again later.
    rescheduled: bool = False

    @classmethod
    def failed(cls, code: int, message: str) -> "WorkResult":
        return cls(error=messages.ErrorInfo(int(code), message))


class Backend:
    """Base class: load / execute(list) -> same-length list / unload.

    ``fuses_batches``: when True and the model batches (``max_batch_size > 0``),
    the worker concatenates the inputs of several requests into one
    ``WorkRequest`` and splits the single result back into per-request slices
    (ONNX Runtime). When False the backend gets the requests as they are
    (Python models loop over them themselves).
    """

    fuses_batches = False
    streams = None     # the worker's StreamHub (workers/streams.py), set after construction

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self.spec: Optional[ModelSpec] = None

    def auto_complete(self, config: dict) -> dict:
        """Fill inputs/outputs/max_batch_size/dynamic_batching of Triton's JSON dict
        (the form models see in auto-complete); default: unchanged."""
        return config

    def load(self, spec: ModelSpec) -> None:
        """Load the model for the final config (raise TritonError on failure)."""
        self.spec = spec

    def execute(self, requests: list[WorkRequest]) -> list[WorkResult]:
        """Run one batch; return exactly one result per request, in order."""
        raise NotImplementedError

    def unload(self) -> None:
        """Release the model (called once, at Shutdown)."""


def run_each(requests: list[WorkRequest], run, what: str) -> list[WorkResult]:
    """``run(w)`` per request: one bad request fails only itself, its error as data
    (a TritonError as it is, anything else INTERNAL "<what> execute failure: ...")."""
    results = []
    for w in requests:
        try:
            results.append(run(w))
        except TritonError as exc:
            results.append(WorkResult.failed(exc.code, exc.message))
        except Exception as exc:  # noqa: BLE001 - backend errors become INTERNAL, as data
            results.append(WorkResult.failed(Code.INTERNAL, f"{what} execute failure: {exc}"))
    return results


def provisional_spec(config: dict) -> ModelSpec:
    """The spec of a config still being auto-completed (what a backend needs to open
    the model file before it can complete the IO)."""
    from tritond.repository import spec_from_config
    from tritond.repository.modelconfig import from_dict

    return spec_from_config(from_dict(config))


def backend_class(name: str, platform: str = "") -> type:
    """Import and return the backend class registered as ``name`` (and ``platform``).

    Raises TritonError(UNSUPPORTED) naming the backend when it is unknown or
    its module cannot be imported (e.g. an optional framework not installed).
    """
    target = PLATFORMS.get((name, platform)) or REGISTRY.get(name)
    if target is None:
        known = ", ".join(sorted(REGISTRY))
        raise TritonError(Code.UNSUPPORTED,
                          f"unable to find backend '{name}' (supported backends: {known})")
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        what = f"backend '{name}'" + (f" (platform '{platform}')"
                                      if (name, platform) in PLATFORMS else "")
        raise TritonError(Code.UNSUPPORTED, f"{what} is not available: {exc}") from exc
    return getattr(module, cls_name)
