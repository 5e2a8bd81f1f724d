"""GPU discovery: CUDA_VISIBLE_DEVICES and compute capability over a given device list."""
from __future__ import annotations

import pytest

from tritond import gpus

H200 = [("GPU-aaaa1111", 9.0), ("GPU-bbbb2222", 9.0), ("GPU-cccc3333", 9.0)]


@pytest.mark.parametrize("visible, expected", [
    (None, 3),                      # unset: every device
    ("", 0),                        # set but empty: none (as CUDA)
    ("0", 1),
    ("2,0", 2),
    ("0,1,2", 3),
    ("0,7,1", 1),                   # CUDA stops at the first invalid entry
    ("-1,0", 0),
    ("1,1", 1),                     # a device named twice stops the list
    ("GPU-bbbb", 1),                # a UUID prefix
    ("GPU-bbbb2222,GPU-aaaa", 2),
    ("GPU-", 0),                    # an ambiguous prefix names no device
    ("MIG-xyz", 0),
    (" 1 , 2 ", 2),
])
def test_visible_count_applies_cuda_visible_devices(visible, expected):
    assert gpus.visible_count(H200, visible) == expected


def test_devices_below_minimum_compute_capability_are_not_counted():
    old = [("GPU-k80", 3.7), ("GPU-v100", 7.0), ("GPU-p100", 6.0)]
    assert gpus.visible_count(old, None) == 2
    assert gpus.visible_count(old, "0") == 0


@pytest.mark.skipif(gpus.driver_present(), reason="NVIDIA driver present")
def test_host_without_driver_counts_zero_without_gpu_packages():
    gpus.count.cache_clear()
    try:
        assert gpus.count() == 0
    finally:
        gpus.count.cache_clear()


def test_visible_indices_keep_cuda_order():
    uuids = [u for u, _ in H200]
    assert gpus.visible_indices(uuids, None) == list(range(len(uuids)))
    assert gpus.visible_indices(uuids, "1,0") == [1, 0]
    assert gpus.visible_indices(uuids, "0,9,1") == [0]


def test_torch_build_is_read_from_its_version_file(tmp_path):
    (tmp_path / "version.py").write_text("__version__ = '2.11.0+cu130'\n"
                                         "cuda: Optional[str] = '13.0'\nhip = None\n")
    assert gpus.torch_has_cuda(tmp_path)
    (tmp_path / "version.py").write_text("__version__ = '2.13.0+cpu'\n"
                                         "cuda: Optional[str] = None\nhip = None\n")
    assert not gpus.torch_has_cuda(tmp_path)
    assert not gpus.torch_has_cuda(tmp_path / "missing")
    assert not gpus.torch_has_cuda(None)


def test_onnxruntime_gpu_is_known_by_its_cuda_provider_library(tmp_path):
    (tmp_path / "capi").mkdir()
    (tmp_path / "capi" / "libonnxruntime_providers_shared.so").write_bytes(b"")
    assert not gpus.onnxruntime_has_cuda(tmp_path)
    (tmp_path / "capi" / "libonnxruntime_providers_cuda.so").write_bytes(b"")
    assert gpus.onnxruntime_has_cuda(tmp_path)
    assert not gpus.onnxruntime_has_cuda(None)
