"""PyTorchBackend against real TorchScript modules (generated here, CPU instances)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tritond.errors import Code, TritonError  # noqa: E402
from tritond.repository.modelconfig import parse_pbtxt  # noqa: E402
from tritond.repository import spec_from_config  # noqa: E402
from tritond.workers.backend import backend_class  # noqa: E402
from tritond.workers.pytorch import PyTorchBackend  # noqa: E402

from tests import torch_models  # noqa: E402

from .helpers import context, work  # noqa: E402


def loaded(model_dir, kind: str = "CPU"):
    backend = PyTorchBackend(context(model_dir, kind=kind))
    cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text(), "config.pbtxt")
    backend.load(spec_from_config(cfg, 1))
    return backend


def test_registry_imports_the_pytorch_backend():
    assert backend_class("pytorch") is PyTorchBackend


def test_index_named_inputs_and_outputs_batched(repo):
    backend = loaded(torch_models.add_sub(repo))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.ones((3, 4), np.float32)
    [result] = backend.execute([work({"INPUT__0": x, "INPUT__1": y}, ["OUTPUT__1", "OUTPUT__0"])])
    assert result.error is None
    np.testing.assert_array_equal(result.outputs["OUTPUT__0"], x + 1)
    np.testing.assert_array_equal(result.outputs["OUTPUT__1"], x - 1)
    assert result.outputs["OUTPUT__0"].dtype == np.float32


def test_inputs_bound_by_forward_argument_names(repo):
    # config lists y before x: binding by name, not by position
    backend = loaded(torch_models.add_sub(repo, in0="y", in1="x"))
    x, y = np.full((1, 4), 5, np.float32), np.full((1, 4), 2, np.float32)
    [result] = backend.execute([work({"x": x, "y": y}, ["OUTPUT__1"])])
    np.testing.assert_array_equal(result.outputs["OUTPUT__1"], x - y)


def test_parameters_are_read(repo):
    extra = ('parameters { key: "INFERENCE_MODE" value { string_value: "false" } }\n'
             'parameters { key: "DISABLE_OPTIMIZED_EXECUTION" value { string_value: "true" } }\n')
    backend = loaded(torch_models.identity(repo, extra=extra))
    assert backend._inference_mode is False
    [result] = backend.execute([work({"INPUT__0": np.arange(3, dtype=np.float32)}, ["OUTPUT__0"])])
    np.testing.assert_array_equal(result.outputs["OUTPUT__0"], [0, 1, 2])
    bad = torch_models.identity(repo, "bad", extra='parameters { key: "INFERENCE_MODE" '
                                                   'value { string_value: "perhaps" } }\n')
    with pytest.raises(TritonError, match="parameter 'INFERENCE_MODE' must be 'true' or 'false'"):
        loaded(bad)


def test_execute_error_is_data(repo):
    backend = loaded(torch_models.add_sub(repo))
    x, y = np.ones((2, 4), np.float32), np.ones((2, 3), np.float32)
    [result] = backend.execute([work({"INPUT__0": x, "INPUT__1": y}, ["OUTPUT__0"])])
    assert result.error.code == Code.INTERNAL
    assert result.error.message.startswith("PyTorch execute failure:")


def test_missing_model_file_and_wrong_input_count(repo):
    model = torch_models.identity(repo)
    (model / "1" / "model.pt").unlink()
    with pytest.raises(TritonError) as err:
        loaded(model)
    assert err.value.code == Code.NOT_FOUND
    assert "TorchScript model file" in err.value.message
    two = torch_models.add_sub(repo, "two")
    text = (two / "config.pbtxt").read_text()
    (two / "config.pbtxt").write_text(text.replace(
        ',\n        { name: "INPUT__1" data_type: TYPE_FP32 dims: [ 4 ] }', ""))
    with pytest.raises(TritonError, match="configuration expects 1 inputs, model provides 2"):
        loaded(two)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA torch build")
def test_gpu_instance_with_a_cpu_torch_build_fails_to_load(repo):
    with pytest.raises(TritonError) as err:
        loaded(torch_models.identity(repo), kind="GPU")
    assert "is KIND_GPU but this torch build has no CUDA" in err.value.message


def test_missing_torch_is_a_clear_load_error():
    # a fresh interpreter where `import torch` fails, as on a host without torch
    code = ("import sys; sys.modules['torch'] = None\n"
            "from tritond.workers.backend import backend_class\n"
            "from tritond.errors import TritonError\n"
            "try:\n    backend_class('pytorch')\nexcept TritonError as e:\n    print(e.message)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("backend 'pytorch' is not available: torch is not installed")
    assert "pip install 'tritond[torch]'" in out
