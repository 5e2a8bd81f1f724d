"""Configs Triton refuses when it reads them (L0_model_config's noautofill cases): the
repository refuses them with Triton's text, before it looks for version directories or
model files (Triton's QA models have neither)."""
from __future__ import annotations

import pytest

from tritond import repository as repo_mod

IO = ('input [ { name: "input" data_type: TYPE_FP32 dims: [ %s ] %s } ] '
      'output [ { name: "output" data_type: TYPE_FP32 dims: [ 4 ] } ]')
SEQ = 'max_batch_size: 2 sequence_batching { control_input [ %s ] } ' + IO % ("4", "")
DYN = 'max_batch_size: 2 dynamic_batching { %s } ' + IO % ("4", "")
BATCH = ('max_batch_size: 2 input [ { name: "input" data_type: TYPE_FP32 dims: [ 4 ] } ] '
         'output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ 4 ] } ] ')


def ctl(name, body):
    return '{ name: "%s" control [ %s ] }' % (name, body)


START = "{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }"
END = "{ kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] }"

CASES = [
    ("max_batch_size: -1 " + IO % ("4", ""), "'max_batch_size' must be non-negative value for m"),
    ("max_batch_size: 2 " + IO % ("0", ""),
     "model input 'input' dimension must be integer >= 1, or -1 to indicate a variable-size "
     "dimension for m"),
    ('max_batch_size: 2 input [ { name: "input" dims: [ 4 ] } ]',
     "model input 'input' must specify 'data_type' for m"),
    ("max_batch_size: 0 " + IO % ("1", "reshape { shape: [ ] }"),
     "model input 'input' cannot have empty reshape for non-batching model as scalar tensors "
     "are not supported for m"),
    ("max_batch_size: 2 " + IO % ("4", "reshape { shape: [ 2, 0 ] }"),
     "model input 'input' reshape dimensions must be integer >= 1, or -1 to indicate a "
     "variable-size dimension for m"),
    ("max_batch_size: 2 " + IO % ("4", "reshape { shape: [ 3 ] }"),
     "model input 'input' has different size for dims and reshape for m"),
    ("max_batch_size: 2 " + IO % ("-1, 4", "reshape { shape: [ -1, 2 ] }"),
     "model input 'input' has different size for dims and reshape for m"),
    ("max_batch_size: 2 " + IO % ("-1, 4", "reshape { shape: [ -1, 2, -1 ] }"),
     "model input 'input' has different number of variable-size dimensions for dims and "
     "reshape for m"),
    (DYN % "priority_levels: 3", "default priority level must be in range [1, 3] for m"),
    (DYN % "priority_levels: 3 default_priority_level: 1 priority_queue_policy { key: 4 "
     "value {} }", "priority queue policy must have priority level in range [1, 3] for m"),
    (DYN % "preserve_ordering: true priority_levels: 2 default_priority_level: 1",
     "Only one priority level is allowed when 'preserve_ordering' is true for m"),
    (DYN % "preserve_ordering: true default_queue_policy { timeout_action: DELAY "
     "default_timeout_microseconds: 5 }",
     "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true "
     "for m"),
    (SEQ % f'{ctl("S0", START)}, {ctl("S1", START)}',
     "sequence batching specifies multiple CONTROL_SEQUENCE_START tensors for m"),
    (SEQ % f'{ctl("START", START)}, {ctl("START", END)}',
     "sequence batching control tensor 'START' is specified for multiple control kinds for m"),
    (SEQ % ctl("READY", "{ kind: CONTROL_SEQUENCE_READY }"),
     "sequence batching must specify either 'int32_false_true', 'fp32_false_true' or "
     "'bool_false_true' for CONTROL_SEQUENCE_READY for m"),
    ("max_batch_size: 2 ensemble_scheduling { step [ { model_name: \"x\" } ] } " + IO % ("4", ""),
     "ensemble scheduling cannot be set for model 'm' whose platform is not ensemble"),
    (BATCH + 'batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "B" '
     'data_type: TYPE_FP32 } ]',
     "batch input kind 'BATCH_ELEMENT_COUNT' expects 1 source input, got 0 for m"),
    (BATCH + 'batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "B" '
     'data_type: TYPE_FP32 source_input: "UNKNOWN_INPUT" } ]',
     "unknown source input name 'UNKNOWN_INPUT' for m"),
    (BATCH + 'batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE source_input: "input" '
     'target_name: [ "OUTPUT", "OUTPUT" ] } ]',
     "target output name 'OUTPUT' can only be specified once for m"),
    (BATCH + 'batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE source_input: "input" '
     'target_name: "UNKNOWN_OUTPUT" } ]', "unknown target output name 'UNKNOWN_OUTPUT' for m"),
]


@pytest.mark.parametrize("platform", ["onnxruntime_onnx", "pytorch_libtorch"])
@pytest.mark.parametrize("body,message", CASES)
def test_refused_with_tritons_text_before_versions(tmp_path, platform, body, message):
    model = tmp_path / "m"
    model.mkdir()     # no version directory, no model file: the config is refused first
    (model / "config.pbtxt").write_text(f'name: "m" platform: "{platform}" {body}')
    [source] = repo_mod.scan([str(tmp_path)], strict=True)
    assert source.error == message


def test_instance_groups_checked_after_the_rest(tmp_path):
    """Triton checks instance groups when it creates the model: a config also wrong
    elsewhere reports that first."""
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    groups = 'instance_group [ { kind: KIND_CPU gpus: [ 0 ] } ]'
    (model / "config.pbtxt").write_text(
        f'name: "m" platform: "onnxruntime_onnx" max_batch_size: -1 {groups}')
    assert repo_mod.scan([str(tmp_path)])[0].error == \
        "'max_batch_size' must be non-negative value for m"
    (model / "config.pbtxt").write_text(f'name: "m" platform: "onnxruntime_onnx" {groups}')
    assert repo_mod.scan([str(tmp_path)])[0].error == \
        "instance group m_0 of model m has kind KIND_CPU but specifies one or more GPUs"


def test_ensemble_platform_without_scheduling(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.pbtxt").write_text('name: "e" platform: "ensemble"')
    assert repo_mod.scan([str(tmp_path)])[0].error == \
        "ensemble scheduling must be set for ensemble e whose platform is ensemble"


def test_an_ensembles_graph_is_checked_when_its_config_is_read(tmp_path):
    """Before its composing models are looked for (Triton's poll), and before the name of
    its directory is compared."""
    (tmp_path / "e" / "1").mkdir(parents=True)
    (tmp_path / "e" / "config.pbtxt").write_text(
        'name: "e" platform: "ensemble" '
        'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }, '
        '        { name: "SPARE" data_type: TYPE_FP32 dims: [ 4 ] } ] '
        'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ] '
        'ensemble_scheduling { step [ { model_name: "absent" '
        'input_map { key: "X" value: "IN" } output_map { key: "Y" value: "OUT" } } ] }')
    assert repo_mod.scan([str(tmp_path)])[0].error == \
        "ensemble input 'SPARE' for ensemble e' is not used"
    (tmp_path / "d" / "1").mkdir(parents=True)
    (tmp_path / "d" / "config.pbtxt").write_text('name: "d_other" platform: "ensemble"')
    assert repo_mod.scan([str(tmp_path)])[0].error == \
        "ensemble scheduling must be set for ensemble d_other whose platform is ensemble"


METRICS = ('max_batch_size: 2 ' + IO % ("4", "") + ' model_metrics { metric_control [ { %s } ] }')
HIST = 'histogram_options { buckets: [ 1, 2 ] }'


@pytest.mark.parametrize("control,message", [
    (HIST, "metric control must specify 'metric_identifier'"),
    ('metric_identifier { } ' + HIST, "metric identifier must specify non-empty 'family'"),
    ('metric_identifier { family: "f" }', "metric control must specify 'histogram_options'"),
    ('metric_identifier { family: "f" } histogram_options { }',
     "histogram options must specify non-empty 'buckets'"),
])
def test_model_metrics_are_checked(tmp_path, control, message):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text(
        'name: "m" platform: "onnxruntime_onnx" ' + METRICS % control)
    assert repo_mod.scan([str(tmp_path)])[0].error == message


def test_a_misspelt_platform_is_not_replaced_by_the_files(tmp_path):
    """L0_model_config special_cases/invalid_platform: the file names the backend."""
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(b"")
    (tmp_path / "m" / "config.pbtxt").write_text(
        'name: "m" platform: "onnxruntim" default_model_filename: "model.onnx" ')
    assert repo_mod.scan([str(tmp_path)])[0].error == \
        "unexpected 'platform' and 'backend' pair, got:onnxruntim, onnxruntime"
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m" platform: "onnxruntim"')
    assert repo_mod.scan([str(tmp_path)])[0].error == "unexpected platform type 'onnxruntim' for m"
