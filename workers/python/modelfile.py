"""A Triton ``model.py`` as a file: its import (``<version>.<file stem>``, with the version
and model directories appended to ``sys.path``; a Python-based
backend's as ``model``, from its backend directory), the load errors,
the ``initialize`` args and the parameters read before it runs."""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys

from tritond.errors import Code, TritonError
from tritond.repository.paths import model_file
from tritond.spec import ModelSpec

from ..backend import LoadContext
from . import failures, pb_utils

MODULE_NAME = "triton_python_backend_utils"


def load_error(ctx: LoadContext, what: str, exc: BaseException) -> TritonError:
    if isinstance(exc, TritonError):
        return exc
    message = failures.describe(exc)
    failures.report(f"{what} for model '{ctx.model}' failed: {message}", exc)
    return TritonError(Code.INTERNAL, message)   # the reason gets "Internal: " (loader)


def import_model(ctx: LoadContext, filename: str):
    """Import ``<version>/model.py`` (or default_model_filename) for ``ctx``'s model, or
    a Python-based backend's ``model.py``."""
    filename = filename or "model.py"
    version_dir = os.path.join(ctx.model_dir, str(ctx.version))
    sys.modules[MODULE_NAME] = pb_utils
    sys.modules.setdefault(pb_utils.C_MODULE, pb_utils)
    # The stub's model directory: where <version>/<file> lies, whether or not it exists
    pb_utils._model_dir = version_dir
    pb_utils._instance_name = ctx.instance
    if ctx.runtime_dir:
        return _import_backend(ctx)
    path = model_file(ctx.model_dir, ctx.version, filename)   # no escape from the version dir
    if not os.path.isfile(path):
        raise TritonError(Code.NOT_FOUND, f"unable to load model '{ctx.model}': "
                                          f"Python model file '{path}' does not exist")
    _append_model_folders(version_dir, ctx.model_dir)
    package = str(ctx.version)
    # Another model of the same version number imported in this process
    # (tests) must not shadow ours: forget the namespace package first.
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    _pin_package(package, version_dir)
    name = f"{package}.{os.path.splitext(filename)[0]}"
    try:
        # The C import (as the stub's): it strips importlib's frames from what fails
        # inside, as Triton's load failure shows them.
        __import__(name)
        module = sys.modules[name]
    except Exception as exc:  # noqa: BLE001 - any import failure is a load failure
        raise load_error(ctx, f"importing '{path}'", exc) from exc
    return _checked(module, path)


def _pin_package(package: str, version_dir: str) -> None:
    """``<version>`` as the namespace package of this model's version directory alone: with
    the model's folders last on ``sys.path``, a ``<version>`` folder anywhere before them
    (the working directory, the folders a spawning process had) must not hold the
    ``<version>.model`` imported."""
    spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
    spec.submodule_search_locations = [version_dir]
    sys.modules[package] = importlib.util.module_from_spec(spec)


_added: list[str] = []     # the folders a load put on sys.path (this process's model)


def _append_model_folders(*folders: str) -> None:
    """The stub (python_backend pb_stub.cc ModelContext::StubSetup) APPENDS the version and
    model directories, so an installed or standard module wins over a file of the same name
    shipped beside model.py; the repository is not added. A worker serves one model, but
    a process that loads another (the in-process tests) must not find ``<version>.model``
    in the first one's folders (``<version>`` is a namespace package over all of them)."""
    for entry in _added:
        if entry in sys.path:
            sys.path.remove(entry)
    _added[:] = [entry for entry in folders if entry not in sys.path]
    sys.path.extend(_added)


def _import_backend(ctx: LoadContext):
    """A Python-based backend's ``<backend-directory>/<name>/model.py``, imported as the
    stub imports it: module ``model`` by the C import (so a failure shows the frames
    Triton's does), its directory appended to ``sys.path`` (for the modules it ships
    beside it). The model's own version directory needs no file."""
    path = os.path.join(ctx.runtime_dir, "model.py")
    if ctx.runtime_dir not in sys.path:
        sys.path.append(ctx.runtime_dir)
    sys.modules.pop("model", None)
    finder = _Only("model", path)
    sys.meta_path.insert(0, finder)
    try:
        __import__("model")
        module = sys.modules["model"]
    except Exception as exc:  # noqa: BLE001 - any import failure is a load failure
        sys.modules.pop("model", None)
        raise load_error(ctx, f"importing '{path}'", exc) from exc
    finally:
        sys.meta_path.remove(finder)
    return _checked(module, path)


class _Only:
    """Finds ``name`` at ``path`` alone: a "model" module earlier on ``sys.path`` (the
    stub appends the backend's directory) must not stand in for the backend's file."""

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path)


def _checked(module, path: str):
    """The stub reads ``TritonPythonModel`` off the module: a file without it fails the
    load with that AttributeError (Triton 2.51: "Internal: AttributeError: module
    'model' has no attribute 'TritonPythonModel'")."""
    if not hasattr(module, "TritonPythonModel"):
        message = f"AttributeError: module '{module.__name__}' has no attribute " \
                  f"'TritonPythonModel'"
        failures.report(f"'{path}' defines no class TritonPythonModel: {message}")
        raise TritonError(Code.INTERNAL, message)
    return module


def initialize_args(ctx: LoadContext, spec: ModelSpec) -> dict:
    """Exactly Triton's ``initialize`` args, all strings."""
    return {
        "model_config": spec.config_json,
        "model_instance_kind": ctx.kind,
        "model_instance_name": ctx.instance,
        "model_instance_device_id": str(ctx.device_id),
        "model_repository": ctx.model_dir,
        "model_version": str(ctx.version),
        "model_name": ctx.model,
    }


def device_inputs(ctx, spec: ModelSpec) -> bool:
    """Triton's FORCE_CPU_ONLY_INPUT_TENSORS: "yes" (default) copies CUDA shared-memory
    inputs to the host; "no" hands them to the model on the GPU (``is_cpu()`` False)."""
    value = spec.parameters.get("FORCE_CPU_ONLY_INPUT_TENSORS", "yes")
    if value not in ("yes", "no"):
        raise TritonError(Code.INVALID_ARG, f"unable to load model '{ctx.model}': Incorrect "
                          f"value for FORCE_CPU_ONLY_INPUT_TENSORS: '{value}'")
    return value == "no"
