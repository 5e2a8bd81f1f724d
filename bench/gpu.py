"""GPU benchmark (issue 12 item 9): identity through client CUDA shared memory.

Run on a GPU host only (it exits 0 with a note elsewhere):
``python bench/gpu.py [--seconds S] [--sizes-mib 1,16,64]``. It writes a TorchScript
identity (KIND_GPU) and a Python identity model on GPU into a temporary repository,
starts tritond, and reports GB/s per size for each through one input and one output
CUDA region (client-side: tritonclient's cuda_shared_memory). The lead records the
figures in bench/RESULTS.md. Not measured yet: the TorchScript CNN vs in-process
comparison (needs a GPU session).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY_IDENTITY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor.from_dlpack(
            "OUTPUT__0", pb_utils.get_input_tensor_by_name(r, "INPUT__0"))]) for r in requests]
'''


def _repo(root: pathlib.Path) -> None:
    from tests import torch_models
    torch_models.identity(root, "torch_identity", extra='instance_group [ { kind: KIND_GPU } ]\n')
    d = root / "py_identity"
    (d / "1").mkdir(parents=True)
    (d / "1" / "model.py").write_text(PY_IDENTITY)
    (d / "config.pbtxt").write_text(
        'name: "py_identity"\nbackend: "python"\n'
        'input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
        'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
        'instance_group [ { kind: KIND_GPU count: 1 gpus: [ 0 ] } ]\n')


def _measure(client, cudashm, model: str, mib: int, seconds: float) -> float:
    import tritonclient.http as httpclient

    nbytes = mib << 20
    data = np.ones(nbytes // 4, np.float32)
    ih = cudashm.create_shared_memory_region(f"{model}_in", nbytes, 0)
    oh = cudashm.create_shared_memory_region(f"{model}_out", nbytes, 0)
    try:
        cudashm.set_shared_memory_region(ih, [data])
        client.register_cuda_shared_memory(f"{model}_in", cudashm.get_raw_handle(ih), 0, nbytes)
        client.register_cuda_shared_memory(f"{model}_out", cudashm.get_raw_handle(oh), 0, nbytes)
        inp = httpclient.InferInput("INPUT__0", [data.size], "FP32")
        inp.set_shared_memory(f"{model}_in", nbytes)
        out = httpclient.InferRequestedOutput("OUTPUT__0", binary_data=True)
        out.set_shared_memory(f"{model}_out", nbytes)
        client.infer(model, [inp], outputs=[out])           # warm-up
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            client.infer(model, [inp], outputs=[out])
            count += 1
        elapsed = time.perf_counter() - start
        return count * nbytes / elapsed / 1e9
    finally:
        client.unregister_cuda_shared_memory()
        cudashm.destroy_shared_memory_region(ih)
        cudashm.destroy_shared_memory_region(oh)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes-mib", default="1,16,64")
    args = parser.parse_args()
    from tritond import gpus
    if gpus.count() == 0:
        print("bench/gpu.py: no GPU on this host (tritond.gpus.count() == 0): nothing measured")
        return 0
    import tritonclient.http as httpclient
    import tritonclient.utils.cuda_shared_memory as cudashm
    from tests.server import Server

    with tempfile.TemporaryDirectory() as tmp:
        _repo(pathlib.Path(tmp))
        srv = Server([tmp])
        try:
            client = httpclient.InferenceServerClient(srv.url)
            for model in ("py_identity", "torch_identity"):
                for mib in (int(s) for s in args.sizes_mib.split(",")):
                    rate = _measure(client, cudashm, model, mib, args.seconds)
                    print(f"{model:16s} {mib:3d} MiB  {rate:8.2f} GB/s")
        finally:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
