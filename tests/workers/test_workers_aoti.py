"""The ``platform: "torch_aoti"`` worker backend in process: which backend serves it, the
refusal of a torch too old for AOTInductor packages, and each load error of a config that
does not fit the session's package (tests/aoti_models.py). The values served and the
errors as a model's load failure: tests/integration/test_aoti.py."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from tests import aoti_models  # noqa: E402
from tritond.errors import Code, TritonError  # noqa: E402
from tritond.repository import spec_from_config  # noqa: E402
from tritond.repository.modelconfig import parse_pbtxt  # noqa: E402
from tritond.workers.backend import backend_class  # noqa: E402

from .helpers import context, work  # noqa: E402

# model -> (config variant, code, Triton's load error; tritond's own for "twice" and "text")
BROKEN = {
    "unknown": (dict(in1="b"), Code.INTERNAL,
                'Input "b" for model instance "unknown_0_0" is not found in model input map.'),
    "count": (dict(extra='input [ { name: "INPUT__2" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'),
              Code.INTERNAL, 'Failed to load model "count_0_0" configuration expects 3 inputs, '
                             "but model expects 2 inputs."),
    "result": (dict(out1="RESULT[product]"), Code.INTERNAL,
               'Output "RESULT[product]" for model instance "result_0_0" is not found in model '
               "output map."),
    "range": (dict(out1="OUTPUT__2"), Code.INTERNAL,
              'Output "OUTPUT__2" for model instance "range_0_0" is not found in model output '
              "map."),
    "sequence": (dict(extra="sequence_batching { }\n"), Code.INTERNAL,
                 "Sequence batching is not supported yet."),
    "bf16": (dict(t0="TYPE_BF16"), Code.INTERNAL,
             'Unsupported datatype TYPE_BF16 for input "INPUT__0" for model instance "bf16_0_0".'),
    "text": (dict(t_out="TYPE_STRING"), Code.UNSUPPORTED,
             "unable to load model 'text': output 'OUTPUT__0' has datatype BYTES, which the "
             "PyTorch backend of tritond does not support yet"),
    "twice": (dict(in1="ARGS[0]"), Code.INVALID_ARG,
              'inputs "INPUT__0" and "ARGS[0]" of model instance "twice_0_0" name the same '
              "model input 0 (ARGS[0])"),
}


def loaded(model_dir):
    from tritond.workers.aoti import AotiBackend

    backend = AotiBackend(context(model_dir))
    cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text(), "config.pbtxt")
    backend.load(spec_from_config(cfg, 1))
    return backend


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_load_errors(aoti_package, tmp_path, name):
    variant, code, message = BROKEN[name]
    with pytest.raises(TritonError) as err:
        loaded(aoti_models.add_model(tmp_path, aoti_package, name, **variant))
    assert (err.value.code, err.value.message) == (code, message)


def test_mixed_names_run_in_process(aoti_package, tmp_path):
    backend = loaded(aoti_models.add_model(tmp_path, aoti_package, "mixed", in0="KWARGS[b]",
                                           in1="INPUT__0", out0="RESULT[diff]"))
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    b = np.full((1, 4), 10, np.float32)
    [result] = backend.execute([work({"INPUT__0": a, "KWARGS[b]": b},
                                     ["RESULT[diff]", "OUTPUT__1"])])
    assert result.error is None
    np.testing.assert_array_equal(result.outputs["RESULT[diff]"], a - b)
    np.testing.assert_array_equal(result.outputs["OUTPUT__1"], a - b)


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


def test_a_file_that_is_no_package_fails_the_load(aoti_package, tmp_path):
    model_dir = aoti_models.add_model(tmp_path, aoti_package, "garbage")
    target = model_dir / "1" / "model.pt2"
    target.unlink()                       # a hard link: replace it, not the shared package
    target.write_bytes(b"not a zip archive")
    with pytest.raises(TritonError) as err:
        loaded(model_dir)
    assert err.value.code == Code.INTERNAL
    assert err.value.message.startswith(f"unable to load model 'garbage' from '{target}': ")
