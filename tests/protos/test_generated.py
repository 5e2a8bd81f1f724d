"""Generated-code freshness and wire compatibility with tritonclient's protos."""
from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf import descriptor as _desc
from tritonclient.grpc import model_config_pb2 as tc_mc
from tritonclient.grpc import service_pb2 as tc

from tritond.protos import generate, grpc_service_pb2 as ours, health_pb2
from tritond.protos import model_config_pb2 as ours_mc


def test_generated_files_are_fresh():
    assert generate.stale_files() == []


def test_check_mode_reports_stale_file(tmp_path):
    generate.generate_into(tmp_path)
    (tmp_path / "health_pb2.py").write_text("# edited\n")
    assert generate.stale_files(tmp_path) == ["health_pb2.py"]


def test_check_command_line_exits_zero_when_fresh():
    proc = subprocess.run([sys.executable, "-m", "tritond.protos.generate", "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_packages_coexist_with_tritonclient():
    assert ours.DESCRIPTOR.package == "tritond.inference"
    assert ours_mc.DESCRIPTOR.package == "tritond.inference"
    assert health_pb2.DESCRIPTOR.package == "tritond.health.v1"
    assert tc.DESCRIPTOR.package == "inference"
    assert ours.DESCRIPTOR.name == "tritond/protos/grpc_service.proto"


def _field_sig(f: _desc.FieldDescriptor) -> tuple:
    sub = f.message_type.name if f.message_type else None
    enum = f.enum_type.name if f.enum_type else None
    oneof = f.containing_oneof.name if f.containing_oneof else None
    return (f.number, f.type, f.is_repeated, sub, enum, oneof)


def _assert_same_layout(theirs: _desc.Descriptor, mine: _desc.Descriptor, path: str):
    """Every field of tritonclient's message exists in ours with the same number/type."""
    for name, f in theirs.fields_by_name.items():
        assert name in mine.fields_by_name, f"{path}.{name} missing"
        assert _field_sig(f) == _field_sig(mine.fields_by_name[name]), f"{path}.{name}"
    for name, nested in theirs.nested_types_by_name.items():
        assert name in mine.nested_types_by_name, f"{path}.{name} missing"
        _assert_same_layout(nested, mine.nested_types_by_name[name], f"{path}.{name}")
    for name, enum in theirs.enum_types_by_name.items():
        _assert_same_enum(enum, mine.enum_types_by_name[name], f"{path}.{name}")


def _assert_same_enum(theirs: _desc.EnumDescriptor, mine: _desc.EnumDescriptor, path: str):
    assert {v.name: v.number for v in theirs.values} == \
        {v.name: v.number for v in mine.values}, path


@pytest.mark.parametrize("their_file,my_file", [(tc.DESCRIPTOR, ours.DESCRIPTOR),
                                                (tc_mc.DESCRIPTOR, ours_mc.DESCRIPTOR)])
def test_descriptors_match_tritonclient(their_file, my_file):
    for name, msg in their_file.message_types_by_name.items():
        _assert_same_layout(msg, my_file.message_types_by_name[name], name)
    for name, enum in their_file.enum_types_by_name.items():
        _assert_same_enum(enum, my_file.enum_types_by_name[name], name)


def test_service_methods_match_tritonclient():
    theirs = tc.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    mine = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    sig = lambda m: (m.input_type.name, m.output_type.name,  # noqa: E731
                     m.client_streaming, m.server_streaming)
    assert {m.name: sig(m) for m in theirs.methods} == {m.name: sig(m) for m in mine.methods}


def _roundtrip(their_msg, our_cls):
    """theirs -> bytes -> ours -> bytes -> theirs; bytes and fields equal."""
    data = their_msg.SerializeToString(deterministic=True)
    mine = our_cls.FromString(data)
    assert mine.SerializeToString(deterministic=True) == data
    back = type(their_msg).FromString(mine.SerializeToString())
    assert back == their_msg
    return mine


def _infer_request():
    req = tc.ModelInferRequest(model_name="m", model_version="3", id="req-1")
    req.parameters["b"].bool_param = True
    req.parameters["i"].int64_param = -(2**40)
    req.parameters["s"].string_param = "hello"
    req.parameters["d"].double_param = 2.5
    req.parameters["u"].uint64_param = 2**63 + 5
    inp = req.inputs.add(name="INPUT0", datatype="FP32", shape=[2, 3])
    inp.parameters["shared_memory_region"].string_param = "r0"
    inp.parameters["shared_memory_byte_size"].int64_param = 24
    typed = req.inputs.add(name="INPUT1", datatype="BYTES", shape=[2])
    typed.contents.bytes_contents.extend([b"a", b"\x00bc"])
    out = req.outputs.add(name="OUTPUT0")
    out.parameters["classification"].int64_param = 3
    out.parameters["binary_data"].bool_param = False
    req.raw_input_contents.append(b"\x01\x02\x03\x04" * 6)
    return req


def test_infer_request_roundtrip():
    mine = _roundtrip(_infer_request(), ours.ModelInferRequest)
    assert mine.parameters["u"].uint64_param == 2**63 + 5
    assert mine.parameters["i"].int64_param == -(2**40)
    assert mine.parameters["d"].WhichOneof("parameter_choice") == "double_param"
    assert mine.inputs[0].parameters["shared_memory_region"].string_param == "r0"
    assert list(mine.inputs[1].contents.bytes_contents) == [b"a", b"\x00bc"]
    assert mine.outputs[0].parameters["classification"].int64_param == 3
    assert mine.raw_input_contents[0] == b"\x01\x02\x03\x04" * 6


def test_infer_response_and_stream_roundtrip():
    resp = tc.ModelInferResponse(model_name="m", model_version="1", id="x")
    resp.parameters["triton_final_response"].bool_param = True
    out = resp.outputs.add(name="OUT", datatype="INT64", shape=[1, 2])
    out.contents.int64_contents.extend([-1, 2**62])
    resp.raw_output_contents.extend([b"\xff" * 16, b""])
    mine = _roundtrip(resp, ours.ModelInferResponse)
    assert list(mine.outputs[0].shape) == [1, 2]
    stream = tc.ModelStreamInferResponse(error_message="boom", infer_response=resp)
    assert _roundtrip(stream, ours.ModelStreamInferResponse).error_message == "boom"


def test_model_config_response_roundtrip():
    cfg = tc_mc.ModelConfig(name="m", backend="onnxruntime", max_batch_size=8)
    cfg.input.add(name="I", data_type=tc_mc.TYPE_FP32, dims=[-1, 4],
                  reshape=tc_mc.ModelTensorReshape(shape=[4]))
    cfg.output.add(name="O", data_type=tc_mc.TYPE_STRING, dims=[1], label_filename="l.txt")
    cfg.version_policy.specific.versions.extend([1, 3])
    cfg.dynamic_batching.preferred_batch_size.extend([4, 8])
    cfg.dynamic_batching.priority_queue_policy[2].timeout_action = tc_mc.ModelQueuePolicy.DELAY
    cfg.instance_group.add(kind=tc_mc.ModelInstanceGroup.KIND_GPU, count=2, gpus=[0, 1])
    cfg.parameters["k"].string_value = "v"
    cfg.model_warmup.add(name="w", batch_size=1).inputs["I"].zero_data = True
    mine = _roundtrip(tc.ModelConfigResponse(config=cfg), ours.ModelConfigResponse)
    assert mine.config.dynamic_batching.priority_queue_policy[2].timeout_action == 1
    assert mine.config.output[0].data_type == ours_mc.TYPE_STRING


def test_statistics_and_index_roundtrip():
    stats = tc.ModelStatisticsResponse()
    s = stats.model_stats.add(name="m", version="1", last_inference=1700000000000,
                              inference_count=10, execution_count=4)
    s.inference_stats.success.count = 10
    s.inference_stats.cache_miss.ns = 99
    s.batch_stats.add(batch_size=4).compute_infer.ns = 12345
    s.memory_usage.add(type="CPU", id=0, byte_size=1 << 33)
    _roundtrip(stats, ours.ModelStatisticsResponse)
    index = tc.RepositoryIndexResponse()
    index.models.add(name="m", version="1", state="UNAVAILABLE", reason="duplicate")
    _roundtrip(index, ours.RepositoryIndexResponse)
    load = tc.RepositoryModelLoadRequest(model_name="m")
    load.parameters["config"].string_param = "{}"
    load.parameters["file:1/model.onnx"].bytes_param = b"\x08\x01"
    _roundtrip(load, ours.RepositoryModelLoadRequest)


def test_shared_memory_roundtrip():
    _roundtrip(tc.SystemSharedMemoryRegisterRequest(name="r", key="/k", offset=8,
                                                    byte_size=2**40),
               ours.SystemSharedMemoryRegisterRequest)
    _roundtrip(tc.CudaSharedMemoryRegisterRequest(name="c", raw_handle=b"\x00" * 64,
                                                  device_id=1, byte_size=1024),
               ours.CudaSharedMemoryRegisterRequest)
    status = tc.SystemSharedMemoryStatusResponse()
    status.regions["r"].key = "/k"
    status.regions["r"].byte_size = 64
    _roundtrip(status, ours.SystemSharedMemoryStatusResponse)
    cuda = tc.CudaSharedMemoryStatusResponse()
    cuda.regions["c"].device_id = 3
    _roundtrip(cuda, ours.CudaSharedMemoryStatusResponse)


def test_log_and_trace_settings_roundtrip():
    log = tc.LogSettingsRequest()
    log.settings["log_info"].bool_param = False
    log.settings["log_verbose_level"].uint32_param = 2
    log.settings["log_format"].string_param = "ISO8601"
    mine = _roundtrip(log, ours.LogSettingsRequest)
    assert mine.settings["log_verbose_level"].uint32_param == 2
    resp = tc.LogSettingsResponse()
    resp.settings["log_error"].bool_param = True
    _roundtrip(resp, ours.LogSettingsResponse)
    trace = tc.TraceSettingRequest(model_name="m")
    trace.settings["trace_level"].value.extend(["TIMESTAMPS", "TENSORS"])
    trace.settings["trace_rate"].SetInParent()  # an empty value clears the setting
    mine = _roundtrip(trace, ours.TraceSettingRequest)
    assert list(mine.settings["trace_rate"].value) == []
    tresp = tc.TraceSettingResponse()
    tresp.settings["trace_file"].value.append("/tmp/t.json")
    _roundtrip(tresp, ours.TraceSettingResponse)


def test_metadata_and_health_roundtrip():
    meta = tc.ModelMetadataResponse(name="m", versions=["1", "2"], platform="onnxruntime_onnx")
    meta.inputs.add(name="I", datatype="FP32", shape=[-1, 3])
    _roundtrip(meta, ours.ModelMetadataResponse)
    _roundtrip(tc.ServerMetadataResponse(name="triton", version="2.41.0",
                                         extensions=["binary_tensor_data"]),
               ours.ServerMetadataResponse)
    _roundtrip(tc.ModelReadyRequest(name="m", version="1"), ours.ModelReadyRequest)


def test_health_wire_format():
    # grpc.health.v1: field 1 is a string / an enum, SERVING == 1.
    req = health_pb2.HealthCheckRequest(service="")
    assert health_pb2.HealthCheckRequest.FromString(b"\x0a\x01x").service == "x"
    assert req.SerializeToString() == b""
    resp = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
    assert resp.SerializeToString() == b"\x08\x01"
    svc = health_pb2.DESCRIPTOR.services_by_name["Health"]
    assert [m.name for m in svc.methods] == ["Check"]
