"""Client CUDA shared-memory regions for the GPU tests (tritonclient's own helpers)."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest


@contextlib.contextmanager
def regions(client, sizes: dict[str, int], device: int = 0):
    """Create and register one CUDA region per name; yields name -> handle."""
    cudashm = pytest.importorskip("tritonclient.utils.cuda_shared_memory")
    handles = {}
    try:
        for name, nbytes in sizes.items():
            handles[name] = cudashm.create_shared_memory_region(name, nbytes, device)
            client.register_cuda_shared_memory(name, cudashm.get_raw_handle(handles[name]),
                                               device, nbytes)
        yield handles
    finally:
        client.unregister_cuda_shared_memory()
        for h in handles.values():
            cudashm.destroy_shared_memory_region(h)


def put(handle, arr: np.ndarray) -> None:
    from tritonclient.utils import cuda_shared_memory as cudashm
    cudashm.set_shared_memory_region(handle, [arr])


def get(handle, dtype, shape) -> np.ndarray:
    from tritonclient.utils import cuda_shared_memory as cudashm
    return cudashm.get_contents_as_numpy(handle, dtype, shape)
