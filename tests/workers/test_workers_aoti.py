"""Which worker backend serves ``platform: "torch_aoti"``, and the refusal of a torch too
old for AOTInductor packages (the values served are tested in tests/integration/test_aoti.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

from tritond.workers.backend import backend_class  # noqa: E402


def test_the_platform_picks_the_aoti_backend():
    from tritond.workers.aoti import AotiBackend
    from tritond.workers.pytorch import PyTorchBackend

    assert backend_class("pytorch", "torch_aoti") is AotiBackend
    assert backend_class("pytorch", "pytorch_libtorch") is PyTorchBackend
    assert backend_class("pytorch") is PyTorchBackend


def test_a_torch_without_aoti_load_package_is_refused_by_name():
    # torch before 2.6 has no torch._inductor.aoti_load_package: this process removes it
    # from the installed torch to stand for one
    code = ("import torch._inductor as i; del i.aoti_load_package\n"
            "from tritond.errors import TritonError\n"
            "from tritond.workers.backend import backend_class\n"
            "try:\n    backend_class('pytorch', 'torch_aoti')\n"
            "except TritonError as exc:\n    print(exc.code.name, exc.message)\n"
            "print(backend_class('pytorch').__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    import torch
    assert out.stdout.splitlines() == [
        f"UNSUPPORTED backend 'pytorch' (platform 'torch_aoti') is not available: torch "
        f"{torch.__version__} has no torch._inductor.aoti_load_package; platform 'torch_aoti' "
        "needs torch 2.6 or newer",
        "PyTorchBackend"]
