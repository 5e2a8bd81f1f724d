"""The soak's model repository: the bundled models, the pipelines' ensemble and BLS model,
a decoupled model and a sequence model from the tests' generators, and a slow model for
cancellation (written into a temporary folder; symlinks to the checked-in models)."""
from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

SLOW_PY = '''
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        # long enough that a cancel sent at once often lands mid-execution
        time.sleep(0.003)
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]
'''


def _link_all(src: pathlib.Path, dst: pathlib.Path) -> None:
    for model in sorted(src.iterdir()):
        if (model / "config.pbtxt").exists() and not (dst / model.name).exists():
            (dst / model.name).symlink_to(model.resolve())


def _slow(dst: pathlib.Path) -> None:
    d = dst / "slow"
    (d / "1").mkdir(parents=True)
    (d / "1" / "model.py").write_text(SLOW_PY)
    (d / "config.pbtxt").write_text(
        'name: "slow"\nbackend: "python"\nmax_batch_size: 8\ndynamic_batching { }\n'
        'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'instance_group [ { kind: KIND_CPU count: 1 } ]\n')


def write(dst: pathlib.Path) -> pathlib.Path:
    """Fill ``dst`` (an empty folder) and return it."""
    sys.path.insert(0, str(ROOT))
    from tests.integration import decoupled_repo, seq_repo

    _link_all(ROOT / "bench" / "pipelines" / "models", dst)    # add_sub, bls, pipeline, ...
    _link_all(ROOT / "model_repository", dst)                  # identity_fp32, simple, ...
    decoupled_repo.decoupled_repo(dst, names={"square_int32"})
    seq_repo._model(dst, "seq_direct", f'''backend: "python"
max_batch_size: 4
sequence_batching {{
  max_sequence_idle_microseconds: 5000000
  direct {{ }}
  {seq_repo._controls("TYPE_UINT64")}
}}
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
{seq_repo.IO}''', seq_repo.ACCUMULATOR_PY)
    _slow(dst)
    return dst
