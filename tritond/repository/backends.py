"""Which backend runs a model: one built in, or a Python-based backend's ``model.py``.

Triton core (src/backend_model.cc ``GetBackendLibraryProperties``) looks for
``libtriton_<name>.so`` in the version directory, the model directory and
``<backend-directory>/<name>``, in that order; only when none is there does it take
``<backend-directory>/<name>/model.py`` as a Python-based backend, run by the Python
backend, and set the config's ``runtime`` to ``model.py``. A ``runtime`` given in the
config skips that search: ``model.py`` means a Python-based backend, anything else
names the library file to look for.

tritond's backends are built in, so they stand where Triton finds its own
``<backend-directory>/<name>/libtriton_<name>.so``: a ``model.py`` never replaces
them. It loads no C++ library: one found where Triton would load it is refused by
name rather than passed over for a ``model.py`` Triton would not use.
"""
from __future__ import annotations

import os

from tritond.errors import invalid_arg, unsupported
from tritond.protos.model_config_pb2 import ModelConfig

DEFAULT_DIRECTORY = "/opt/tritonserver/backends"
PYTHON_FILE = "model.py"
BUILT_IN = ("onnxruntime", "python", "pytorch", "tensorrt")
"""Backends tritond runs itself (workers/backend.py REGISTRY)."""

TRITON_CPP = ("tensorflow", "openvino", "dali", "fil", "tensorrtllm")
"""Triton's own C++ backends tritond lacks: without a ``model.py`` of that name they are
refused as "not supported by tritond yet" (support.py), which says more than Triton's
"unable to find backend library" would."""

ENV_PARAMETER = "EXECUTION_ENV_PATH"


def library(name: str) -> str:
    return f"libtriton_{name}.so"


def python_based(cfg: ModelConfig) -> bool:
    """Whether ``cfg`` (once resolved) runs a Python-based backend's ``model.py``."""
    return cfg.runtime == PYTHON_FILE


def backend_dir(backend_directory: str, backend: str) -> str:
    """Where a Python-based backend's ``model.py`` lies (its runtime model directory)."""
    return os.path.join(backend_directory, backend)


def search_paths(model_dir: str, version: int, backend_directory: str,
                 backend: str) -> list[str]:
    """Triton's order for a backend library: version, model, global backend directory."""
    return [os.path.join(model_dir, str(version)), model_dir,
            backend_dir(backend_directory, backend)]


def resolve(cfg: ModelConfig, model_dir: str, version: int, backend_directory: str) -> None:
    """Settle what runs ``cfg`` as Triton does at model load: ``cfg.runtime`` becomes
    ``model.py`` for a Python-based backend found in ``backend_directory``. Raises
    Triton's INVALID_ARG load errors, or UNSUPPORTED for a C++ library."""
    name = cfg.backend
    if not name or cfg.platform == "ensemble":
        return
    paths = search_paths(model_dir, version, backend_directory, name)
    if cfg.runtime == PYTHON_FILE:
        return _python_file(cfg, backend_directory)
    if cfg.runtime:
        return _named_library(cfg, paths)
    if name in BUILT_IN:
        return
    found = _find(paths, library(name))
    if found:
        raise _cpp(cfg, found[1])
    if os.path.isfile(os.path.join(backend_dir(backend_directory, name), PYTHON_FILE)):
        cfg.runtime = PYTHON_FILE
        return _execution_env(cfg, backend_directory)
    if name in TRITON_CPP:
        return          # support.check names the backend tritond lacks
    raise invalid_arg(f"unable to find backend library for backend '{name}', try specifying "
                      f"runtime on the model configuration.")


def _python_file(cfg: ModelConfig, backend_directory: str) -> None:
    # The Python backend itself is built in: only the backend's model.py can be missing.
    path = os.path.join(backend_dir(backend_directory, cfg.backend), PYTHON_FILE)
    if not os.path.isfile(path):
        raise invalid_arg(f"unable to find Python backend based backend library "
                          f"'{PYTHON_FILE}' for model '{cfg.name}', searched: '{path}'")
    _execution_env(cfg, backend_directory)


def _named_library(cfg: ModelConfig, paths: list[str]) -> None:
    if cfg.backend in BUILT_IN and cfg.runtime == library(cfg.backend):
        return                           # the built-in backend's own library name
    found = _find(paths, cfg.runtime)
    if not found:
        searched = "".join(f"'{p}' " for p in paths)
        raise invalid_arg(f"unable to find backend library '{cfg.runtime}' for model "
                          f"'{cfg.name}', searched: {searched}")
    directory = os.path.abspath(found[0])
    if os.path.commonpath([directory, os.path.abspath(found[1])]) != directory:
        raise invalid_arg(f"backend library name '{cfg.runtime}' escapes backend directory "
                          f"'{found[0]}', for model '{cfg.name}', check model config "
                          f"runtime field")
    raise _cpp(cfg, found[1])


def _find(paths: list[str], filename: str) -> tuple[str, str] | None:
    """(directory, file) of the first ``paths`` entry holding ``filename``."""
    for path in paths:
        full = os.path.join(path, filename)
        if os.path.exists(full):
            return path, full
    return None


def _cpp(cfg: ModelConfig, path: str):
    from tritond.repository import support

    return unsupported(support.message(cfg.name, f"backend library '{path}' (a C++ backend)"))


def _execution_env(cfg: ModelConfig, backend_directory: str) -> None:
    """Core's SetPythonBasedBackendExecutionEnvironment: without an EXECUTION_ENV_PATH of
    its own, the model uses the backend's ``pb_exec_env_model.py.tar.gz`` when present."""
    if ENV_PARAMETER in cfg.parameters:
        return
    archive = os.path.join(backend_dir(backend_directory, cfg.backend),
                           f"pb_exec_env_{cfg.runtime}.tar.gz")
    if os.path.exists(archive):
        cfg.parameters[ENV_PARAMETER].string_value = archive
