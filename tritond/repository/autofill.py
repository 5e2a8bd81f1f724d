"""Server-side auto-fill of backend, platform and model file name.

This mirrors Triton's ``AutoCompleteBackendFields``:
it always runs, even with auto-complete disabled, and inspects only the
first subdirectory of the model by name (:func:`first_subdir`).
"""
from __future__ import annotations

import os

from tritond.errors import invalid_arg
from tritond.protos.model_config_pb2 import ModelConfig

ENSEMBLE = "ensemble"

# platform -> backend, for configs that name only a platform.
PLATFORM_BACKEND = {
    "onnxruntime_onnx": "onnxruntime",
    "tensorrt_plan": "tensorrt",
    "pytorch_libtorch": "pytorch",
    "libtorch": "pytorch",
    "torch_aoti": "pytorch",
    "tensorflow_graphdef": "tensorflow",
    "tensorflow_savedmodel": "tensorflow",
    ENSEMBLE: "",
}

# backend -> platform it implies when the config names only a backend.
BACKEND_PLATFORM = {
    "onnxruntime": "onnxruntime_onnx",
    "tensorrt": "tensorrt_plan",
    "pytorch": "pytorch_libtorch",
}

PLATFORM_FILE = {
    "onnxruntime_onnx": "model.onnx",
    "tensorrt_plan": "model.plan",
    "pytorch_libtorch": "model.pt",
    "libtorch": "model.pt",
    "torch_aoti": "model.pt2",
    "tensorflow_graphdef": "model.graphdef",
    "tensorflow_savedmodel": "model.savedmodel",
}

BACKEND_FILE = {
    "onnxruntime": "model.onnx",
    "tensorrt": "model.plan",
    "pytorch": "model.pt",
    "openvino": "model.xml",
    "python": "model.py",
}   # no other backend: Triton fills no file name for dali, fil, ... (the backend picks its own)

# Detection order of section 4.3 (TensorFlow savedmodel/graphdef first).
_PROBES = (
    ("model.savedmodel", "tensorflow", "tensorflow_savedmodel"),
    ("model.graphdef", "tensorflow", "tensorflow_graphdef"),
    ("model.plan", "tensorrt", "tensorrt_plan"),
    ("model.onnx", "onnxruntime", "onnxruntime_onnx"),
    ("model.xml", "openvino", ""),
    ("model.pt", "pytorch", "pytorch_libtorch"),
    ("model.pt2", "pytorch", "torch_aoti"),
    ("model.py", "python", ""),
)


def first_subdir(model_dir: str) -> str | None:
    """The directory Triton inspects: the first of every subdirectory in byte order
    (a ``std::set<std::string>``), so "10" before "9", and a hidden or non-numeric
    directory counts too."""
    try:
        names = os.listdir(model_dir)
    except OSError:
        return None
    subdirs = sorted(n for n in names if os.path.isdir(os.path.join(model_dir, n)))
    return subdirs[0] if subdirs else None


def autofill(cfg: ModelConfig, model_dir: str, first_version: str | None) -> None:
    """Fill name, backend, platform and default_model_filename in place."""
    name = os.path.basename(os.path.normpath(model_dir))
    if not cfg.name:
        cfg.name = name
    named_backend_only = bool(cfg.backend) and not cfg.platform
    if cfg.platform and not cfg.backend:
        cfg.backend = PLATFORM_BACKEND.get(cfg.platform, "")
    if cfg.backend == "tensorflow" and not cfg.platform:
        cfg.platform = _tensorflow_platform(cfg, model_dir, first_version)
    if cfg.backend and not cfg.platform:
        cfg.platform = BACKEND_PLATFORM.get(cfg.backend, "")
        if cfg.backend == "pytorch" and _has(model_dir, first_version, "model.pt2") \
                and not _has(model_dir, first_version, "model.pt"):
            cfg.platform = "torch_aoti"
    if not cfg.backend and cfg.platform != ENSEMBLE:
        _detect(cfg, name, model_dir, first_version)
    if not cfg.default_model_filename and cfg.platform != ENSEMBLE and (
            cfg.backend != "pytorch" or named_backend_only or cfg.platform == "torch_aoti"):
        # Triton leaves a TorchScript model's file name unset when the platform was given
        # or found from the file (the served config shows it so); model.pt is still used.
        cfg.default_model_filename = default_filename(cfg)


def default_filename(cfg: ModelConfig) -> str:
    """The model file expected in each version dir when none is configured ("" for a
    backend Triton fills no file name for: a custom one named in the config, which may
    be a Python-based backend needing no file, repository/backends.py)."""
    if cfg.platform in PLATFORM_FILE:
        return PLATFORM_FILE[cfg.platform]
    return BACKEND_FILE.get(cfg.backend, "")


def model_file_path(cfg: ModelConfig, model_dir: str, version: int) -> str | None:
    """Path of the model file for version, or None for ensembles and custom backends."""
    if cfg.platform == ENSEMBLE or (cfg.backend not in BACKEND_FILE
                                    and cfg.platform not in PLATFORM_FILE):
        # A custom backend (named, or "m.<backend>") reads what it wants: Triton checks
        # no file for it, and a Python-based one runs with empty version directories.
        return None
    filename = cfg.default_model_filename or default_filename(cfg)
    return os.path.join(model_dir, str(version), filename) if filename else None


def check_model_files(cfg: ModelConfig, model_dir: str, versions: list[int]) -> None:
    """Raise INVALID_ARG naming the first served version missing its model file."""
    for version in versions:
        path = model_file_path(cfg, model_dir, version)
        if path is not None and not os.path.exists(path):
            raise invalid_arg(
                f"model file '{path}' not found for version {version} of model "
                f"'{cfg.name}' (backend '{cfg.backend}')")


def _tensorflow_platform(cfg: ModelConfig, model_dir: str, first_version: str | None) -> str:
    """Triton's TensorFlow rule (the platform is required): from the configured file name,
    else a ``model.savedmodel`` directory or a ``model.graphdef`` file (graphdef wins)."""
    for platform, filename in (("tensorflow_savedmodel", "model.savedmodel"),
                               ("tensorflow_graphdef", "model.graphdef")):
        if cfg.default_model_filename == filename:
            return platform
    if cfg.default_model_filename or first_version is None:
        return ""
    version_dir = os.path.join(model_dir, str(first_version))
    found = ""
    if os.path.isdir(os.path.join(version_dir, "model.savedmodel")):
        found = "tensorflow_savedmodel"
    if os.path.isfile(os.path.join(version_dir, "model.graphdef")):
        found = "tensorflow_graphdef"
    return found


def _has(model_dir: str, version: str | None, filename: str) -> bool:
    if version is None:
        return False
    return os.path.exists(os.path.join(model_dir, str(version), filename))


def _detect(cfg: ModelConfig, name: str, model_dir: str, first_version: str | None) -> None:
    """Infer backend/platform from the files in the first version directory, else a
    custom backend from the model's directory ``name``."""
    for filename, backend, platform in _PROBES:
        # A configured file name or platform is kept (Triton's order): a misspelt
        # platform then fails validation instead of being replaced by the file's.
        if cfg.default_model_filename == filename or (
                not cfg.default_model_filename and not cfg.platform
                and _has(model_dir, first_version, filename)):
            cfg.backend = backend
            cfg.platform = cfg.platform or platform
            return
    if cfg.platform or cfg.default_model_filename:
        return          # no backend: validation names the platform (Triton's order)
    # Custom backend: Triton core (model_config_utils.cc AutoCompleteBackendFields) takes
    # the text after the FIRST dot of the model's name, empty or dotted: "m.identity.v2"
    # is backend "identity.v2", and "m." gets backend "" (then "unexpected platform type").
    _, dot, backend = name.partition(".")
    if dot:
        cfg.backend = backend
        cfg.default_model_filename = f"model.{backend}"
        return
    raise invalid_arg(   # Triton's text; a name "x.<backend>" names a custom backend
        f"Invalid model name: Could not determine backend for model '{name}' with no "
        f"backend in model configuration. Expected model name of the form "
        f"'model.<backend_name>'.")
