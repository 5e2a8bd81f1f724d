"""GPU benchmark (issue 12 item 9): client CUDA shm identity and a TorchScript CNN.

Run on a GPU host only (it exits 0 with a note elsewhere):
``python bench/gpu.py [--seconds S] [--sizes-mib 1,16,64] [--json out.json]``.

1. Identity through one input and one output client CUDA region (tritonclient's
   cuda_shared_memory) at each size, for a Python model on a GPU instance with
   ``FORCE_CPU_ONLY_INPUT_TENSORS: "no"`` (DLPack, no host copy) and a TorchScript
   identity on a KIND_GPU instance; next to it, the device's own device-to-device
   copy rate (cupy), the ceiling. Goal at 64 MiB: >= 30 GB/s.
2. A small TorchScript CNN on a KIND_GPU instance at batch 1..64 through tritond
   (HTTP, binary input from the host) against the same module called in-process
   on the same host arrays (copy to the device, run, copy back). Goal: >= 0.9x.
   Two tritond rows: one client calling back to back (each request pays its HTTP
   round trip and body transfer, which the in-process call does not have), and
   ``--cnn-clients`` client processes at once (what a server is for: the server's
   work overlaps the clients'), each against one in-process caller.

The lead records the figures in bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
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
BATCHES = (1, 2, 4, 8, 16, 32, 64)


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
        'instance_group [ { kind: KIND_GPU count: 1 gpus: [ 0 ] } ]\n'
        'parameters { key: "FORCE_CPU_ONLY_INPUT_TENSORS" value { string_value: "no" } }\n')
    _cnn(root)


def _cnn_module():
    import torch

    class Cnn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    torch.manual_seed(0)
    return torch.jit.script(Cnn().eval())


def _cnn(root: pathlib.Path) -> None:
    d = root / "torch_cnn"
    (d / "1").mkdir(parents=True)
    _cnn_module().save(str(d / "1" / "model.pt"))
    (d / "config.pbtxt").write_text(
        'name: "torch_cnn"\nbackend: "pytorch"\nmax_batch_size: 64\n'
        'input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3, 64, 64 ] } ]\n'
        'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 10 ] } ]\n'
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


def _device_copy_rate(mib: int, seconds: float) -> float:
    """GB/s of a plain device-to-device copy of ``mib`` MiB (the ceiling for identity)."""
    import cupy
    src = cupy.ones((mib << 20) // 4, cupy.float32)
    dst = cupy.empty_like(src)
    cupy.copyto(dst, src)
    cupy.cuda.Device().synchronize()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        cupy.copyto(dst, src)
        count += 1
    cupy.cuda.Device().synchronize()
    return count * src.nbytes / (time.perf_counter() - start) / 1e9


def _rate(call, seconds: float) -> float:
    call()                                      # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        count += 1
    return count / (time.perf_counter() - start)


def _client_loop(url: str, batch: int, seconds: float) -> int:
    """One client process of the concurrent rows: back-to-back CNN requests for ``seconds``."""
    import tritonclient.http as httpclient
    client = httpclient.InferenceServerClient(url)
    x = np.random.default_rng(batch).random((batch, 3, 64, 64), dtype=np.float32)
    inp = httpclient.InferInput("INPUT__0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    client.infer("torch_cnn", [inp])
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        client.infer("torch_cnn", [inp])
        count += 1
    return count


def _concurrent(pool, url: str, clients: int, batch: int, seconds: float) -> float:
    start = time.perf_counter()
    counts = pool.starmap(_client_loop, [(url, batch, seconds)] * clients)
    return sum(counts) * batch / (time.perf_counter() - start)


def _cnn_rows(client, url: str, seconds: float, clients: int) -> list[dict]:
    """Inferences/s of torch_cnn through tritond (one client, and ``clients`` client
    processes at once) and in-process (one caller), per batch size."""
    import multiprocessing

    import torch
    import tritonclient.http as httpclient
    module = _cnn_module().cuda()
    rows = []
    # spawn: the clients must not inherit this process's CUDA context
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        for batch in BATCHES:
            x = np.random.default_rng(batch).random((batch, 3, 64, 64), dtype=np.float32)
            inp = httpclient.InferInput("INPUT__0", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=True)
            served = _rate(lambda: client.infer("torch_cnn", [inp]), seconds) * batch
            many = _concurrent(pool, url, clients, batch, seconds)

            def local():
                with torch.inference_mode():
                    module(torch.from_numpy(x).cuda()).cpu().numpy()
            inproc = _rate(local, seconds) * batch
            rows.append({"batch": batch, "tritond_per_s": served, "in_process_per_s": inproc,
                         "ratio": served / inproc, "clients": clients,
                         "tritond_clients_per_s": many, "ratio_clients": many / inproc})
            print(f"torch_cnn batch {batch:2d}  tritond {served:9.1f}/s  {clients} clients "
                  f"{many:9.1f}/s  in-process {inproc:9.1f}/s  ratio {served / inproc:5.2f}"
                  f"  with {clients} clients {many / inproc:5.2f}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes-mib", default="1,16,64")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--cnn-clients", type=int, default=8,
                        help="client processes of the concurrent CNN rows")
    args = parser.parse_args()
    from tritond import gpus
    if gpus.count() == 0:
        print("bench/gpu.py: no GPU on this host (tritond.gpus.count() == 0): nothing measured")
        return 0
    import tritonclient.http as httpclient
    import tritonclient.utils.cuda_shared_memory as cudashm
    from tests.server import Server

    results: dict = {"identity": [], "cnn": []}
    with tempfile.TemporaryDirectory() as tmp:
        _repo(pathlib.Path(tmp))
        srv = Server([tmp], "--allow-client-shm=true")
        try:
            client = httpclient.InferenceServerClient(srv.url)
            for mib in (int(s) for s in args.sizes_mib.split(",")):
                ceiling = _device_copy_rate(mib, min(args.seconds, 1.0))
                for model in ("py_identity", "torch_identity"):
                    rate = _measure(client, cudashm, model, mib, args.seconds)
                    results["identity"].append({"model": model, "mib": mib, "gb_s": rate,
                                                "device_copy_gb_s": ceiling})
                    print(f"{model:16s} {mib:3d} MiB  {rate:8.2f} GB/s   (device copy "
                          f"{ceiling:8.1f} GB/s)")
            results["cnn"] = _cnn_rows(client, srv.url, args.seconds, args.cnn_clients)
        finally:
            srv.stop()
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
