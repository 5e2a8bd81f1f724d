"""tritond.repository.modelconfig: pbtxt parsing, Triton's JSON rendering, dtype helpers."""
from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from tritond.repository import modelconfig as mc
from tritond.errors import Code, TritonError
from tritond.protos import model_config_pb2 as pb

# Copies of the anchor models' configs (shared/anchors/models/triton/*).
ANCHORS = {
    "add_sub": """
# add_sub: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1
name: "add_sub"
backend: "python"
max_batch_size: 0
input [
  { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] },
  { name: "INPUT1" data_type: TYPE_FP32 dims: [ 16 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] },
  { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 16 ] }
]
instance_group [ { kind: KIND_CPU count: 1 } ]
""",
    "identity": """
name: "identity"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
""",
    "mlp_batched": """
name: "mlp_batched"
backend: "python"
max_batch_size: 64
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 256 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 256 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
dynamic_batching { max_queue_delay_microseconds: 500 }
""",
    "mlp_unbatched": """
name: "mlp_unbatched"
backend: "python"
max_batch_size: 64
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 256 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 256 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
""",
}

# Exercises every section of ModelConfig except the scheduling oneof's
# other members (see SEQUENCE and ENSEMBLE below).
FULL = """
name: "full"
platform: "onnxruntime_onnx"
backend: "onnxruntime"
runtime: "libtriton_onnxruntime.so"
version_policy { specific { versions: [ 1, 3 ] } }
max_batch_size: 8
input [
  { name: "IMAGE" data_type: TYPE_UINT8 format: FORMAT_NHWC dims: [ 224, 224, 3 ]
    reshape { shape: [ 150528 ] } allow_ragged_batch: true optional: true },
  { name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] is_shape_tensor: false }
]
output [
  { name: "PROBS" data_type: TYPE_FP32 dims: [ 1000 ] label_filename: "labels.txt" },
  { name: "SCALAR" data_type: TYPE_BF16 dims: [ 1 ] reshape { shape: [ ] } }
]
batch_input [ { kind: BATCH_ACCUMULATED_ELEMENT_COUNT target_name: "ACC"
                data_type: TYPE_FP32 source_input: "TEXT" } ]
batch_output [ { target_name: "PROBS" kind: BATCH_SCATTER_WITH_INPUT_SHAPE
                 source_input: "TEXT" } ]
optimization {
  graph { level: 1 }
  priority: PRIORITY_MAX
  cuda { graphs: true busy_wait_events: true output_copy_stream: true
         graph_spec [ { batch_size: 4 input { key: "IMAGE" value { dim: [ 224, 224, 3 ] } }
                        graph_lower_bound { batch_size: 1
                          input { key: "IMAGE" value { dim: [ 1, 1, 3 ] } } } } ] }
  execution_accelerators {
    gpu_execution_accelerator [ { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } } ]
    cpu_execution_accelerator [ { name: "openvino" } ]
  }
  input_pinned_memory { enable: false }
  output_pinned_memory { enable: true }
  gather_kernel_buffer_threshold: 2
  eager_batching: true
}
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  preserve_ordering: false
  priority_levels: 2
  default_priority_level: 1
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 5000
                         allow_timeout_override: true max_queue_size: 16 }
  priority_queue_policy { key: 2 value { timeout_action: REJECT
                                         default_timeout_microseconds: 9000000000 } }
}
instance_group [
  { name: "gpu_group" kind: KIND_GPU count: 2 gpus: [ 0, 1 ]
    rate_limiter { resources [ { name: "R1" global: true count: 4 } ] priority: 2 }
    secondary_devices [ { kind: KIND_NVDLA device_id: 1 } ]
    profile: [ "0" ] passive: false host_policy: "policy_a" },
  { kind: KIND_CPU count: 1 }
]
default_model_filename: "model.onnx"
cc_model_filenames { key: "8.0" value: "model_a100.onnx" }
metric_tags { key: "team" value: "vision" }
parameters { key: "intra_op_thread_count" value { string_value: "1" } }
model_warmup [ { name: "w0" batch_size: 2 count: 3
  inputs { key: "IMAGE" value { data_type: TYPE_UINT8 dims: [ 224, 224, 3 ] random_data: true } }
  inputs { key: "TEXT" value { data_type: TYPE_STRING dims: [ 1 ] input_data_file: "text.bin" } } } ]
model_operations { op_library_filename: [ "libcustom.so" ] }
model_transaction_policy { decoupled: false }
model_repository_agents { agents [ { name: "checksum" parameters { key: "MD5:1/model.onnx" value: "abc" } } ] }
response_cache { enable: true }
model_metrics { metric_control [ { metric_identifier { family: "nv_inference_first_response_histogram_ms" }
                                   histogram_options { buckets: [ 1, 10, 100 ] } } ] }
"""

SEQUENCE = """
name: "seq"
backend: "python"
max_batch_size: 4
input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  iterative_sequence: false
  oldest { max_candidate_sequences: 4 preferred_batch_size: [ 2, 4 ]
           max_queue_delay_microseconds: 100 preserve_ordering: true }
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY bool_false_true: [ false, true ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "INPUT_STATE" output_name: "OUTPUT_STATE" data_type: TYPE_INT32
            dims: [ -1 ] use_same_buffer_for_input_output: true use_growable_memory: true
            initial_state [ { name: "zeros" data_type: TYPE_INT32 dims: [ 2 ] zero_data: true } ] } ]
}
"""

ENSEMBLE = """
name: "ens"
platform: "ensemble"
max_batch_size: 1
input [ { name: "RAW" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "SCORES" data_type: TYPE_FP32 dims: [ 10 ] } ]
ensemble_scheduling {
  max_inflight_requests: 8
  step [
    { model_name: "pre" model_version: -1
      input_map { key: "IN" value: "RAW" } output_map { key: "OUT" value: "tensor" } },
    { model_name: "cls" model_version: 2 model_namespace: ""
      input_map { key: "X" value: "tensor" } output_map { key: "Y" value: "SCORES" } }
  ]
}
"""


@pytest.mark.parametrize("name", sorted(ANCHORS))
def test_anchor_configs_parse(name):
    cfg = mc.parse_pbtxt(ANCHORS[name], f"{name}/config.pbtxt")
    assert cfg.name == name
    assert cfg.backend == "python"
    assert cfg.input[0].data_type == pb.TYPE_FP32
    assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    data = mc.to_json_dict(cfg)
    assert data["input"][0]["data_type"] == "TYPE_FP32"
    assert all(isinstance(d, int) for d in data["input"][0]["dims"])


def test_anchor_dynamic_batching_json():
    data = mc.to_json_dict(mc.parse_pbtxt(ANCHORS["mlp_batched"], "c"))
    assert data["dynamic_batching"]["max_queue_delay_microseconds"] == 500
    assert data["dynamic_batching"]["preferred_batch_size"] == []
    assert data["max_batch_size"] == 64


@pytest.mark.parametrize("text", [FULL, SEQUENCE, ENSEMBLE, *ANCHORS.values()])
def test_json_and_pbtxt_roundtrip(text):
    cfg = mc.parse_pbtxt(text, "config.pbtxt")
    assert mc.from_json(mc.to_json(cfg)) == cfg
    assert mc.from_dict(mc.to_json_dict(cfg)) == cfg
    assert mc.parse_pbtxt(mc.to_pbtxt(cfg), "again.pbtxt") == cfg


def test_json_prints_defaults_and_enum_names():
    data = json.loads(mc.to_json(mc.parse_pbtxt('name: "m"', "c")))
    assert data["max_batch_size"] == 0
    assert data["platform"] == "" and data["backend"] == "" and data["runtime"] == ""
    assert data["input"] == [] and data["output"] == [] and data["instance_group"] == []
    assert data["parameters"] == {} and data["metric_tags"] == {}
    assert "version_policy" not in data  # unset messages are not printed
    assert list(data)[:3] == ["name", "platform", "backend"]


def test_json_int64_fields_are_numbers():
    data = mc.to_json_dict(mc.parse_pbtxt(FULL, "c"))
    assert data["input"][0]["dims"] == [224, 224, 3]
    assert data["input"][0]["reshape"]["shape"] == [150528]
    assert data["input"][0]["format"] == "FORMAT_NHWC"
    assert data["output"][1]["reshape"]["shape"] == []
    assert data["version_policy"]["specific"]["versions"] == [1, 3]
    db = data["dynamic_batching"]
    assert (db["priority_levels"], db["default_priority_level"]) == (2, 1)
    assert db["max_queue_delay_microseconds"] == 100
    assert db["default_queue_policy"]["default_timeout_microseconds"] == 5000
    assert db["default_queue_policy"]["timeout_action"] == "DELAY"
    # Map keys stay strings (JSON), values are numbers.
    assert db["priority_queue_policy"]["2"]["default_timeout_microseconds"] == 9000000000
    assert data["model_warmup"][0]["inputs"]["IMAGE"]["dims"] == [224, 224, 3]
    group = data["instance_group"][0]
    assert group["kind"] == "KIND_GPU"
    # Fields Triton leaves as protobuf renders them: 64-bit as strings.
    assert group["secondary_devices"][0]["device_id"] == "1"
    spec = data["optimization"]["cuda"]["graph_spec"][0]
    assert spec["input"]["IMAGE"]["dim"] == ["224", "224", "3"]
    assert data["optimization"]["priority"] == "PRIORITY_MAX"


def test_json_sequence_and_ensemble_numbers():
    seq = mc.to_json_dict(mc.parse_pbtxt(SEQUENCE, "c"))["sequence_batching"]
    assert seq["max_sequence_idle_microseconds"] == 5000000
    assert seq["oldest"]["max_queue_delay_microseconds"] == 100
    assert seq["state"][0]["dims"] == [-1]
    assert seq["state"][0]["initial_state"][0]["dims"] == ["2"]  # Triton's quirk
    assert seq["control_input"][3]["control"][0]["data_type"] == "TYPE_UINT64"
    ens = mc.to_json_dict(mc.parse_pbtxt(ENSEMBLE, "c"))["ensemble_scheduling"]
    assert [s["model_version"] for s in ens["step"]] == [-1, 2]


def test_empty_config_renders_empty_string():
    assert mc.to_json(pb.ModelConfig()) == ""


def test_matches_protobuf_rendering_apart_from_int64():
    cfg = mc.parse_pbtxt(FULL, "c")
    plain = json_format.MessageToDict(cfg, preserving_proto_field_name=True,
                                      always_print_fields_with_no_presence=True)
    ours = mc.to_json_dict(cfg)
    assert set(plain) == set(ours)
    assert plain["optimization"] == ours["optimization"]
    assert plain["input"][0]["dims"] == ["224", "224", "3"]


def _error(fn, *args) -> TritonError:
    with pytest.raises(TritonError) as info:
        fn(*args)
    return info.value


def test_syntax_error_names_file_and_line():
    err = _error(mc.parse_pbtxt, 'name: "m"\nmax_batch_size: 4\ninput [ { name: "a" \n',
                 "/repo/m/config.pbtxt")
    assert err.code == Code.INVALID_ARG
    assert "/repo/m/config.pbtxt" in err.message and "line 3" in err.message
    assert 'Expected "}"' in err.message


def test_unknown_field_names_field():
    err = _error(mc.parse_pbtxt, 'name: "m"\nmax_batchsize: 4\n', "cfg.pbtxt")
    assert "line 2" in err.message and "max_batchsize" in err.message


def test_bad_enum_value():
    err = _error(mc.parse_pbtxt, 'input [ { data_type: TYPE_FLOAT } ]', "cfg.pbtxt")
    assert "TYPE_FLOAT" in err.message and "line 1" in err.message


def test_from_json_rejects_unknown_fields_and_garbage():
    err = _error(mc.from_json, '{"name": "m", "bogus": 1}')
    assert err.code == Code.INVALID_ARG and "bogus" in err.message
    assert _error(mc.from_json, "{not json").code == Code.INVALID_ARG
    assert _error(mc.from_json, "[1, 2]").code == Code.INVALID_ARG


def test_from_json_accepts_strings_numbers_and_any_enum_case():
    cfg = mc.from_json(json.dumps({
        "name": "m", "max_batch_size": 2,
        "input": [{"name": "I", "data_type": "type_fp16", "dims": ["-1", 3]}],
        "instance_group": [{"kind": "Kind_Cpu"}],
        "dynamic_batching": {"priority_queue_policy": {"1": {"timeout_action": "delay"}}},
    }))
    assert cfg.input[0].data_type == pb.TYPE_FP16
    assert list(cfg.input[0].dims) == [-1, 3]
    assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    assert cfg.dynamic_batching.priority_queue_policy[1].timeout_action == 1


def test_dtype_helpers():
    assert mc.protocol_dtype("TYPE_FP32") == "FP32"
    assert mc.protocol_dtype("TYPE_STRING") == "BYTES"
    assert mc.protocol_dtype("TYPE_BF16") == "BF16"
    assert mc.config_dtype("BYTES") == "TYPE_STRING"
    assert mc.config_dtype("UINT64") == "TYPE_UINT64"
    for name in pb.DataType.keys()[1:]:
        assert mc.config_dtype(mc.protocol_dtype(name)) == name
    assert _error(mc.protocol_dtype, "FP32").code == Code.INVALID_ARG
    assert _error(mc.config_dtype, "FLOAT").code == Code.INVALID_ARG
    assert _error(mc.config_dtype, "INVALID").code == Code.INVALID_ARG


def test_nested_objects_keep_declaration_order():
    """Triton's L0_config_json greps the JSON text: every object in proto field order."""
    cfg = mc.parse_pbtxt(
        'name: "m" dynamic_batching { priority_levels: 18446744073709551615 '
        'default_priority_level: 4294967295 priority_queue_policy [ { key: 4294967296 value { '
        'max_queue_size: 10 allow_timeout_override: true '
        'default_timeout_microseconds: 18446744073709551615 timeout_action: REJECT } } ] }',
        "c")
    text = mc.to_json(cfg)
    assert ('"4294967296":{"timeout_action":"REJECT","default_timeout_microseconds":'
            '18446744073709551615,"allow_timeout_override":true,"max_queue_size":10}') in text
    assert '"priority_levels":18446744073709551615' in text
    assert '"default_priority_level":4294967295' in text
    db = mc.to_json_dict(cfg)["dynamic_batching"]
    assert list(db) == [f.name for f in pb.ModelDynamicBatching.DESCRIPTOR.fields if f.name in db]


def test_json_whole_floats_print_as_integers():
    # Triton's protobuf JSON printer (C++) writes a float that is a whole number without a
    # fraction ("fp32_false_true":[0,1], checked on the 2.51 binary); Python's writes 0.0.
    cfg = mc.parse_pbtxt('''sequence_batching { control_input [ { name: "S" control [ {
        kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] },
        { name: "R" control [ { kind: CONTROL_SEQUENCE_READY fp32_false_true: [ -2, 0.5 ] } ] } ] }
        ''', "c")
    text = mc.to_json(cfg)
    assert '"fp32_false_true":[0,1]' in text and '"fp32_false_true":[-2,0.5]' in text
