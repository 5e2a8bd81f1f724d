"""``ModelSpec``: one model config as every process reads it (typed, msgspec).

The parent parses ``config.pbtxt`` into a protobuf ``ModelConfig``, normalises
and validates it, and builds one :class:`ModelSpec` from the result
(``tritond.repository.spec.spec_from_config``). The spec travels inside
``messages.ModelEntry`` and ``messages.Load``; no other process parses a model
config. Triton's JSON rendering of the config is carried as a string
(``config_json``) for the clients that ask for it (``/v2/models/<m>/config``,
a Python model's ``args["model_config"]``) and for the worker's auto-complete.

Values are already in the units and spellings the readers use: protocol
datatypes ("FP32", "BYTES"), instance kinds "CPU"/"GPU"/"MODEL", 64-bit
fields as ints.
"""
from __future__ import annotations

from typing import Optional

import msgspec

# ModelQueuePolicy.timeout_action
TIMEOUT_REJECT = 0
TIMEOUT_DELAY = 1

# ModelSequenceBatching.Control.kind, without the CONTROL_SEQUENCE_ prefix
CONTROL_START = "START"
CONTROL_READY = "READY"
CONTROL_END = "END"
CONTROL_CORRID = "CORRID"


class _Spec(msgspec.Struct, array_like=True, omit_defaults=True, frozen=True):
    pass


class TensorSpec(_Spec):
    """One config input or output."""

    name: str
    datatype: str                          # protocol datatype: "FP32", "BYTES", ...
    dims: tuple[int, ...] = ()
    optional: bool = False                 # inputs only
    is_shape_tensor: bool = False
    allow_ragged_batch: bool = False       # inputs only
    reshape: Optional[tuple[int, ...]] = None   # the shape the backend sees / produces
    label_filename: str = ""               # outputs only


class QueuePolicy(_Spec):
    """ModelQueuePolicy (one priority level's queue)."""

    timeout_action: int = TIMEOUT_REJECT
    default_timeout_us: int = 0
    allow_timeout_override: bool = False
    max_queue_size: int = 0


class DynamicBatching(_Spec):
    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    preserve_ordering: bool = False
    priority_levels: int = 0
    default_priority_level: int = 0
    default_queue_policy: Optional[QueuePolicy] = None
    priority_queue_policy: dict[int, QueuePolicy] = {}


class SequenceControl(_Spec):
    """One control of a sequence batcher's control input (kind: CONTROL_*)."""

    input: str
    kind: str
    datatype: str = ""
    int32_false_true: tuple[int, ...] = ()
    fp32_false_true: tuple[float, ...] = ()
    bool_false_true: tuple[bool, ...] = ()


class SequenceState(_Spec):
    input_name: str
    output_name: str
    datatype: str
    dims: tuple[int, ...] = ()
    # initial_state: zeros of ``initial_dims`` unless ``initial_file`` names a file
    # under <model_dir>/initial_state/; no initial_state: zeros, -1 dims as 1 (Triton).
    initial_dims: Optional[tuple[int, ...]] = None
    initial_file: str = ""
    # use_same_buffer_for_input_output: one buffer per slot, the output state is
    # written over the input state after the step (workers/sequence_state.py).
    same_buffer: bool = False


class SequenceBatching(_Spec):
    strategy: str = "direct"               # "direct" | "oldest"
    max_sequence_idle_us: int = 0
    max_queue_delay_us: int = 0
    max_candidate_sequences: int = 0       # oldest
    preferred_batch_size: tuple[int, ...] = ()   # oldest
    preserve_ordering: bool = False        # oldest
    controls: tuple[SequenceControl, ...] = ()
    states: tuple[SequenceState, ...] = ()
    iterative: bool = False                # iterative_sequence (scheduler/iterative.py)
    minimum_slot_utilization: float = 0.0  # direct (with max_queue_delay_us)


class InstanceGroup(_Spec):
    name: str
    kind: str = "CPU"                      # "CPU" | "GPU" | "MODEL"
    count: int = 1
    gpus: tuple[int, ...] = ()
    passive: bool = False                  # loaded, never scheduled (Triton's passive)


class EnsembleStep(_Spec):
    """One step of ``ensemble_scheduling``: composing model input/output name -> ensemble tensor."""

    model_name: str
    model_version: int = -1                # -1: the latest ready version
    input_map: dict[str, str] = {}
    output_map: dict[str, str] = {}


class BatchInput(_Spec):
    """One config ``batch_input``: a tensor the worker makes from the formed batch
    (workers/batchio.py). ``kind`` is the BatchInput.Kind name."""

    kind: str
    targets: tuple[str, ...]
    datatype: str                          # "INT32" | "FP32"
    source: str


class BatchOutput(_Spec):
    """One config ``batch_output`` (BATCH_SCATTER_WITH_INPUT_SHAPE): output ``targets``
    are split per request by the shape of input ``source``, not by batch rows."""

    targets: tuple[str, ...]
    source: str


class ModelSpec(_Spec):
    """Everything the frontend, the scheduler and the workers read of a model config."""

    name: str
    version: int = 0                       # the version this spec was built for (0: any)
    platform: str = ""
    backend: str = ""
    max_batch_size: int = 0
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    dynamic_batching: Optional[DynamicBatching] = None
    sequence_batching: Optional[SequenceBatching] = None
    ensemble: bool = False
    decoupled: bool = False
    parameters: dict[str, str] = {}        # config parameters: key -> string_value
    instance_groups: tuple[InstanceGroup, ...] = ()
    default_model_filename: str = ""
    cc_model_filenames: dict[str, str] = {}
    graph_level: int = 0                   # optimization.graph.level
    config_json: str = ""                  # Triton's JSON rendering, computed once
    steps: tuple[EnsembleStep, ...] = ()   # ensemble_scheduling (scheduler/ensemble.py)
    max_inflight_requests: int = 0         # ensemble_scheduling's per-step limit (0: none)
    batch_inputs: tuple[BatchInput, ...] = ()
    batch_outputs: tuple[BatchOutput, ...] = ()
    runtime: str = ""                      # "model.py": a Python-based backend's (backends.py)

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 0
