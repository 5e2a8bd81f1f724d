"""TorchScript test models, written at test time (torch.jit.script of tiny modules).

``python -m tests.torch_models <repository>`` writes them into a repository
(tests/gpu and bench/gpu.py use that on a GPU host); tests call the functions.
"""
from __future__ import annotations

import pathlib
import sys

ADD_SUB_CONFIG = '''name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: 8
dynamic_batching {{ max_queue_delay_microseconds: {delay} }}
input [ {{ name: "{in0}" data_type: TYPE_FP32 dims: [ 4 ] }},
        {{ name: "{in1}" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }},
         {{ name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ 4 ] }} ]
{extra}'''

IDENTITY_CONFIG = '''name: "{name}"
backend: "pytorch"
max_batch_size: 0
input [ {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
{extra}'''


def _modules():
    import torch

    class AddSub(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor):
            return x + y, x - y

    class Identity(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.clone()

    return torch, AddSub, Identity


def add_sub(repo: pathlib.Path, name: str = "torch_add_sub", *, in0: str = "INPUT__0",
            in1: str = "INPUT__1", delay: int = 0, extra: str = "") -> pathlib.Path:
    """forward(x, y) -> (x + y, x - y), batched (max_batch_size 8, dynamic batching)."""
    torch, AddSub, _ = _modules()
    return _write(repo, name, torch.jit.script(AddSub()),
                  ADD_SUB_CONFIG.format(name=name, in0=in0, in1=in1, delay=delay, extra=extra))


def identity(repo: pathlib.Path, name: str = "torch_identity", extra: str = "") -> pathlib.Path:
    """forward(x) -> x, not batched, any length (FP32)."""
    torch, _, Identity = _modules()
    return _write(repo, name, torch.jit.script(Identity()),
                  IDENTITY_CONFIG.format(name=name, extra=extra))


SEQUENCE_CONFIG = '''name: "{name}"
backend: "pytorch"
max_batch_size: 4
sequence_batching {{
  control_input [
    {{ name: "START__1" control [ {{ kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "CORRID__2" control [ {{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_INT64 }} ] }}
  ]
  state [ {{ input_name: "STATE_IN__3" output_name: "STATE_OUT__1" data_type: TYPE_INT64
             dims: [ 1 ] initial_state {{ name: "zero" data_type: TYPE_INT64 dims: [ 1 ]
                                          zero_data: true }} }} ]
}}
input [ {{ name: "INPUT__0" data_type: TYPE_INT64 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_INT64 dims: [ 1 ] }} ]
{extra}'''


def sequence(repo: pathlib.Path, name: str = "torch_sequence", extra: str = "") -> pathlib.Path:
    """Triton QA's implicit-state PyTorch model, made to add up: forward(x, start, corrid,
    state) -> (state' + corrid * 1000, state') with state' = x on START, else state + x;
    control inputs and state bind by their ``__<index>`` suffix, as Triton's backend does."""
    import torch

    class Sequence(torch.nn.Module):
        def forward(self, x: torch.Tensor, start: torch.Tensor, corrid: torch.Tensor,
                    state: torch.Tensor):
            new = torch.where(start > 0, x, state + x)
            return new + corrid * 1000, new

    return _write(repo, name, torch.jit.script(Sequence()),
                  SEQUENCE_CONFIG.format(name=name, extra=extra))


RAGGED_CONFIG = '''name: "{name}"
backend: "pytorch"
max_batch_size: 8
input [ {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }},
         {{ name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ -1 ] }} ]
batch_input [ {{ kind: BATCH_ACCUMULATED_ELEMENT_COUNT target_name: "INDEX__1"
                 data_type: TYPE_FP32 source_input: "INPUT__0" }} ]
batch_output [ {{ kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "OUTPUT__0"
                  source_input: "INPUT__0" }} ]
{extra}'''


def ragged(repo: pathlib.Path, name: str = "torch_ragged", extra: str = "") -> pathlib.Path:
    """Ragged batching: forward(x flat, index) -> (2 * x, scattered back per request by
    INPUT__0's shape; index, the accumulated element counts, once per request)."""
    import torch

    class Ragged(torch.nn.Module):
        def forward(self, x: torch.Tensor, index: torch.Tensor):
            return x * 2, index.unsqueeze(0).expand(index.shape[0], index.shape[0])

    return _write(repo, name, torch.jit.script(Ragged()),
                  RAGGED_CONFIG.format(name=name, extra=extra))


RAGGED_UNBATCHED_CONFIG = '''name: "{name}"
backend: "pytorch"
max_batch_size: 0
input [ {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1, -1 ] allow_ragged_batch: true }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
'''


def ragged_unbatched(repo: pathlib.Path, name: str = "torch_ragged0") -> pathlib.Path:
    """forward(x) -> x, max_batch_size 0 and a ragged input: the model sees it flat."""
    torch, _, Identity = _modules()
    return _write(repo, name, torch.jit.script(Identity()),
                  RAGGED_UNBATCHED_CONFIG.format(name=name))


def _write(repo: pathlib.Path, name: str, module, config: str) -> pathlib.Path:
    model_dir = pathlib.Path(repo) / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    module.save(str(model_dir / "1" / "model.pt"))
    (model_dir / "config.pbtxt").write_text(config)
    return model_dir


if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1])
    add_sub(root)
    identity(root)
