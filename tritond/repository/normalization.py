"""Config normalisation that always runs before validation."""
from __future__ import annotations

from tritond import gpus as gpu_host
from tritond.repository.autofill import ENSEMBLE
from tritond.errors import invalid_arg
from tritond.protos.model_config_pb2 import ModelConfig, ModelInstanceGroup

DEFAULT_SEQUENCE_IDLE_US = 1_000_000

# Refused on GPU instances (repository/support.py): KIND_AUTO keeps them on the CPU.
CPU_ONLY_PLATFORMS = ("torch_aoti",)

# Backends whose CPU instance groups default to two instances.
_CPU_COUNT_TWO = ("onnxruntime", "tensorflow")


def normalize(cfg: ModelConfig, *, gpus: int = 0) -> None:
    """Fill Triton's defaults in place; gpus is the number of usable GPUs."""
    if not cfg.HasField("version_policy"):
        cfg.version_policy.latest.num_versions = 1
    _batching_defaults(cfg)
    if cfg.platform == ENSEMBLE:
        return
    for field in ("input_pinned_memory", "output_pinned_memory"):
        # An explicit `enable: false` is kept; only an absent buffer defaults on.
        if not cfg.optimization.HasField(field):
            getattr(cfg.optimization, field).enable = True
    _instance_groups(cfg, gpus)


def _batching_defaults(cfg: ModelConfig) -> None:
    choice = cfg.WhichOneof("scheduling_choice")
    if choice == "dynamic_batching":
        batching = cfg.dynamic_batching
        if cfg.max_batch_size > 0 and not batching.preferred_batch_size:
            batching.preferred_batch_size.append(cfg.max_batch_size)
    elif choice == "sequence_batching":
        seq = cfg.sequence_batching
        if seq.max_sequence_idle_microseconds == 0:
            seq.max_sequence_idle_microseconds = DEFAULT_SEQUENCE_IDLE_US
        if seq.WhichOneof("strategy_choice") == "oldest" and cfg.max_batch_size > 0 \
                and not seq.oldest.preferred_batch_size:
            seq.oldest.preferred_batch_size.append(cfg.max_batch_size)


def _instance_groups(cfg: ModelConfig, gpus: int) -> None:
    if not cfg.instance_group:
        # The auto-created group is named after the model.
        cfg.instance_group.add(name=cfg.name)
    for index, group in enumerate(cfg.instance_group):
        if not group.name:
            group.name = f"{cfg.name}_{index}"
        _resolve_kind(cfg, group, gpus)
        if group.count == 0:
            cpu_two = (group.kind == ModelInstanceGroup.KIND_CPU
                       and cfg.backend in _CPU_COUNT_TWO)
            group.count = 2 if cpu_two else 1


def _resolve_kind(cfg: ModelConfig, group: ModelInstanceGroup, gpus: int) -> None:
    """AUTO -> CPU/GPU; GPU groups get every GPU when they list none. AUTO stays on the
    CPU where this install's onnxruntime or torch is a CPU build (see gpus.py)."""
    listed_missing = any(g < 0 or g >= gpus for g in group.gpus)
    if group.kind == ModelInstanceGroup.KIND_AUTO:
        if gpus == 0 or listed_missing or not gpu_host.backend_runs_on_gpu(cfg.backend) \
                or cfg.platform in CPU_ONLY_PLATFORMS:
            group.kind = ModelInstanceGroup.KIND_CPU
            del group.gpus[:]
        else:
            group.kind = ModelInstanceGroup.KIND_GPU
    if group.kind == ModelInstanceGroup.KIND_CPU and group.gpus:
        raise invalid_arg(f"instance group {group.name} of model {cfg.name} has kind "
                          f"KIND_CPU but specifies one or more GPUs")
    if group.kind != ModelInstanceGroup.KIND_GPU:
        return
    if gpus == 0 and not group.gpus:
        raise invalid_arg(
            f"instance group {group.name} of model {cfg.name} has kind KIND_GPU "
            f"but no GPUs are available")
    if listed_missing:
        bad = next(g for g in group.gpus if g < 0 or g >= gpus)
        raise invalid_arg(
            f"instance group {group.name} of model {cfg.name} specifies invalid "
            f"or unsupported gpu id {bad}. GPUs with at least the minimum required CUDA "
            f"compute compatibility of 6.000000 are: {', '.join(map(str, range(gpus)))}")
    if not group.gpus:
        group.gpus.extend(range(gpus))
