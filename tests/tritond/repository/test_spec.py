"""spec_from_config: the one ModelSpec builder, and the readers built from it."""
from __future__ import annotations

import json

from tritond import messages, spec as s
from tritond.parent.models import instance_plan
from tritond.scheduler.config import DELAY, SchedConfig
from tritond.workers.shapes import ModelIO

from tests.specs import spec

FULL = """
name: "m" backend: "python" max_batch_size: 8 default_model_filename: "x.py"
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2, 3 ] reshape { shape: [ 6 ] }
          allow_ragged_batch: true optional: true } ]
output [ { name: "OUT" data_type: TYPE_STRING dims: [ 3 ] label_filename: "l.txt" } ]
dynamic_batching { preferred_batch_size: [ 2, 4 ] max_queue_delay_microseconds: 300
  preserve_ordering: true priority_levels: 2 default_priority_level: 2
  default_queue_policy { max_queue_size: 5 }
  priority_queue_policy { key: 1 value { timeout_action: DELAY default_timeout_microseconds: 9
                                         allow_timeout_override: true } } }
model_transaction_policy { decoupled: true }
parameters { key: "k" value { string_value: "v" } }
instance_group [ { count: 3 kind: KIND_CPU } ]
optimization { graph { level: 1 } }
"""


def test_every_field_is_carried():
    got = spec(FULL, version=3)
    assert (got.name, got.version, got.backend, got.max_batch_size) == ("m", 3, "python", 8)
    assert got.inputs == (s.TensorSpec("IN", "FP32", (2, 3), optional=True,
                                       allow_ragged_batch=True, reshape=(6,)),)
    assert got.outputs == (s.TensorSpec("OUT", "BYTES", (3,), label_filename="l.txt"),)
    dyn = got.dynamic_batching
    assert (dyn.preferred_batch_size, dyn.max_queue_delay_us, dyn.preserve_ordering) == (
        (2, 4), 300, True)
    assert dyn.default_queue_policy == s.QueuePolicy(max_queue_size=5)
    assert dyn.priority_queue_policy == {1: s.QueuePolicy(s.TIMEOUT_DELAY, 9, True)}
    assert got.decoupled and got.parameters == {"k": "v"} and got.graph_level == 1
    assert got.instance_groups == (s.InstanceGroup("m_0", "CPU", 3),)   # named by normalize
    assert got.default_model_filename == "x.py" and got.sequence_batching is None
    assert json.loads(got.config_json)["max_batch_size"] == 8    # Triton's JSON, made once


def test_sequence_batching_controls():
    got = spec('name: "q" max_batch_size: 2 sequence_batching { oldest { max_candidate_sequences: 4 }'
               ' control_input [ { name: "S" control [ { kind: CONTROL_SEQUENCE_START '
               'int32_false_true: [ 0, 1 ] } ] } ] }')
    seq = got.sequence_batching
    assert (seq.strategy, seq.max_candidate_sequences, seq.preferred_batch_size) == ("oldest", 4, (2,))
    assert seq.max_sequence_idle_us == 1_000_000                  # normalised default
    assert seq.controls == (s.SequenceControl("S", s.CONTROL_START, "", (0, 1)),)


def test_the_spec_travels_in_a_model_entry():
    entry = messages.ModelEntry("m", 1, "READY", spec=spec(FULL))
    (table,) = messages.decoder(messages.TO_SCHEDULER).decode(
        messages.encode([messages.ModelTable([entry], True)]))
    assert table.models[0].spec == entry.spec


def test_readers_are_built_from_the_spec():
    got = spec(FULL)
    sched = SchedConfig(got)
    assert sched.batching and sched.preferred == {2, 4} and sched.delay_ns == 300_000
    assert sched.levels == 2 and sched.policies[0].timeout_action == DELAY
    assert sched.policies[1].max_queue_size == 5 and sched.ragged == {"IN"}
    io = ModelIO(got)
    assert io.backend_shape("IN", (4, 2, 3)) == (4, 6)
    assert instance_plan(got) == [("m_0_0", "CPU", 0), ("m_0_1", "CPU", 0), ("m_0_2", "CPU", 0)]
