"""Model config validation (after normalisation).

Every failure is INVALID_ARG with Triton's text where Triton has the check (they name
the model and the offending field; Triton's QA greps them). ``validate_config`` is what
Triton checks when it reads a config, so the repository runs it before looking for
version directories or model files; ``validate`` adds the inputs and outputs once a
backend's auto-complete may have filled them.
"""
from __future__ import annotations

import os

from tritond.repository.autofill import ENSEMBLE
from tritond.repository.ensemble_graph import check_graph
from tritond.repository.iovalidation import validate_io
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
    """Raise INVALID_ARG if the (normalised, auto-completed) config is not servable."""
    validate_config(cfg, model_dir)
    validate_io(cfg)


def validate_config(cfg: ModelConfig, model_dir: str, states: bool = True) -> None:
    """Triton's ValidateModelConfig, in its order and with its texts, then tritond's own
    checks. Inputs and outputs are not looked at (a backend may still complete them).
    ``states``: also the sequence states' checks (``validate_states``), which Triton makes
    creating the model, not reading its config."""
    if not cfg.name:
        raise invalid_arg("model configuration must specify 'name'")
    _backend_platform(cfg)
    if cfg.max_batch_size < 0:
        raise invalid_arg(f"'max_batch_size' must be non-negative value for {cfg.name}")
    if not cfg.HasField("version_policy"):
        raise invalid_arg(f"must specify 'version policy' for {cfg.name}")
    _dynamic_batching(cfg)
    _sequence_batching(cfg)
    if states:
        validate_states(cfg)
    _ensemble(cfg)
    check_response_cache(cfg)
    _model_metrics(cfg)
    expected = os.path.basename(os.path.normpath(model_dir))
    if cfg.name != expected:
        raise invalid_arg(
            f"unexpected directory name '{expected}' for model '{cfg.name}', "
            f"directory name must equal model name")


def _model_metrics(cfg: ModelConfig) -> None:
    """Triton's ValidateModelMetrics (the buckets: frontend/firstresponse.py)."""
    for control in cfg.model_metrics.metric_control:
        if not control.HasField("metric_identifier"):
            raise invalid_arg("metric control must specify 'metric_identifier'")
        if not control.metric_identifier.family:
            raise invalid_arg("metric identifier must specify non-empty 'family'")
        if not control.HasField("histogram_options"):
            raise invalid_arg("metric control must specify 'histogram_options'")
        if not control.histogram_options.buckets:
            raise invalid_arg("histogram options must specify non-empty 'buckets'")


def _backend_platform(cfg: ModelConfig) -> None:
    if not cfg.backend and cfg.platform != ENSEMBLE:
        raise invalid_arg(f"unexpected platform type '{cfg.platform}' for {cfg.name}")
    if cfg.backend and cfg.platform == ENSEMBLE:
        raise invalid_arg(f"Ensemble model '{cfg.name}' must have platform type "
                          f"'{cfg.platform}' and empty backend type")
    allowed = BACKEND_PLATFORMS.get(cfg.backend)
    if allowed and cfg.platform and cfg.platform not in allowed:
        raise invalid_arg(f"unexpected 'platform' and 'backend' pair, got:{cfg.platform}, "
                          f"{cfg.backend}")


def _dynamic_batching(cfg: ModelConfig) -> None:
    if cfg.WhichOneof("scheduling_choice") != "dynamic_batching":
        return
    db = cfg.dynamic_batching
    for size in db.preferred_batch_size:
        if size <= 0:
            raise invalid_arg(f"dynamic batching preferred size must be positive for "
                              f"{cfg.name}")
        if size > cfg.max_batch_size:
            raise invalid_arg(f"dynamic batching preferred size must be <= max batch size "
                              f"for {cfg.name}")
    _priorities(cfg, db)
    if db.preserve_ordering:
        _preserve_ordering(cfg, db)


def _priorities(cfg: ModelConfig, db) -> None:
    levels = db.priority_levels
    if levels == 0:
        return
    if not 1 <= db.default_priority_level <= levels:
        raise invalid_arg(f"default priority level must be in range [1, {levels}] for "
                          f"{cfg.name}")
    for level in db.priority_queue_policy:
        if not 1 <= level <= levels:
            raise invalid_arg(f"priority queue policy must have priority level in "
                              f"range [1, {levels}] for {cfg.name}")


def _preserve_ordering(cfg: ModelConfig, db) -> None:
    if db.priority_levels > 1:
        raise invalid_arg(f"Only one priority level is allowed when 'preserve_ordering' is "
                          f"true for {cfg.name}")
    for policy in [db.default_queue_policy, *db.priority_queue_policy.values()]:
        if policy.timeout_action == ModelQueuePolicy.DELAY and \
                policy.default_timeout_microseconds != 0:
            raise invalid_arg(f"Queue policy can not have DELAY as timeout action when "
                              f"'preserve_ordering' is true for {cfg.name}")


def _sequence_batching(cfg: ModelConfig) -> None:
    if cfg.WhichOneof("scheduling_choice") != "sequence_batching":
        return
    if cfg.response_cache.enable:
        raise invalid_arg(f"Response Cache does not currently support model {cfg.name} with "
                          f"sequence batching scheduler. Please disable the response cache.")
    seq = cfg.sequence_batching
    for kind in (_Control.CONTROL_SEQUENCE_START, _Control.CONTROL_SEQUENCE_END,
                 _Control.CONTROL_SEQUENCE_READY, _Control.CONTROL_SEQUENCE_CORRID):
        _controls_of(cfg.name, seq, kind)
    strategy = seq.WhichOneof("strategy_choice")
    if strategy == "oldest":
        for size in seq.oldest.preferred_batch_size:
            if size <= 0:
                raise invalid_arg(f"sequence batching preferred batch size must be positive "
                                  f"for {cfg.name}")
            if size > cfg.max_batch_size:
                raise invalid_arg(f"sequence batching preferred batch size must be <= max "
                                  f"batch size for {cfg.name}")
    elif strategy == "direct" and not 0.0 <= seq.direct.minimum_slot_utilization <= 1.0:
        raise invalid_arg(f"sequence batching minimum slot utilization must be in range "
                          f"(0.0, 1.0] for {cfg.name}")


def validate_states(cfg: ModelConfig) -> None:
    """The implicit states' checks: Triton makes them creating the model (the sequence
    batcher's initial states) or starting a sequence (growable memory), so a failure is a
    load failure (the version UNAVAILABLE with the reason), never a poll failure."""
    if cfg.WhichOneof("scheduling_choice") != "sequence_batching":
        return
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


def _controls_of(model: str, seq, kind) -> None:
    """Triton's checks of the control inputs of one kind (Get{Boolean,Typed}Sequence-
    ControlProperties): named, one tensor per kind and one kind per tensor, and the
    values a boolean control needs (CORRID takes a data type instead)."""
    kind_name = _Control.Kind.Name(kind)
    seen_tensors: set[str] = set()
    seen = False
    for control_input in seq.control_input:
        if not control_input.name:
            raise invalid_arg(f"sequence batching control tensor must have a name for {model}")
        if control_input.name in seen_tensors:
            raise invalid_arg(f"sequence batching control tensor '{control_input.name}' is "
                              f"specified for multiple control kinds for {model}")
        seen_tensors.add(control_input.name)
        for control in control_input.control:
            if control.kind != kind:
                continue
            if seen:
                raise invalid_arg(f"sequence batching specifies multiple {kind_name} tensors "
                                  f"for {model}")
            seen = True
            if kind == _Control.CONTROL_SEQUENCE_CORRID:
                _corrid(model, control, kind_name)
            else:
                _boolean(model, control, kind_name)


_VALUE_LISTS = ("int32_false_true", "fp32_false_true", "bool_false_true")


def _boolean(model: str, control, kind_name: str) -> None:
    given = [name for name in _VALUE_LISTS if getattr(control, name)]
    if not given:
        raise invalid_arg(f"sequence batching must specify either 'int32_false_true', "
                          f"'fp32_false_true' or 'bool_false_true' for {kind_name} for {model}")
    if len(given) > 1:
        raise invalid_arg(f"sequence batching specifies more than one from "
                          f"'int32_false_true', 'fp32_false_true' and 'bool_false_true' for "
                          f"{kind_name} for {model}")
    if len(getattr(control, given[0])) != 2:
        raise invalid_arg(f"sequence batching control '{given[0]}' must have exactly 2 "
                          f"entries for {kind_name} for {model}")


def _corrid(model: str, control, kind_name: str) -> None:
    if any(getattr(control, name) for name in _VALUE_LISTS):
        raise invalid_arg(f"sequence batching must not specify either 'int32_false_true', "
                          f"'fp32_false_true' or 'bool_false_true' for {kind_name} for {model}")
    if control.data_type not in _CORRID_TYPES:
        raise invalid_arg(f"unexpected data type for control {kind_name} for {model}. Allowed "
                          f"data types are TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 "
                          f"and TYPE_STRING")


def check_response_cache(cfg: ModelConfig) -> None:
    """Triton refuses to cache a decoupled model's responses; an ensemble is checked again
    once its steps made it decoupled (parent/ensembles.py), as Triton's is."""
    if cfg.model_transaction_policy.decoupled and cfg.response_cache.enable:
        raise invalid_arg(f"Response Cache does not currently support model {cfg.name} with "
                          f"'decoupled' transaction policy. Please disable the response cache.")


def _ensemble(cfg: ModelConfig) -> None:
    """Triton's ValidateEnsembleSchedulingConfig."""
    if not cfg.HasField("ensemble_scheduling"):
        if cfg.platform == ENSEMBLE:
            raise invalid_arg(f"ensemble scheduling must be set for ensemble {cfg.name} "
                              f"whose platform is {ENSEMBLE}")
        return
    if cfg.platform != ENSEMBLE:
        raise invalid_arg(f"ensemble scheduling cannot be set for model '{cfg.name}' whose "
                          f"platform is not {ENSEMBLE}")
    if cfg.instance_group:
        raise invalid_arg(f"instance group should not be specified for ensemble "
                          f"'{cfg.name}'")
    if cfg.HasField("optimization"):
        raise invalid_arg(f"optimization should not be specified for ensemble '{cfg.name}'")
    if cfg.model_warmup:
        raise invalid_arg(f"model_warmup can not be specified for ensemble '{cfg.name}'")
    if not cfg.ensemble_scheduling.step:
        raise invalid_arg(f"must specify 'step' for ensemble '{cfg.name}'")
    check_graph(cfg)
