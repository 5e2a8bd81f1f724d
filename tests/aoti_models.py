"""The AOTInductor test package, compiled at test time (torch.export +
``torch._inductor.aoti_compile_and_package``: ~25 s on a busy 2-core host, so the
suite compiles it once per session, tests/conftest.py ``aoti_package``).

``forward(a, *, b) -> {"sum": a + b, "diff": a - b}`` on FP32 ``[batch, 4]``,
batch 1..8: its call specification names the inputs ``ARGS[0]``/``INPUT__0`` and
``KWARGS[b]``/``INPUT__1``, the outputs ``RESULT[sum]``/``OUTPUT__0`` and
``RESULT[diff]``/``OUTPUT__1`` (insertion order, not alphabetical).

``python -m tests.aoti_models <repository>`` writes it as ``aoti_add_sub`` (a GPU
host: ``--device cuda``).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import sys

MAX_BATCH = 8

CONFIG = '''name: "{name}"
platform: "torch_aoti"
max_batch_size: {mbs}
{extra}input [ {{ name: "{in0}" data_type: {t0} dims: [ {dims} ] }},
        {{ name: "{in1}" data_type: TYPE_FP32 dims: [ {dims} ] }} ]
output [ {{ name: "{out0}" data_type: {t_out} dims: [ {dims} ] }},
         {{ name: "{out1}" data_type: TYPE_FP32 dims: [ {dims} ] }} ]
'''


def missing() -> str | None:
    """Why this host cannot compile the package (None: it can)."""
    try:
        import torch
    except ImportError as exc:
        return f"torch is not importable ({exc})"
    import torch._inductor as inductor
    if not hasattr(inductor, "aoti_compile_and_package"):
        return f"torch {torch.__version__} has no aoti_compile_and_package (needs 2.6+)"
    if shutil.which("g++") is None and shutil.which("c++") is None:
        return "AOTInductor needs a C++ compiler (g++)"
    return None


def compile_package(path: pathlib.Path, device: str = "cpu") -> pathlib.Path:
    """Export and compile the test model into ``path`` (a ``.pt2`` file)."""
    import torch

    class AddSub(torch.nn.Module):
        def forward(self, a: torch.Tensor, *, b: torch.Tensor):
            return {"sum": a + b, "diff": a - b}

    # two distinct sample tensors: one tensor passed as both inputs compiles a package
    # that treats them as one (wrong sums)
    a, b = torch.zeros(2, 4, device=device), torch.ones(2, 4, device=device)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(AddSub(), (a,), {"b": b},
                                  dynamic_shapes={"a": {0: batch}, "b": {0: batch}})
    # a batch of 1 passes the runner's own input checks (AOTI_RUNTIME_CHECK_INPUTS=1)
    options = ({"aot_inductor.check_lowerbound": False}
               if hasattr(torch._inductor.config.aot_inductor, "check_lowerbound") else {})
    torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                             inductor_configs=options)
    return path


def add_model(repo: pathlib.Path, package: pathlib.Path, name: str, *, mbs: int = MAX_BATCH,
              in0: str = "INPUT__0", in1: str = "INPUT__1", out0: str = "OUTPUT__0",
              out1: str = "OUTPUT__1", t0: str = "TYPE_FP32", t_out: str = "TYPE_FP32",
              extra: str = "", config: str | None = None) -> pathlib.Path:
    """A model dir serving ``package`` (hard-linked: no copy) with a config variant."""
    model_dir = pathlib.Path(repo) / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    target = model_dir / "1" / "model.pt2"
    try:
        os.link(package, target)
    except OSError:
        shutil.copyfile(package, target)
    dims = "4" if mbs else "-1, 4"
    if config is None:
        config = CONFIG.format(name=name, mbs=mbs, in0=in0, in1=in1, out0=out0, out1=out1,
                               t0=t0, t_out=t_out, dims=dims, extra=extra)
    (model_dir / "config.pbtxt").write_text(config)
    return model_dir


if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1])
    root.mkdir(parents=True, exist_ok=True)
    device = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--device" else "cpu"
    package = compile_package(root / "aoti_add_sub.pt2", device)
    add_model(root, package, "aoti_add_sub")
    package.unlink()
