"""Every "not yet" feature of docs/compatibility.md fails to load, saying so, through a real
tritond (never READY-then-500, never a worker spawned for it)."""
from __future__ import annotations

import pathlib
import time

import pytest
import tritonclient.http as httpclient

from tests.integration.echo_repo import MODEL_PY
from tests.server import ROOT, Server
from tritond.errors import Code, TritonError
from tritond.protos.model_config_pb2 import ModelInstanceGroup
from tritond.repository import modelconfig, support

_IO = ('input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
       'output [ { name: "OUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')

# model name -> (feature named in the error and in docs/compatibility.md, config extra)
FEATURES = {
}
# models of another backend or platform: (feature, config head, file in version 1)
OTHERS = {
    "ov": ("backend 'openvino'", 'backend: "openvino"\n', "model.xml"),
    "tf": ("backend 'tensorflow'", 'platform: "tensorflow_savedmodel"\n', None),
    # backend only: Triton finds the platform from the version's files (savedmodel dir,
    # graphdef file), so the model is refused as TensorFlow, not for a missing file
    "tfsaved": ("backend 'tensorflow' (platform 'tensorflow_savedmodel')",
                'backend: "tensorflow"\n', None),
    "tfgraph": ("backend 'tensorflow' (platform 'tensorflow_graphdef')",
                'backend: "tensorflow"\n', "model.graphdef"),
    "onnxstream": ("decoupled", 'backend: "onnxruntime"\n'
                   'model_transaction_policy { decoupled: true }\n', "model.onnx"),
    # batch inputs are made for ONNX Runtime and PyTorch models (Triton's tensorrt has them)
    "trtragged": ("batch_input for backend 'tensorrt'", 'backend: "tensorrt"\nmax_batch_size: 4\n'
                  'batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "N" '
                  'data_type: TYPE_FP32 source_input: "IN0" } ]\n', "model.plan"),
}


def _write(repo: pathlib.Path, name: str, head: str, file: str | None) -> None:
    d = repo / name / "1"
    d.mkdir(parents=True)
    if file:
        (d / file).write_bytes(b"")
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\n{head}{_IO}')


def _repo(repo: pathlib.Path) -> pathlib.Path:
    for name, (_, extra) in FEATURES.items():
        _write(repo, name, f'backend: "python"\n{extra}', "model.py")
        (repo / name / "1" / "model.py").write_text(MODEL_PY)
    for name, (_, head, file) in OTHERS.items():
        _write(repo, name, head, file)
    (repo / "tf" / "1" / "model.savedmodel").mkdir()
    (repo / "tfsaved" / "1" / "model.savedmodel").mkdir()
    return repo


def test_each_feature_is_named_by_the_check(tmp_path):
    for name, (feature, extra) in FEATURES.items():
        cfg = modelconfig.parse_pbtxt(f'name: "{name}"\nbackend: "python"\n{extra}{_IO}', name)
        with pytest.raises(TritonError) as err:
            support.check(cfg)
        assert err.value.code == Code.UNSUPPORTED
        assert f"{feature}" in err.value.message
        assert err.value.message.endswith("is not supported by tritond yet")


_STATE = ('sequence_batching { state [ { input_name: "S" output_name: "S_OUT" '
          'data_type: TYPE_FP32 dims: [ 1 ] %s } ] }\n')


def test_growable_state_memory_is_refused_on_gpu_and_state_options_pass():
    """use_growable_memory needs KIND_GPU (Triton's rule, validation.py) and growable CUDA
    buffers (not built); use_same_buffer_for_input_output and iterative_sequence are built."""
    gpu = modelconfig.parse_pbtxt(
        'name: "g" backend: "python" max_batch_size: 4 instance_group [ { kind: KIND_GPU } ]\n'
        + _STATE % "use_same_buffer_for_input_output: true use_growable_memory: true", "g")
    assert support.unsupported_features(gpu) == [
        "sequence_batching state use_growable_memory (growable CUDA state buffers)"]
    for extra in ("use_same_buffer_for_input_output: true", ""):
        cfg = modelconfig.parse_pbtxt('name: "s" backend: "python" max_batch_size: 4\n'
                                      + _STATE % extra, "s")
        assert support.unsupported_features(cfg) == []
    it = 'name: "i" backend: "python" sequence_batching { iterative_sequence: true }'
    assert support.unsupported_features(modelconfig.parse_pbtxt(it, "i")) == []


def test_batch_io_is_refused_where_the_worker_does_not_make_it():
    io = ('max_batch_size: 4 input [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ] '
          'batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "N" data_type: TYPE_INT32 '
          'source_input: "X" } ] ')
    seq = 'sequence_batching { } '
    cases = {'backend: "onnxruntime" ' + io: [],
             'backend: "pytorch" ' + io: [],
             'backend: "python" ' + io + seq: [],         # ignored, as Triton's Python backend
             'backend: "tensorrt" ' + io: ["batch_input for backend 'tensorrt'"],
             'platform: "tensorrt_plan" ' + io: ["batch_input for backend 'tensorrt'"],
             'platform: "torch_aoti" ' + io: ["batch_input for platform 'torch_aoti'"],
             'backend: "onnxruntime" ' + io + seq: []}
    for text, expected in cases.items():
        cfg = modelconfig.parse_pbtxt(f'name: "b" {text}', "b")
        assert support.unsupported_features(cfg) == expected, text


def test_supported_configs_pass():
    for text in ('name: "w" backend: "python" model_warmup [ { name: "w" batch_size: 1 } ]',
                 'name: "a" backend: "onnxruntime" max_batch_size: 8 dynamic_batching { }',
                 'name: "b" backend: "python" instance_group [ { count: 2 } ]',
                 'name: "c" backend: "python" response_cache { enable: false }',
                 'name: "d" backend: "python" response_cache { enable: true }',
                 'name: "e" backend: "python" parameters { key: "EXECUTION_ENV_PATH" '
                 'value { string_value: "$$TRITON_MODEL_DIRECTORY/env.tar.gz" } }'):
        assert support.unsupported_features(modelconfig.parse_pbtxt(text, "x")) == []


def test_every_not_yet_feature_is_in_the_compatibility_table():
    table = (ROOT / "docs" / "compatibility.md").read_text()
    rows = [line for line in table.splitlines() if "not yet" in line]
    for feature, *_ in [*FEATURES.values(), *OTHERS.values()]:
        word = feature.split("'")[1] if "'" in feature else feature
        assert any(word in row for row in rows), f"{feature} is not a 'not yet' row"


def test_unsupported_features_fail_to_load_through_tritond(tmp_path):
    srv = Server([_repo(tmp_path)], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(srv.url)
        wanted = {**{n: f for n, (f, _) in FEATURES.items()},
                  **{n: f for n, (f, _, _) in OTHERS.items()}}
        deadline = time.monotonic() + 60
        while True:
            rows = {r["name"]: r for r in client.get_model_repository_index()}
            if all(rows.get(n, {}).get("state") == "UNAVAILABLE" for n in wanted) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for name, feature in wanted.items():
            assert rows[name]["state"] == "UNAVAILABLE", rows[name]
            assert f"{feature}" in rows[name]["reason"], rows[name]
            assert "is not supported by tritond yet" in rows[name]["reason"]
            assert not client.is_model_ready(name)
        log = srv.output()
        assert "instance" not in "\n".join(
            line for line in log.splitlines() if "failed to load" in line), log
    finally:
        srv.stop()


def test_explicit_load_answers_the_reason(tmp_path):
    from tritonclient.utils import InferenceServerException

    srv = Server([_repo(tmp_path)], "--model-control-mode=explicit")
    try:
        client = httpclient.InferenceServerClient(srv.url)
        with pytest.raises(InferenceServerException) as err:
            client.load_model("ov")
        assert "model 'ov': backend 'openvino' is not supported by tritond yet" in \
            err.value.message()
        assert not client.is_model_ready("ov")
    finally:
        srv.stop()


def test_torch_aoti_is_refused_on_gpu_instances_and_auto_keeps_it_on_the_cpu():
    # its worker crashed (SIGSEGV in aoti_load_package) on the GPU host it was tried on
    from tritond.repository import normalize
    gpu = modelconfig.parse_pbtxt('name: "a" platform: "torch_aoti" '
                                  'instance_group [ { kind: KIND_GPU } ]', "a")
    assert support.unsupported_features(gpu) == ["platform 'torch_aoti' on KIND_GPU instances"]
    auto = modelconfig.parse_pbtxt('name: "a" platform: "torch_aoti" backend: "pytorch"', "a")
    normalize(auto, gpus=1)
    assert [g.kind for g in auto.instance_group] == [ModelInstanceGroup.KIND_CPU]
    assert support.unsupported_features(auto) == []
