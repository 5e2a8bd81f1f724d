"""A Python execution environment (``EXECUTION_ENV_PATH``) as a worker uses it.

Triton's Python backend runs its stub under the environment's own interpreter.
tritond's worker is the server's interpreter (it imports tritond), so an
environment here is a directory whose ``lib/pythonX.Y/site-packages`` matches
that interpreter's X.Y, placed ahead of the server's site-packages in the
model's worker, with its ``bin`` first on PATH and its ``lib`` first on
LD_LIBRARY_PATH for the programs the model starts. Not for the worker's own
dynamic loader: the variables are set once the worker runs, because a conda
environment's ``lib`` holds its own libpython3.X, and another build of it under
the server's interpreter breaks it (``_ssl``: undefined symbol). Conda's
packages find their libraries through their RPATH, pip's wheels carry theirs.

numpy: one process holds one numpy, and the environment's packages were built
against the environment's. When the environment carries numpy, the worker
uses it too (as Triton's stub does); the parent refuses one older than
tritond's own floor (tritond/parent/pythonenv.py). tritond's other
dependencies are imported before the environment is activated, so they stay
the server's. Imported by every child at spawn: stdlib only.
"""
from __future__ import annotations

import os
import sys

NUMPY_FLOOR = (1, 24)
"""tritond's own numpy requirement (setup.cfg install_requires)."""


def python_dir() -> str:
    """``pythonX.Y`` of the interpreter every worker runs (the server's)."""
    return f"python{sys.version_info[0]}.{sys.version_info[1]}"


def site_dir(root: str) -> str:
    return os.path.join(root, "lib", python_dir(), "site-packages")


def variables(root: str, environ=os.environ) -> dict[str, str]:
    """What the worker using ``root`` sets in its environment (its differences to
    ``environ``): Triton's activation (VIRTUAL_ENV, PATH, LD_LIBRARY_PATH)."""
    def first(name: str, path: str) -> str:
        rest = environ.get(name, "")
        return f"{path}:{rest}" if rest else path

    return {"VIRTUAL_ENV": root,
            "PATH": first("PATH", os.path.join(root, "bin")),
            "LD_LIBRARY_PATH": first("LD_LIBRARY_PATH", os.path.join(root, "lib"))}


# Imported before the environment's site-packages go in, so that a copy in the
# environment never replaces what tritond's worker was built and tested with.
OWN_DEPENDENCIES = ("msgspec", "msgpack", "posix_ipc", "google.protobuf")


def activate(root: str) -> None:
    """Put ``root``'s site-packages (and what its .pth files add) ahead of the
    server's, in this (worker) process, before the worker's own imports."""
    import importlib
    import site

    for name in OWN_DEPENDENCIES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    before = list(sys.path)
    site.addsitedir(site_dir(root))
    added = [p for p in sys.path if p not in before]
    kept = [p for p in sys.path if p in before]
    at = next((i for i, p in enumerate(kept) if "site-packages" in p or "dist-packages" in p),
              len(kept))
    sys.path[:] = kept[:at] + added + kept[at:]
    os.environ.update(variables(root))
    # The running interpreter is set up; a Python the model starts is the environment's
    # (first on PATH) and must not inherit the server's home (Triton removes it too).
    os.environ.pop("PYTHONHOME", None)
