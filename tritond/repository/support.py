"""Triton features tritond does not implement yet, refused when a model loads.

A model whose config asks for one of them fails to load (UNAVAILABLE in the
repository index, with "<feature> is not supported by tritond yet") before any
worker is spawned: loading it READY and failing every request would hide the
cause. ``tritond check`` reports the same list. docs/compatibility.md is the
table a user reads; tests/tritond/repository/test_support.py keeps both true.
"""
from __future__ import annotations

from tritond.errors import unsupported
from tritond.repository import backends
from tritond.protos.model_config_pb2 import ModelConfig, ModelInstanceGroup

BACKENDS = backends.BUILT_IN
"""Backends tritond runs (workers/backend.py REGISTRY); Python-based ones besides."""


def unsupported_features(cfg: ModelConfig) -> list[str]:
    """The features of ``cfg`` that tritond does not implement, in config order."""
    found = []
    if cfg.platform == "ensemble" or cfg.HasField("ensemble_scheduling"):
        pass                     # run by the scheduler (scheduler/ensembles.py)
    elif cfg.backend and cfg.backend not in BACKENDS and not backends.python_based(cfg):
        platform = f" (platform '{cfg.platform}')" if cfg.platform else ""
        found.append(f"backend '{cfg.backend}'{platform}")
    if any(st.use_growable_memory and st.use_same_buffer_for_input_output
           for st in cfg.sequence_batching.state) and \
            all(g.kind == ModelInstanceGroup.KIND_GPU for g in cfg.instance_group):
        # Triton's rules refuse it elsewhere (validation.py); on GPU Triton grows a
        # CUDA virtual-memory reservation, which tritond does not have.
        found.append("sequence_batching state use_growable_memory (growable CUDA state buffers)")
    for field in ("batch_input", "batch_output"):
        if getattr(cfg, field) and "tensorrt" in (cfg.backend, cfg.platform.split("_")[0]):
            # made by the worker for ONNX Runtime and PyTorch (workers/batchio.py); the
            # TensorRT engine's bindings here know only the config inputs
            found.append(f"{field} for backend 'tensorrt'")
        elif getattr(cfg, field) and cfg.platform == "torch_aoti":
            # an AOTInductor package binds only the config inputs (workers/aoti.py)
            found.append(f"{field} for platform 'torch_aoti'")
    if cfg.platform == "torch_aoti" and any(g.kind == ModelInstanceGroup.KIND_GPU
                                            for g in cfg.instance_group):
        # On the one GPU host it was tried on (H200, torch 2.11+cu130) the worker died of
        # SIGSEGV inside aoti_load_package for a CUDA package: refused until understood
        # (KIND_AUTO keeps such a model on the CPU, normalization.py)
        found.append("platform 'torch_aoti' on KIND_GPU instances")
    if cfg.model_transaction_policy.decoupled and cfg.backend != "python" \
            and not backends.python_based(cfg) \
            and cfg.platform != "ensemble":    # an ensemble's flag is set from its steps
        # Triton's Python backend streams; other backends' decoupled modes do not exist here.
        found.append(f"decoupled (model_transaction_policy) for backend '{cfg.backend}'")
    if cfg.model_repository_agents.agents:
        found.append("model_repository_agents")
    return found


def message(name: str, feature: str) -> str:
    return f"model '{name}': {feature} is not supported by tritond yet"


def check(cfg: ModelConfig) -> None:
    """Raise UNSUPPORTED naming the first feature of ``cfg`` tritond lacks."""
    found = unsupported_features(cfg)
    if found:
        raise unsupported(message(cfg.name, found[0]))
