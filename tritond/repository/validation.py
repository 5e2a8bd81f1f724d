"""Model config validation after auto-complete and normalisation.

Every failure is INVALID_ARG with a message that names the model and the
offending field.
"""
from __future__ import annotations

import os

from tritond.repository.autofill import ENSEMBLE
from tritond.repository.ensemble_graph import check_graph
from tritond.errors import invalid_arg
from tritond.protos.model_config_pb2 import (
    DataType, ModelConfig, ModelInstanceGroup, ModelQueuePolicy, ModelSequenceBatching)

# Known backends and the platforms each accepts; other backends accept any.
BACKEND_PLATFORMS = {
    "onnxruntime": ("onnxruntime_onnx",),
    "tensorrt": ("tensorrt_plan",),
    "pytorch": ("pytorch_libtorch", "libtorch", "torch_aoti"),
    "tensorflow": ("tensorflow_graphdef", "tensorflow_savedmodel"),
}

_CORRID_TYPES = (DataType.TYPE_UINT64, DataType.TYPE_INT64,
                 DataType.TYPE_UINT32, DataType.TYPE_INT32, DataType.TYPE_STRING)
_Control = ModelSequenceBatching.Control


def validate(cfg: ModelConfig, model_dir: str) -> None:
    """Raise INVALID_ARG if the (normalised) config is not servable."""
    expected = os.path.basename(os.path.normpath(model_dir))
    if not cfg.name:
        raise invalid_arg(f"model configuration in '{model_dir}' must specify 'name'")
    if cfg.name != expected:
        raise invalid_arg(
            f"unexpected directory name '{expected}' for model '{cfg.name}', "
            f"directory name must equal model name")
    _backend_platform(cfg)
    if cfg.max_batch_size < 0:
        raise invalid_arg(f"max_batch_size must be >= 0 for {cfg.name}, "
                          f"got {cfg.max_batch_size}")
    if not cfg.HasField("version_policy"):
        raise invalid_arg(f"must specify 'version_policy' for {cfg.name}")
    _dynamic_batching(cfg)
    _response_cache(cfg)
    _sequence_batching(cfg)
    _ensemble(cfg)
    validate_io(cfg)


def _response_cache(cfg: ModelConfig) -> None:
    """Models whose responses cannot be cached (Triton's texts)."""
    if not cfg.response_cache.enable:
        return
    if cfg.HasField("sequence_batching"):
        raise invalid_arg(f"Response Cache does not currently support model {cfg.name} with "
                          f"sequence batching scheduler. Please disable the response cache.")
    if cfg.model_transaction_policy.decoupled:
        raise invalid_arg(f"Response Cache does not currently support model {cfg.name} with "
                          f"'decoupled' transaction policy. Please disable the response cache.")


def validate_io(cfg: ModelConfig) -> None:
    """Check every input and output: name, data_type, dims, reshape, uniqueness."""
    for kind, tensors in (("input", cfg.input), ("output", cfg.output)):
        seen: set[str] = set()
        for tensor in tensors:
            _tensor(cfg.name, kind, tensor)
            if tensor.name in seen:
                raise invalid_arg(
                    f"model {kind} '{tensor.name}' is specified more than once "
                    f"in the configuration of {cfg.name}")
            seen.add(tensor.name)


def _backend_platform(cfg: ModelConfig) -> None:
    if cfg.platform == ENSEMBLE:
        if cfg.backend:
            raise invalid_arg(f"ensemble model '{cfg.name}' must not specify a "
                              f"backend, got '{cfg.backend}'")
        return
    if not cfg.backend:
        raise invalid_arg(f"unexpected platform type '{cfg.platform}' for {cfg.name}: "
                          f"'backend' must be set unless platform is 'ensemble'")
    allowed = BACKEND_PLATFORMS.get(cfg.backend)
    if allowed and cfg.platform and cfg.platform not in allowed:
        raise invalid_arg(
            f"unexpected platform type '{cfg.platform}' for backend '{cfg.backend}' "
            f"of {cfg.name}, expected {' or '.join(allowed)}")


def _tensor(model: str, kind: str, tensor) -> None:
    if not tensor.name:
        raise invalid_arg(f"model {kind} of {model} must specify 'name'")
    where = f"model {kind} '{tensor.name}' of {model}"
    if tensor.data_type == DataType.TYPE_INVALID:
        raise invalid_arg(f"{where} must specify a valid 'data_type'")
    if not tensor.dims:
        raise invalid_arg(f"{where} must specify 'dims' with at least one dimension "
                          f"(use reshape: {{ shape: [ ] }} for a scalar)")
    _check_dims(where, "dims", tensor.dims)
    if tensor.HasField("reshape"):
        _check_dims(where, "reshape", tensor.reshape.shape)
        _check_reshape(where, list(tensor.dims), list(tensor.reshape.shape))


def _check_dims(where: str, field: str, dims) -> None:
    for dim in dims:
        if dim < 1 and dim != -1:
            raise invalid_arg(
                f"{where} has {field} {list(dims)}: each dimension must be an integer "
                f">= 1, or -1 to indicate a variable-size dimension")


def _check_reshape(where: str, dims: list[int], shape: list[int]) -> None:
    """Same number of -1s, and equal element counts between consecutive -1s."""
    if dims.count(-1) != shape.count(-1):
        raise invalid_arg(f"{where} has dims {dims} and reshape {shape}: a variable-size "
                          f"dimension (-1) must appear in both as often")
    if _segments(dims) != _segments(shape):
        raise invalid_arg(f"{where} has different element counts for dims {dims} "
                          f"and reshape {shape}")


def _segments(dims: list[int]) -> list[int]:
    """Products of the fixed dimensions between variable-size (-1) dimensions."""
    products, current = [], 1
    for dim in dims:
        if dim == -1:
            products.append(current)
            current = 1
        else:
            current *= dim
    return [*products, current]


def _dynamic_batching(cfg: ModelConfig) -> None:
    if cfg.WhichOneof("scheduling_choice") != "dynamic_batching":
        return
    db = cfg.dynamic_batching
    for size in db.preferred_batch_size:
        if size <= 0:
            raise invalid_arg(f"dynamic batching preferred size must be positive "
                              f"for {cfg.name}, got {size}")
        if size > cfg.max_batch_size:
            raise invalid_arg(
                f"dynamic batching preferred size must be <= max batch size for "
                f"{cfg.name}, got preferred_batch_size {size} > max_batch_size "
                f"{cfg.max_batch_size}")
    _priorities(cfg, db)
    if db.preserve_ordering:
        _preserve_ordering(cfg, db)


def _priorities(cfg: ModelConfig, db) -> None:
    levels = db.priority_levels
    if levels == 0:
        return
    if not 1 <= db.default_priority_level <= levels:
        raise invalid_arg(f"default priority level must be in range [1, {levels}] for "
                          f"{cfg.name}, got {db.default_priority_level}")
    for level in db.priority_queue_policy:
        if not 1 <= level <= levels:
            raise invalid_arg(f"priority queue policy must have priority level in "
                              f"range [1, {levels}] for {cfg.name}, got {level}")


def _preserve_ordering(cfg: ModelConfig, db) -> None:
    if db.priority_levels > 1:
        raise invalid_arg(f"dynamic batching preserve_ordering of {cfg.name} cannot be "
                          f"combined with priority_levels > 1")
    policies = [db.default_queue_policy, *db.priority_queue_policy.values()]
    for policy in policies:
        if policy.timeout_action == ModelQueuePolicy.DELAY and \
                policy.default_timeout_microseconds != 0:
            raise invalid_arg(f"dynamic batching preserve_ordering of {cfg.name} cannot "
                              f"be combined with a queue policy that DELAYs timed-out "
                              f"requests")


def _sequence_batching(cfg: ModelConfig) -> None:
    if cfg.WhichOneof("scheduling_choice") != "sequence_batching":
        return
    if cfg.response_cache.enable:
        raise invalid_arg(f"response cache is not supported for sequence batching "
                          f"model {cfg.name}")
    for control_input in cfg.sequence_batching.control_input:
        for control in control_input.control:
            _control(cfg.name, control_input.name, control)
    for state in cfg.sequence_batching.state:
        _initial_state(state)
        if state.use_growable_memory:
            _growable(cfg, state)


def _growable(cfg: ModelConfig, state) -> None:
    """Triton's checks of use_growable_memory (SequenceStates::Initialize, where Triton
    makes them when a sequence starts; here the model fails to load instead)."""
    name = state.input_name
    if not state.use_same_buffer_for_input_output:
        raise invalid_arg("In order to 'use_growable_memory', you must also enable "
                          f"'use_single_buffer' for state input name '{name}'.")
    if any(g.kind != ModelInstanceGroup.KIND_GPU for g in cfg.instance_group):
        raise invalid_arg("'use_growable_memory' can only work with KIND_GPU model instances "
                          "right now. Please either change the instance type to KIND_GPU or "
                          f"set 'use_growable_memory' to false for state input '{name}'.")


def _initial_state(state) -> None:
    """Triton's checks of a state's initial_state (GenerateInitialStateData)."""
    name = state.input_name
    if len(state.initial_state) > 1:
        raise invalid_arg(f"initial_state field for state input '{name}' must contain exactly "
                          f"one or zero element. Found '{len(state.initial_state)}' elements.")
    if not state.initial_state:
        return
    init = state.initial_state[0]
    if init.data_type != state.data_type:
        raise invalid_arg(f"The data type used for 'initial_state' field of state '{name}' does "
                          "not match the state data type.")
    if not init.name:
        raise invalid_arg(f"Field 'name' must be set when using initial_state for state input "
                          f"'{name}'.")
    if len(init.dims) != len(state.dims):
        raise invalid_arg(f"Number of dimensions in 'initial_state' doesn't match the size of "
                          f"'state' dimensions for state input '{name}'. {len(init.dims)} != "
                          f"{len(state.dims)}")
    for got, want in zip(init.dims, state.dims):
        if got == -1:
            raise invalid_arg(f"'initial_state' field for state input name '{name}' contains "
                              "variable dimensions.")
        if want != -1 and got != want:
            raise invalid_arg(f"'initial_state' dim for input name '{name}' doesn't match "
                              f"'state' dim description. {got} != {want}")
    if init.WhichOneof("state_data") is None:
        raise invalid_arg(f"initial_state setting expects state'{name}' to have state_data set")


def _control(model: str, input_name: str, control) -> None:
    where = (f"sequence batching control {_Control.Kind.Name(control.kind)} "
             f"for input '{input_name}' of {model}")
    if control.kind == _Control.CONTROL_SEQUENCE_CORRID:
        if control.data_type not in _CORRID_TYPES:
            raise invalid_arg(f"{where} must specify data_type TYPE_UINT64, TYPE_INT64, "
                              f"TYPE_UINT32, TYPE_INT32 or TYPE_STRING")
        return
    lists = [lst for lst in (control.int32_false_true, control.fp32_false_true,
                             control.bool_false_true) if lst]
    if len(lists) != 1 or len(lists[0]) != 2:
        raise invalid_arg(f"{where} must specify exactly one of int32_false_true, "
                          f"fp32_false_true or bool_false_true, with 2 entries")


def _ensemble(cfg: ModelConfig) -> None:
    if cfg.platform != ENSEMBLE:
        return
    if cfg.instance_group:
        raise invalid_arg(f"instance group should not be specified for ensemble "
                          f"'{cfg.name}'")
    if cfg.model_warmup:
        raise invalid_arg(f"model_warmup can not be specified for ensemble '{cfg.name}'")
    if cfg.WhichOneof("scheduling_choice") != "ensemble_scheduling" or \
            not cfg.ensemble_scheduling.step:
        raise invalid_arg(f"ensemble '{cfg.name}' must specify ensemble_scheduling "
                          f"with at least one step")
    check_graph(cfg)
