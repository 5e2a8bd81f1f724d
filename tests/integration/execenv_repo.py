"""Python execution environments (EXECUTION_ENV_PATH) and the models that use them,
written into a tmp repository by tests (no network: ``venv --without-pip`` plus a
tiny package, ``envmarker``, written straight into its site-packages)."""
from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys
import tarfile

import numpy

MARKER = 42
PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"

# OUT0 = [envmarker.VALUE, numpy is the environment's, PATH and LD_LIBRARY_PATH start
# with the environment's bin and lib]
MODEL_PY = '''
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

import envmarker


class TritonPythonModel:
    def initialize(self, args):
        root = os.environ["VIRTUAL_ENV"]
        self.row = np.array([
            envmarker.VALUE,
            np.__file__.startswith(root),
            os.environ["PATH"].startswith(os.path.join(root, "bin") + ":"),
            os.environ["LD_LIBRARY_PATH"].startswith(os.path.join(root, "lib")),
        ], dtype=np.int32)

    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUT0", self.row)])
                for _ in requests]
'''


def venv(root: pathlib.Path, value: int = MARKER) -> pathlib.Path:
    """A real venv of this interpreter holding ``envmarker`` (VALUE = ``value``)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    pkg = root / "lib" / PYTHON / "site-packages" / "envmarker"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"VALUE = {value}\n")
    # A conda environment's lib holds its own libpython (another build of this minor
    # version): it must never replace the server's interpreter's (here: not even an ELF).
    (root / "lib" / f"lib{PYTHON}.so.1.0").write_bytes(b"not a library\n")
    return root


def with_numpy(root: pathlib.Path) -> pathlib.Path:
    """``root`` carrying numpy (a link to this interpreter's), as conda-pack envs do."""
    site = root / "lib" / PYTHON / "site-packages"
    (site / "numpy").symlink_to(pathlib.Path(numpy.__file__).parent)
    (site / f"numpy-{numpy.__version__}.dist-info").mkdir()
    return root


def fake_env(root: pathlib.Path, python: str = "python3.9", numpy_version: str = "") -> pathlib.Path:
    """A bare environment: bin/activate and lib/<python>/site-packages (with a numpy
    dist-info of ``numpy_version``)."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "activate").write_text("# activate\n")
    site = root / "lib" / python / "site-packages"
    site.mkdir(parents=True)
    if numpy_version:
        (site / "numpy").mkdir()
        (site / "numpy" / "__init__.py").write_text(f"__version__ = '{numpy_version}'\n")
        (site / f"numpy-{numpy_version}.dist-info").mkdir()
    return root


def pack(root: pathlib.Path, archive: pathlib.Path) -> pathlib.Path:
    """``root``'s contents as a tar.gz (conda-pack's layout: entries relative to the root)."""
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry)
    return archive


def evil_archive(archive: pathlib.Path, name: str) -> pathlib.Path:
    """A tar.gz whose one file is named ``name`` (e.g. "../x" or "/tmp/x")."""
    with tarfile.open(archive, "w:gz") as tar:
        data = b"escaped\n"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


def model(repo: pathlib.Path, name: str, env_path: str, count: int = 1) -> pathlib.Path:
    d = repo / name
    (d / "1").mkdir(parents=True)
    (d / "1" / "model.py").write_text(MODEL_PY)
    (d / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\n'
        'input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT0" data_type: TYPE_INT32 dims: [ 4 ] } ]\n'
        f'instance_group [ {{ kind: KIND_CPU count: {count} }} ]\n'
        f'parameters {{ key: "EXECUTION_ENV_PATH" value {{ string_value: "{env_path}" }} }}\n')
    return d
