"""tritond.repository: scanning, auto-fill, version policy, normalise, validate, labels."""
from __future__ import annotations

import os

import pytest

from tritond import repository as repo_mod
from tritond.errors import Code, TritonError
from tritond.repository.modelconfig import parse_pbtxt
from tritond.protos import model_config_pb2 as pb
from tritond.repository.versions import list_versions, select_versions

KIND = pb.ModelInstanceGroup

PY_CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] }} ]
"""


def make_model(repo, name, config=None, versions=(1,), files=("model.py",)):
    """Create <repo>/<name>/{config.pbtxt, <v>/<file>...}; return the model dir."""
    model_dir = repo / name
    model_dir.mkdir(parents=True)
    if config is not None:
        (model_dir / "config.pbtxt").write_text(config)
    for version in versions:
        (model_dir / str(version)).mkdir()
        for filename in files:
            (model_dir / str(version) / filename).write_text("")
    return model_dir


def one(sources, name):
    [source] = [s for s in sources if s.name == name]
    return source


def test_scan_python_model(tmp_path):
    make_model(tmp_path, "add_sub", PY_CONFIG.format(name="add_sub"))
    [source] = repo_mod.scan([str(tmp_path)])
    assert source.error is None
    assert (source.name, source.repository) == ("add_sub", str(tmp_path))
    assert source.model_dir == str(tmp_path / "add_sub")
    assert source.versions == [1]
    assert source.config.default_model_filename == "model.py"
    assert source.config.platform == ""


def test_only_directories_and_numeric_versions(tmp_path):
    model = make_model(tmp_path, "m", PY_CONFIG.format(name="m"), versions=(1, 2, 10))
    (tmp_path / "README.md").write_text("not a model")
    for ignored in ("0", "007", "v3", "1a", "３"):     # "0" is version 0, as in Triton
        (model / ignored).mkdir()
        (model / ignored / "model.py").write_text("")
    (model / "11").write_text("a file, not a version dir")
    assert list_versions(str(model)) == [0, 1, 2, 10]
    sources = repo_mod.scan([str(tmp_path)])
    assert [s.name for s in sources] == ["m"]
    assert sources[0].versions == [10] and sources[0].available == [0, 1, 2, 10]


def test_missing_config_allowed_unless_strict(tmp_path):
    make_model(tmp_path, "auto", None, files=("model.onnx",))
    source = repo_mod.scan([str(tmp_path)])[0]
    assert source.error is None
    cfg = source.config
    assert (cfg.name, cfg.backend, cfg.platform, cfg.default_model_filename) == \
        ("auto", "onnxruntime", "onnxruntime_onnx", "model.onnx")
    strict = repo_mod.scan([str(tmp_path)], strict=True)[0]
    assert "config.pbtxt" in strict.error and "not found" in strict.error


@pytest.mark.parametrize("filename,backend,platform", [
    ("model.onnx", "onnxruntime", "onnxruntime_onnx"),
    ("model.py", "python", ""),
    ("model.pt", "pytorch", "pytorch_libtorch"),
    ("model.plan", "tensorrt", "tensorrt_plan"),
])
def test_autofill_from_files(tmp_path, filename, backend, platform):
    make_model(tmp_path, "m", 'max_batch_size: 2', files=(filename,))
    cfg = repo_mod.scan([str(tmp_path)])[0].config
    # Triton leaves a TorchScript model's file name unset (L0_model_config no_name_platform)
    served_filename = "" if backend == "pytorch" else filename
    assert (cfg.backend, cfg.platform, cfg.default_model_filename) == \
        (backend, platform, served_filename)


def test_autofill_from_backend_or_platform(tmp_path):
    make_model(tmp_path, "a", 'backend: "onnxruntime"', files=("model.onnx",))
    make_model(tmp_path, "b", 'platform: "pytorch_libtorch"', files=("model.pt",))
    make_model(tmp_path, "c", 'backend: "tensorrt" default_model_filename: "x.plan"',
               files=("x.plan",))
    sources = repo_mod.scan([str(tmp_path)])
    assert one(sources, "a").config.platform == "onnxruntime_onnx"
    assert one(sources, "b").config.backend == "pytorch"
    assert one(sources, "b").config.default_model_filename == ""     # as Triton
    assert one(sources, "c").config.platform == "tensorrt_plan"
    assert one(sources, "c").config.default_model_filename == "x.plan"
    assert all(s.error is None for s in sources)


def test_undetectable_backend(tmp_path):
    make_model(tmp_path, "m", "max_batch_size: 0", files=("weights.bin",))
    assert repo_mod.scan([str(tmp_path)])[0].error == (
        "Invalid model name: Could not determine backend for model 'm' with no backend in "
        "model configuration. Expected model name of the form 'model.<backend_name>'.")
    make_model(tmp_path, "p", 'backend: "pytorch"', files=("model.pt",))
    assert one(repo_mod.scan([str(tmp_path)]), "p").config.default_model_filename == "model.pt"


def test_custom_backend_from_the_name_after_its_first_dot(tmp_path):
    """Triton core's AutoCompleteBackendFields (model_config_utils.cc): the backend is the
    text after the FIRST dot of the model's name, and no model file is checked for it.
    Checked against Triton 2.51 (Python-based backends of those names, empty version
    directories): "m.identity.v2" serves backend "identity.v2", default_model_filename
    "model.identity.v2"; "y.x" backend "x"; "z." fails to poll with "unexpected platform
    type '' for z."."""
    make_model(tmp_path, "m.identity.v2", files=())
    make_model(tmp_path, "y.x", files=())
    make_model(tmp_path, "z.", files=())
    sources = repo_mod.scan([str(tmp_path)])
    m, y, z = (one(sources, name) for name in ("m.identity.v2", "y.x", "z."))
    assert (m.config.backend, m.config.default_model_filename, m.error) == \
        ("identity.v2", "model.identity.v2", None)
    assert (y.config.backend, y.config.default_model_filename, y.error) == \
        ("x", "model.x", None)
    assert m.versions == y.versions == [1]
    assert z.error == "unexpected platform type '' for z."


def test_no_file_name_is_filled_for_dali(tmp_path):
    """Triton fills default_model_filename only for the backends it knows the file of
    (TensorFlow, TensorRT, ONNX Runtime, OpenVINO, PyTorch, Python); checked against
    Triton 2.51: backend "dali" (a Python-based one of that name) serves "" and loads
    with an empty version directory."""
    make_model(tmp_path, "d", 'backend: "dali"', files=())
    [source] = repo_mod.scan([str(tmp_path)])
    assert (source.config.default_model_filename, source.error) == ("", None)


def test_auto_complete_inspects_the_first_subdirectory_by_name(tmp_path):
    """Triton inspects ``*version_dirs.begin()`` of a std::set<std::string>: "10" comes
    before "9" (checked against Triton 2.51: model.py only in 10/ serves backend python,
    version 10)."""
    make_model(tmp_path, "q", versions=(9, 10), files=())
    (tmp_path / "q" / "10" / "model.py").write_text("")
    [source] = repo_mod.scan([str(tmp_path)])
    assert (source.config.backend, source.error, source.versions) == ("python", None, [10])


def test_name_mismatch(tmp_path):
    make_model(tmp_path, "dir_name", PY_CONFIG.format(name="other"))
    source = repo_mod.scan([str(tmp_path)])[0]
    assert source.error == ("unexpected directory name 'dir_name' for model 'other', "
                            "directory name must equal model name")
    assert source.versions == []


def test_missing_model_file_names_path(tmp_path):
    config = 'backend: "onnxruntime" version_policy { all {} }'
    model = make_model(tmp_path, "m", config, versions=(1, 2), files=("model.onnx",))
    os.remove(model / "2" / "model.onnx")
    error = repo_mod.scan([str(tmp_path)])[0].error
    assert str(model / "2" / "model.onnx") in error and "version 2" in error


def test_model_file_only_checked_for_served_versions(tmp_path):
    model = make_model(tmp_path, "m", PY_CONFIG.format(name="m"), versions=(1, 2))
    os.remove(model / "1" / "model.py")
    assert repo_mod.scan([str(tmp_path)])[0].versions == [2]


def test_no_version_directory(tmp_path):
    make_model(tmp_path, "m", PY_CONFIG.format(name="m"), versions=())
    error = repo_mod.scan([str(tmp_path)])[0].error
    assert "at least one version must be available" in error


def test_version_policies(tmp_path):
    policy = lambda text: parse_pbtxt(f"version_policy {{ {text} }}", "c").version_policy  # noqa
    avail = [1, 2, 5, 9]
    assert select_versions(pb.ModelVersionPolicy(), avail, model="m") == [9]
    assert select_versions(policy("latest { num_versions: 2 }"), avail, model="m") == [5, 9]
    assert select_versions(policy("latest { num_versions: 10 }"), avail, model="m") == avail
    assert select_versions(policy("all {}"), avail, model="m") == avail
    assert select_versions(policy("specific { versions: [5, 1] }"), avail, model="m") == [1, 5]
    # Triton's VersionsToLoad: a specific version without a directory is logged, not loaded
    assert select_versions(policy("specific { versions: [1, 3] }"), avail, model="m") == [1]
    with pytest.raises(TritonError) as info:
        select_versions(policy("specific { versions: [3, 4] }"), avail, model="m")
    assert "at least one version must be available" in info.value.message
    with pytest.raises(TritonError) as info:
        select_versions(policy("latest { num_versions: 0 }"), avail, model="m")
    assert "at least one version" in info.value.message


def test_bad_version_policy_in_repository(tmp_path):
    config = PY_CONFIG.format(name="m") + "version_policy { specific { versions: [ 4 ] } }"
    make_model(tmp_path, "m", config, versions=(1, 2))
    error = repo_mod.scan([str(tmp_path)])[0].error
    assert error == "at least one version must be available under the version policy of model 'm'"


def test_duplicate_model_in_two_repositories(tmp_path):
    first, second = tmp_path / "r1", tmp_path / "r2"
    make_model(first, "dup", PY_CONFIG.format(name="dup"))
    make_model(second, "dup", PY_CONFIG.format(name="dup"))
    make_model(second, "solo", PY_CONFIG.format(name="solo"))
    sources = repo_mod.scan([str(first), str(second)])
    dups = [s for s in sources if s.name == "dup"]
    assert len(dups) == 2 and {s.repository for s in dups} == {str(first), str(second)}
    assert all(s.error == "model appears in two or more repositories" for s in dups)
    assert one(sources, "solo").error is None


def test_model_config_name_selects_custom_config(tmp_path):
    model = make_model(tmp_path, "m", PY_CONFIG.format(name="m"))
    (model / "configs").mkdir()
    (model / "configs" / "h100.pbtxt").write_text(
        PY_CONFIG.format(name="m").replace("max_batch_size: 0", "max_batch_size: 7"))
    assert repo_mod.scan([str(tmp_path)], model_config_name="h100")[0] \
        .config.max_batch_size == 7
    assert repo_mod.scan([str(tmp_path)], model_config_name="absent")[0] \
        .config.max_batch_size == 0


def test_syntax_error_becomes_model_error(tmp_path):
    make_model(tmp_path, "m", 'name: "m"\nbackend: python\n')
    error = repo_mod.scan([str(tmp_path)])[0].error
    assert "config.pbtxt" in error and "line 2" in error


def test_strict_validates_io_at_scan(tmp_path):
    bad = PY_CONFIG.format(name="m").replace("dims: [ 16 ]", "dims: [ 0 ]", 1)
    make_model(tmp_path, "m", bad)
    assert repo_mod.scan([str(tmp_path)])[0].error is None
    assert "model input 'INPUT0' dimension must be integer >= 1" in repo_mod.scan([str(tmp_path)], strict=True)[0].error


def test_missing_repository_is_an_error(tmp_path):
    with pytest.raises(TritonError) as info:
        repo_mod.scan([str(tmp_path / "nope")])
    assert str(tmp_path / "nope") in info.value.message


# ---- normalize ----

def test_normalize_defaults_cpu_only():
    cfg = parse_pbtxt('name: "m" backend: "onnxruntime" max_batch_size: 8 '
                      'dynamic_batching {}', "c")
    repo_mod.normalize(cfg)
    assert cfg.version_policy.latest.num_versions == 1
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8]
    assert cfg.optimization.input_pinned_memory.enable
    assert cfg.optimization.output_pinned_memory.enable
    [group] = cfg.instance_group
    assert (group.name, group.kind, group.count) == ("m", KIND.KIND_CPU, 2)


def test_normalize_instance_groups_with_gpus():
    cfg = parse_pbtxt('name: "m" backend: "python" instance_group [ { count: 3 }, '
                      '{ kind: KIND_CPU }, { name: "g" kind: KIND_GPU gpus: [1] } ] '
                      'optimization { input_pinned_memory { enable: false } }', "c")
    repo_mod.normalize(cfg, gpus=2)
    names = [(g.name, g.kind, g.count, list(g.gpus)) for g in cfg.instance_group]
    assert names == [("m_0", KIND.KIND_GPU, 3, [0, 1]), ("m_1", KIND.KIND_CPU, 1, []),
                     ("g", KIND.KIND_GPU, 1, [1])]
    assert not cfg.optimization.input_pinned_memory.enable


def test_normalize_gpu_errors():
    cfg = parse_pbtxt('name: "m" backend: "python" instance_group [{ kind: KIND_GPU }]', "c")
    with pytest.raises(TritonError, match="KIND_GPU but no GPUs are available"):
        repo_mod.normalize(cfg)
    cfg = parse_pbtxt('name: "m" backend: "python" '
                      'instance_group [{ kind: KIND_GPU gpus: [3] }]', "c")
    with pytest.raises(TritonError, match="invalid or unsupported gpu id 3"):
        repo_mod.normalize(cfg, gpus=1)
    auto = parse_pbtxt('name: "m" backend: "python" instance_group [{ gpus: [3] }]', "c")
    repo_mod.normalize(auto, gpus=1)
    assert auto.instance_group[0].kind == KIND.KIND_CPU


def test_normalize_sequence_and_ensemble():
    seq = parse_pbtxt('name: "s" backend: "python" max_batch_size: 4 '
                      'sequence_batching { oldest {} }', "c")
    repo_mod.normalize(seq)
    assert seq.sequence_batching.max_sequence_idle_microseconds == 1_000_000
    assert list(seq.sequence_batching.oldest.preferred_batch_size) == [4]
    ens = parse_pbtxt('name: "e" platform: "ensemble"', "c")
    repo_mod.normalize(ens)
    assert not ens.instance_group and not ens.HasField("optimization")


# ---- validate ----

VALID = """
name: "m" backend: "onnxruntime" platform: "onnxruntime_onnx" max_batch_size: 8
input [ { name: "I" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape { shape: [ -1, 2, 2 ] } } ]
output [ { name: "O" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] }
"""


def invalid(text: str, model_dir: str = "/repo/m") -> str:
    cfg = parse_pbtxt(text, "c")
    repo_mod.normalize(cfg)
    with pytest.raises(TritonError) as info:
        repo_mod.validate(cfg, model_dir)
    assert info.value.code == Code.INVALID_ARG
    return info.value.message


def test_validate_accepts_valid_configs():
    cfg = parse_pbtxt(VALID, "c")
    repo_mod.normalize(cfg)
    repo_mod.validate(cfg, "/repo/m")


@pytest.mark.parametrize("old,new,expected", [
    ('max_batch_size: 8', 'max_batch_size: -1', "'max_batch_size' must be non-negative value for m"),
    ('[ 4, 8 ]', '[ 4, 16 ]', "preferred size must be <= max batch size for m"),
    ('[ 4, 8 ]', '[ 0 ]', "preferred size must be positive for m"),
    ('dims: [ -1, 4 ]', 'dims: [ 0, 4 ]', "model input 'I' dimension must be integer >= 1"),
    ('dims: [ -1, 4 ]', 'dims: [ -2, 4 ]', "-1 to indicate a variable-size dimension"),
    ('dims: [ 4 ]', 'dims: [ ]', "must specify 'dims'"),
    ('[ -1, 2, 2 ]', '[ -1, 3 ]', "model input 'I' has different size for dims and reshape for m"),
    ('[ -1, 2, 2 ]', '[ 8 ]', "model input 'I' has different size for dims and reshape for m"),
    ('[ -1, 2, 2 ]', '[ 2, -1, 2 ]', "'I' has different size for dims and reshape"),
    ('[ -1, 2, 2 ]', '[ -1, 2, -1 ]', "'I' has different number of variable-size dimensions"),
    ('[ -1, 2, 2 ]', '[ -1, 1, 4, 1 ]', None),
    ('data_type: TYPE_FP32 dims: [ 4 ]', 'dims: [ 4 ]', "model output 'O' must specify 'data_type'"),
    ('name: "O"', 'name: ""', "model output must specify 'name' for m"),
    ('name: "O"', 'name: "I"', None),  # an output may share an input's name
    ('platform: "onnxruntime_onnx"', 'platform: "tensorrt_plan"',
     "unexpected 'platform' and 'backend' pair, got:tensorrt_plan, onnxruntime"),
    ('backend: "onnxruntime" platform: "onnxruntime_onnx"', 'platform: "custom"',
     "unexpected platform type 'custom' for m"),
])
def test_validate_errors(old, new, expected):
    assert old in VALID
    text = VALID.replace(old, new, 1)
    if expected is None:
        cfg = parse_pbtxt(text, "c")
        repo_mod.normalize(cfg)
        repo_mod.validate(cfg, "/repo/m")
    else:
        assert expected in invalid(text)


def test_validate_duplicate_and_name():
    text = VALID.replace('output [', 'output [ { name: "O" data_type: TYPE_FP32 dims: [1] },')
    assert "'O' is specified more than once" in invalid(text)
    assert "unexpected directory name 'x'" in invalid(VALID, "/repo/x")


def test_validate_priorities_and_ordering():
    base = VALID.replace("dynamic_batching {", "dynamic_batching { priority_levels: 2 ")
    assert "default priority level must be in range [1, 2] for m" in invalid(base)
    bad_key = base.replace("priority_levels: 2", "priority_levels: 2 default_priority_level: 1 "
                           "priority_queue_policy { key: 3 value {} }")
    assert "priority queue policy must have priority level in range [1, 2] for m" in invalid(bad_key)
    ordered = base.replace("priority_levels: 2", "priority_levels: 2 default_priority_level: 1 "
                           "preserve_ordering: true")
    assert "Only one priority level is allowed when 'preserve_ordering' is true for m" in \
        invalid(ordered)
    delay = VALID.replace("dynamic_batching {", "dynamic_batching { preserve_ordering: true "
                          "default_queue_policy { timeout_action: DELAY "
                          "default_timeout_microseconds: 10 }")
    assert "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is " \
        "true for m" in invalid(delay)


def test_validate_sequence_controls():
    seq = ('name: "m" backend: "python" max_batch_size: 1 '
           'input [ { name: "I" data_type: TYPE_FP32 dims: [1] } ] '
           'sequence_batching { control_input [ { name: "S" control [ { %s } ] } ] } %s')
    assert "control 'int32_false_true' must have exactly 2 entries for " \
        "CONTROL_SEQUENCE_START for m" in invalid(
        seq % ("kind: CONTROL_SEQUENCE_START int32_false_true: [0]", ""))
    assert "specifies more than one from 'int32_false_true'" in invalid(seq % (
        "kind: CONTROL_SEQUENCE_END int32_false_true: [0, 1] bool_false_true: [false, true]", ""))
    assert "unexpected data type for control CONTROL_SEQUENCE_CORRID for m. Allowed" in invalid(
        seq % ("kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_FP32", ""))
    cfg = parse_pbtxt(seq % ("kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_STRING", ""), "c")
    repo_mod.normalize(cfg)
    repo_mod.validate(cfg, "/repo/m")   # string correlation ids (Triton allows TYPE_STRING)
    assert "Response Cache does not currently support model m with sequence" in invalid(
        seq % ("kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64",
               "response_cache { enable: true }"))


def test_validate_initial_state():
    seq = ('name: "m" backend: "python" max_batch_size: 1 '
           'input [ { name: "I" data_type: TYPE_FP32 dims: [1] } ] '
           'sequence_batching { state [ { input_name: "IS" output_name: "OS" '
           'data_type: TYPE_FP32 dims: [ -1, 2 ] initial_state [ %s ] } ] }')
    ok = 'data_type: TYPE_FP32 dims: [ 3, 2 ] name: "i" zero_data: true'
    seq = seq.replace("[ %s ]", "[ { %s } ]")
    cfg = parse_pbtxt(seq % ok, "c")
    repo_mod.normalize(cfg)
    repo_mod.validate(cfg, "/repo/m")
    assert "must contain exactly one or zero element. Found '2' elements." in invalid(
        seq % f"{ok} }}, {{ {ok}")
    assert "does not match the state data type" in invalid(
        seq % ok.replace("TYPE_FP32", "TYPE_INT32"))
    assert "Field 'name' must be set when using initial_state for state input 'IS'" in invalid(
        seq % ok.replace('name: "i"', ""))
    assert "1 != 2" in invalid(seq % ok.replace("dims: [ 3, 2 ]", "dims: [ 3 ]"))
    assert "contains variable dimensions" in invalid(seq % ok.replace("[ 3, 2 ]", "[ -1, 2 ]"))
    assert "doesn't match 'state' dim description. 5 != 2" in invalid(
        seq % ok.replace("[ 3, 2 ]", "[ 3, 5 ]"))
    assert "to have state_data set" in invalid(seq % ok.replace("zero_data: true", ""))


ENS = """
name: "e" platform: "ensemble" max_batch_size: 1
input [ { name: "RAW" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
ensemble_scheduling { step [
  { model_name: "a" input_map { key: "x" value: "RAW" } output_map { key: "y" value: "T" } },
  { model_name: "b" input_map { key: "x" value: "T" } output_map { key: "y" value: "OUT" } }
] }
"""


def test_validate_ensembles():
    cfg = parse_pbtxt(ENS, "c")
    repo_mod.normalize(cfg)
    repo_mod.validate(cfg, "/repo/e")
    assert "Ensemble model 'e' must have platform type 'ensemble' and empty backend" in invalid(
        ENS.replace('platform: "ensemble"', 'platform: "ensemble" backend: "python"'), "/r/e")
    assert "ensemble input 'RAW' for ensemble e' is not used" in invalid(
        ENS.replace('value: "RAW"', 'value: "NOPE"'), "/r/e")
    assert "ensemble output 'OUT' for ensemble e' is not used" in invalid(
        ENS.replace('value: "OUT"', 'value: "Z"'), "/r/e")
    cyclic = ENS.replace('key: "x" value: "RAW"', 'key: "x" value: "OUT"')
    assert "ensemble input 'RAW' for ensemble e' is not used" in invalid(cyclic, "/r/e")
    assert "instance group should not be specified" in invalid(
        ENS + "instance_group [ { kind: KIND_CPU } ]", "/r/e")
    assert "model_warmup can not be specified for ensemble 'e'" in invalid(ENS + 'model_warmup [ { name: "w" } ]', "/r/e")


# ---- labels ----

def test_load_labels(tmp_path):
    model = tmp_path / "m"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "labels.txt").write_text("cat\n\ndog\n")
    cfg = parse_pbtxt('name: "m" output [ { name: "P" label_filename: "sub/labels.txt" }, '
                      '{ name: "Q" } ]', "c")
    assert repo_mod.load_labels(str(model), cfg) == {"P": ["cat", "", "dog"]}


def test_label_path_escaping_model_dir_is_unsupported(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    for path in ("../secret.txt", str(tmp_path / "secret.txt")):
        cfg = parse_pbtxt(f'name: "m" output [ {{ name: "P" label_filename: "{path}" }} ]', "c")
        with pytest.raises(TritonError) as info:
            repo_mod.load_labels(str(model), cfg)
        assert info.value.code == Code.UNSUPPORTED
        assert info.value.message.endswith("for output 'P' in model 'm' is outside model "
                                           "directory")     # Triton's text


def test_missing_label_file(tmp_path):
    cfg = parse_pbtxt('name: "m" output [ { name: "P" label_filename: "none.txt" } ]', "c")
    with pytest.raises(TritonError) as info:
        repo_mod.load_labels(str(tmp_path), cfg)
    assert (info.value.code, info.value.message) == (      # Triton's ReadTextFile
        Code.INTERNAL, f"failed to open text file for read {tmp_path / 'none.txt'}: "
        "No such file or directory")


def test_duplicate_with_namespacing_is_one_source_per_repository(tmp_path):
    first, second = tmp_path / "r1", tmp_path / "r2"
    make_model(first, "dup", PY_CONFIG.format(name="dup"))
    make_model(second, "dup", PY_CONFIG.format(name="dup"))
    make_model(second, "solo", PY_CONFIG.format(name="solo"))
    sources = repo_mod.scan([str(first), str(second)], namespacing=True)
    assert [(s.name, s.repository, s.error) for s in sources] == [
        (f"{first}/dup", str(first), None), (f"{second}/dup", str(second), None),
        (f"{second}/solo", str(second), None)]
    assert {s.config.name for s in sources} == {"dup", "solo"}   # the served name
    plain = repo_mod.scan([str(first), str(second)])
    assert [s.name for s in plain] == ["dup", "dup", "solo"]
    assert all(s.error == "model appears in two or more repositories" for s in plain[:2])


def test_ignored_version_directories_are_logged_as_triton_does(tmp_path, caplog):
    model = make_model(tmp_path, "m", PY_CONFIG.format(name="m"), versions=(1,))
    for name in ("003", "abc", "configs", "warmup"):
        (model / name).mkdir()
    with caplog.at_level("WARNING", logger="tritond.repository"):
        assert list_versions(str(model)) == [1]
    assert sorted(r.getMessage() for r in caplog.records) == [
        "ignore version directory '003' which contains leading zeros in its directory name",
        "ignore version directory 'abc' which fails to convert to integral number"]


def test_a_missing_specific_version_is_logged_and_the_others_load(tmp_path, caplog):
    config = PY_CONFIG.format(name="m") + "version_policy { specific { versions: [ 2, 4 ] } }"
    make_model(tmp_path, "m", config, versions=(1, 2))
    with caplog.at_level("ERROR", logger="tritond.repository"):
        source = repo_mod.scan([str(tmp_path)])[0]
    assert source.error is None and source.versions == [2]
    assert [r.getMessage() for r in caplog.records] == [
        "version 4 is specified for model 'm', but the version directory is not present"]
