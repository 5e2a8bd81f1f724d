"""The one builder of :class:`tritond.spec.ModelSpec`: from a (normalised) ModelConfig.

The parent calls it on every final config (and on the partial one it sends to
a first worker for auto-complete); that worker calls it on the config it
completed. Nothing else turns a model config into what processes read.
"""
from __future__ import annotations

from tritond import spec as s
from tritond.protos.model_config_pb2 import (BatchInput, DataType, ModelConfig,
                                             ModelInstanceGroup,
                                             ModelSequenceBatching)
from tritond.repository.modelconfig import to_json

_KINDS = {ModelInstanceGroup.KIND_CPU: "CPU", ModelInstanceGroup.KIND_GPU: "GPU",
          ModelInstanceGroup.KIND_MODEL: "MODEL", ModelInstanceGroup.KIND_AUTO: "CPU"}
_CONTROLS = {ModelSequenceBatching.Control.CONTROL_SEQUENCE_START: s.CONTROL_START,
             ModelSequenceBatching.Control.CONTROL_SEQUENCE_READY: s.CONTROL_READY,
             ModelSequenceBatching.Control.CONTROL_SEQUENCE_END: s.CONTROL_END,
             ModelSequenceBatching.Control.CONTROL_SEQUENCE_CORRID: s.CONTROL_CORRID}


def datatype(value: int) -> str:
    """Config DataType enum -> protocol datatype ("TYPE_STRING" -> "BYTES")."""
    name = DataType.Name(value)
    if name == "TYPE_STRING":
        return "BYTES"
    return name[len("TYPE_"):] if name != "TYPE_INVALID" else ""


def spec_from_config(cfg: ModelConfig, version: int = 0) -> s.ModelSpec:
    """The ModelSpec of ``cfg`` (with its JSON rendering, computed here once)."""
    return s.ModelSpec(
        name=cfg.name, version=version, platform=cfg.platform, backend=cfg.backend,
        max_batch_size=cfg.max_batch_size,
        inputs=tuple(_input(i) for i in cfg.input),
        outputs=tuple(_output(o) for o in cfg.output),
        dynamic_batching=_dynamic(cfg) if cfg.HasField("dynamic_batching") else None,
        sequence_batching=_sequence(cfg) if cfg.HasField("sequence_batching") else None,
        ensemble=cfg.HasField("ensemble_scheduling") or cfg.platform == "ensemble",
        decoupled=cfg.model_transaction_policy.decoupled,
        parameters={k: v.string_value for k, v in cfg.parameters.items()},
        instance_groups=tuple(_group(cfg, i, g) for i, g in enumerate(cfg.instance_group)),
        default_model_filename=cfg.default_model_filename,
        cc_model_filenames=dict(cfg.cc_model_filenames),
        graph_level=cfg.optimization.graph.level,
        config_json=to_json(cfg),
        steps=tuple(s.EnsembleStep(st.model_name, st.model_version, dict(st.input_map),
                                   dict(st.output_map))
                    for st in cfg.ensemble_scheduling.step),
        max_inflight_requests=cfg.ensemble_scheduling.max_inflight_requests,
        batch_inputs=tuple(_batch_input(b) for b in cfg.batch_input),
        batch_outputs=tuple(s.BatchOutput(tuple(b.target_name), _source(b))
                            for b in cfg.batch_output),
        runtime=cfg.runtime)


def _source(batch) -> str:
    # validation requires exactly one; a partial (auto-complete) config may lack it
    return batch.source_input[0] if batch.source_input else ""


def _batch_input(b) -> s.BatchInput:
    return s.BatchInput(BatchInput.Kind.Name(b.kind), tuple(b.target_name),
                        datatype(b.data_type), _source(b))


def _input(i) -> s.TensorSpec:
    return s.TensorSpec(
        i.name, datatype(i.data_type), tuple(i.dims), optional=i.optional,
        is_shape_tensor=i.is_shape_tensor, allow_ragged_batch=i.allow_ragged_batch,
        reshape=tuple(i.reshape.shape) if i.HasField("reshape") else None)


def _output(o) -> s.TensorSpec:
    return s.TensorSpec(
        o.name, datatype(o.data_type), tuple(o.dims), is_shape_tensor=o.is_shape_tensor,
        reshape=tuple(o.reshape.shape) if o.HasField("reshape") else None,
        label_filename=o.label_filename)


def _policy(p) -> s.QueuePolicy:
    return s.QueuePolicy(int(p.timeout_action), p.default_timeout_microseconds,
                         p.allow_timeout_override, p.max_queue_size)


def _dynamic(cfg: ModelConfig) -> s.DynamicBatching:
    d = cfg.dynamic_batching
    return s.DynamicBatching(
        preferred_batch_size=tuple(d.preferred_batch_size),
        max_queue_delay_us=d.max_queue_delay_microseconds,
        preserve_ordering=d.preserve_ordering,
        priority_levels=d.priority_levels,
        default_priority_level=d.default_priority_level,
        default_queue_policy=_policy(d.default_queue_policy)
        if d.HasField("default_queue_policy") else None,
        priority_queue_policy={int(k): _policy(v) for k, v in d.priority_queue_policy.items()})


def _sequence(cfg: ModelConfig) -> s.SequenceBatching:
    q = cfg.sequence_batching
    oldest = q.WhichOneof("strategy_choice") == "oldest"
    strategy = q.oldest if oldest else q.direct
    controls = tuple(
        s.SequenceControl(ci.name, _CONTROLS[c.kind], datatype(c.data_type) if c.data_type else "",
                          tuple(c.int32_false_true), tuple(c.fp32_false_true),
                          tuple(c.bool_false_true))
        for ci in q.control_input for c in ci.control)
    states = tuple(s.SequenceState(st.input_name, st.output_name, datatype(st.data_type),
                                   tuple(st.dims), *_initial(st),
                                   same_buffer=st.use_same_buffer_for_input_output)
                   for st in q.state)
    return s.SequenceBatching(
        strategy="oldest" if oldest else "direct",
        max_sequence_idle_us=q.max_sequence_idle_microseconds,
        max_queue_delay_us=strategy.max_queue_delay_microseconds,
        max_candidate_sequences=q.oldest.max_candidate_sequences if oldest else 0,
        preferred_batch_size=tuple(q.oldest.preferred_batch_size) if oldest else (),
        preserve_ordering=q.oldest.preserve_ordering if oldest else False,
        controls=controls, states=states, iterative=q.iterative_sequence,
        minimum_slot_utilization=0.0 if oldest else q.direct.minimum_slot_utilization)


def _initial(st) -> tuple:
    """(initial_dims, initial_file) of a state (validation checked there is at most one)."""
    if not st.initial_state:
        return None, ""
    init = st.initial_state[0]
    return tuple(init.dims), init.data_file if init.HasField("data_file") else ""


def _group(cfg: ModelConfig, index: int, g) -> s.InstanceGroup:
    return s.InstanceGroup(g.name or f"{cfg.name}_{index}", _KINDS.get(g.kind, "CPU"),
                           g.count or 1, tuple(g.gpus), g.passive)
