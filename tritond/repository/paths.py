"""Model names and model files stay inside the model repository.

A model name is one directory of a repository: Triton's ``ValidateModelName``
refuses '/' and '..' (INVALID_ARG, its text); tritond also refuses NUL and '.'.
Every file a model reads (its model file, per-capability model files, label
files) is resolved with ``realpath`` (symlinks followed) and must lie inside
its version directory (model files) or model directory (label files), which
itself must lie inside the resolved model directory: a config override or a
symlink cannot make the server read or run a file from elsewhere. The parent
checks at load (``check_model_paths``, from the repository scan); workers
resolve their model file once more with :func:`model_file` right before
opening it.
"""
from __future__ import annotations

import os

from tritond.errors import invalid_arg

EMPTY = "Model name cannot be empty. Please enter a valid name to deploy."


def check_model_name(name) -> str:
    """``name`` if it names one directory of a repository; Triton's INVALID_ARG otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise invalid_arg(EMPTY)
    trimmed = name.strip()
    if trimmed in ("..", ".") or "/" in trimmed or "\0" in trimmed:
        raise invalid_arg(f"invalid model name '{name}', model name must not contain path "
                          f"traversal characters")
    return name


def inside(root: str, relative: str, what: str) -> str:
    """The resolved path of ``relative`` under ``root``; INVALID_ARG if it is absolute,
    holds NUL, or resolves (through '..' or symlinks) outside ``root``."""
    if "\0" in relative:
        raise invalid_arg(f"{what} '{relative!r}' contains a NUL character")
    if os.path.isabs(relative):
        raise invalid_arg(f"{what} '{relative}' must be relative to the model directory")
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, relative))
    if path != base and not path.startswith(base + os.sep):
        raise invalid_arg(f"{what} '{relative}' is outside the model directory")
    return path


def model_file(model_dir: str, version: int, filename: str) -> str:
    """The resolved path of a version's model file (inside its version directory)."""
    version_dir = inside(model_dir, str(version), "version directory")
    return inside(version_dir, filename, "model file")


def check_model_paths(cfg, model_dir: str, versions: list[int]) -> None:
    """Every model file ``cfg`` (a ModelConfig) names resolves inside its version directory."""
    names = [cfg.default_model_filename] if cfg.default_model_filename else []
    names += [f for f in cfg.cc_model_filenames.values() if f]
    for version in versions:
        for filename in names:
            model_file(model_dir, version, filename)
    # label files: repository.read_labels resolves them the same way at load (UNSUPPORTED)
