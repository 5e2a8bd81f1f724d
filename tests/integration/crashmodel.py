"""A Python model that misbehaves on request, written into a test's tmp repository.

Input MODE (INT32 [1]) picks what ``execute`` does; OUT is the worker's pid
(so a test knows which process served it). Modes: 0 answer, 1 ``os._exit(1)``,
2 SIGSEGV itself, 3 sleep 0.3 s then answer, 4 sleep 2 s then answer.
If the file ``BROKEN`` exists next to ``config.pbtxt``, importing model.py
raises (a restart that cannot load).
"""
from __future__ import annotations

import pathlib
import shutil

import numpy as np

from tests.server import REPO

EXIT, SEGV, SLOW, VERY_SLOW = 1, 2, 3, 4

MODEL_PY = '''
import os, pathlib, signal, time

import numpy as np
import triton_python_backend_utils as pb_utils

if (pathlib.Path(__file__).resolve().parents[1] / "BROKEN").exists():
    raise ImportError("BROKEN marker present")


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            mode = int(pb_utils.get_input_tensor_by_name(r, "MODE").as_numpy().reshape(-1)[0])
            if mode == 1:
                os._exit(1)
            if mode == 2:
                os.kill(os.getpid(), signal.SIGSEGV)
            if mode in (3, 4):
                time.sleep(0.3 if mode == 3 else 2.0)
            pid = np.array([os.getpid()], np.int32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", pid)]))
        return out
'''


def write_repo(root: pathlib.Path, count: int = 1, name: str = "crashy",
               with_simple: bool = True) -> pathlib.Path:
    """A repository with the crash model (``count`` instances) and, optionally, ``simple``."""
    d = root / name
    (d / "1").mkdir(parents=True, exist_ok=True)
    (d / "1" / "model.py").write_text(MODEL_PY)
    (d / "config.pbtxt").write_text(f'''name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "MODE" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: {count} }} ]
''')
    if with_simple:
        shutil.copytree(REPO / "simple", root / "simple")
    return root


def mode_input(module, mode: int):
    """The MODE input for tritonclient.http or tritonclient.grpc (``module``)."""
    i = module.InferInput("MODE", [1], "INT32")
    i.set_data_from_numpy(np.array([mode], np.int32))
    return [i]


def simple_inputs(module):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [module.InferInput("INPUT0", [1, 16], "INT32"),
              module.InferInput("INPUT1", [1, 16], "INT32")]
    for i in inputs:
        i.set_data_from_numpy(a)
    return inputs


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pid_of(srv, name: str) -> int:
    """The pid of the server's child called ``name`` ("scheduler", "frontend-0", "w3"):
    the owner of the abstract socket ``@tritond-<server id>-<name>``."""
    inodes = set()
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[7].startswith("@tritond-") and parts[7].endswith("-" + name):
                inodes.add(parts[6])
    for pid in srv.children():
        try:
            fds = list(pathlib.Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = fd.readlink().name if hasattr(fd, "readlink") else ""
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    raise LookupError(f"no child named {name}")
