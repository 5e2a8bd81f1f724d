"""Every gRPC RPC through serve_grpc and the real FrontendCore, called by tritonclient.grpc."""
import queue
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import model_config_pb2 as client_mc
from tritonclient.utils import InferenceServerException

from tritond.protos import health_pb2

from tests.frontend.grpc.grpc_harness import GrpcServerThread, model_table


@pytest.fixture(scope="module")
def srv():
    s = GrpcServerThread(allow_client_shm=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv):
    c = grpcclient.InferenceServerClient(srv.url)
    yield c
    c.close()


def status_of(fn, *args, **kw):
    with pytest.raises(InferenceServerException) as info:
        fn(*args, **kw)
    return info.value.status(), info.value.message()


def health_check(url: str) -> int:
    with grpc.insecure_channel(url) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        return check(health_pb2.HealthCheckRequest(), timeout=10).status


# ------------------------------------------------------------ health, metadata


def test_live_ready_and_health(srv, client):
    assert client.is_server_live() and client.is_server_ready()
    assert health_check(srv.url) == health_pb2.HealthCheckResponse.SERVING
    srv.on_loop(srv.core.on_messages, [model_table(ready=False)])
    try:
        assert not client.is_server_ready()
        assert health_check(srv.url) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        srv.on_loop(srv.core.on_messages, [model_table(ready=True)])


def test_model_ready(client):
    assert client.is_model_ready("identity") and client.is_model_ready("identity", "1")
    assert not client.is_model_ready("broken")
    assert not client.is_model_ready("nope")            # Triton: OK, ready=false
    assert not client.is_model_ready("identity", "7")
    assert status_of(client.is_model_ready, "identity", "x") == (
        "StatusCode.INVALID_ARGUMENT",
        "failed to get model version from specified version string 'x' (details: stol), "
        "version should be an integral value > 0")


def test_server_metadata(client):
    md = client.get_server_metadata()
    assert md.name == "triton" and md.version and "statistics" in md.extensions


def test_model_metadata(client):
    md = client.get_model_metadata("identity")
    assert (md.name, list(md.versions), md.platform) == ("identity", ["1"], "python")
    assert [(t.name, t.datatype, list(t.shape)) for t in md.inputs] == [("INPUT0", "FP32", [-1])]
    assert [t.name for t in md.outputs] == ["OUTPUT0"]
    assert status_of(client.get_model_metadata, "nope")[0] == "StatusCode.NOT_FOUND"


def test_model_config(client):
    cfg = client.get_model_config("strings").config
    assert cfg.name == "strings" and cfg.backend == "python" and cfg.max_batch_size == 0
    assert cfg.input[0].data_type == client_mc.TYPE_STRING and list(cfg.input[0].dims) == [-1]
    assert cfg.instance_group[0].kind == client_mc.ModelInstanceGroup.KIND_CPU
    assert status_of(client.get_model_config, "nope")[0] == "StatusCode.NOT_FOUND"


def test_statistics(client):
    stats = client.get_inference_statistics("identity").model_stats
    assert stats[0].name == "identity" and stats[0].inference_stats.success.count == 2
    assert stats[0].batch_stats[0].compute_infer.ns == 7
    assert status_of(client.get_inference_statistics, "broken")[0] == (
        "StatusCode.INVALID_ARGUMENT")


# ------------------------------------------------------------ repository, shm


def test_repository_index_and_control(client):
    index = {(m.name, m.version): m for m in client.get_model_repository_index().models}
    assert index[("listed", "")].state == ""
    assert index[("broken", "1")].state == "UNAVAILABLE"
    assert index[("broken", "1")].reason == "load failed"
    assert status_of(client.load_model, "identity") == (
        "StatusCode.UNAVAILABLE",
        "explicit model load / unload is not allowed if polling is enabled")
    assert status_of(client.unload_model, "identity")[0] == "StatusCode.UNAVAILABLE"


def test_shared_memory_rpcs(client):
    assert list(client.get_system_shared_memory_status().regions) == []
    assert list(client.get_cuda_shared_memory_status().regions) == []
    # the key names no segment: Triton's text, but a client error (Triton says INTERNAL)
    assert status_of(client.register_system_shared_memory, "r", "/tritond_no_such_key", 64) == (
        "StatusCode.INVALID_ARGUMENT", "Unable to open shared memory region: '/tritond_no_such_key'")
    assert status_of(client.get_system_shared_memory_status, "r")[0] == "StatusCode.NOT_FOUND"


def test_log_and_trace_settings(client):
    logs = client.get_log_settings().settings
    assert logs["log_info"].bool_param is True and logs["log_format"].string_param == "default"
    assert set(logs) >= {"log_file", "log_info", "log_warning", "log_error",
                         "log_verbose_level", "log_format"}
    updated = client.update_log_settings({"log_verbose_level": 2}).settings
    assert updated["log_verbose_level"].uint32_param == 2
    client.update_log_settings({"log_verbose_level": 0})
    trace = client.get_trace_settings().settings
    assert list(trace["trace_level"].value) == ["OFF"] and trace["trace_mode"].value == ["triton"]


# ------------------------------------------------------------------- inference


def fp32_input(arr, name="INPUT0", datatype="FP32"):
    t = grpcclient.InferInput(name, list(arr.shape), datatype)
    t.set_data_from_numpy(arr)
    return t


def test_infer_round_trip(client, srv):
    x = np.arange(8, dtype=np.float32)
    r = client.infer("identity", [fp32_input(x)], request_id="q1",
                     outputs=[grpcclient.InferRequestedOutput("OUTPUT0")])
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)
    resp = r.get_response()
    assert (resp.id, resp.model_name, resp.model_version) == ("q1", "identity", "1")
    assert resp.parameters["worker"].string_param == "loopback"
    # every output slot released (releases linger up to RELEASE_LINGER_S for a next request)
    end = time.monotonic() + 2
    while srv.on_loop(lambda: srv.worker.held) and time.monotonic() < end:
        time.sleep(0.01)
    assert srv.on_loop(lambda: srv.worker.held) == set()


def test_infer_bytes_and_empty(client):
    s = np.array([b"a", b"", b"xyz"], dtype=object)
    r = client.infer("strings", [fp32_input(s, datatype="BYTES")])
    assert r.as_numpy("OUTPUT0").tolist() == [b"a", b"", b"xyz"]
    e = client.infer("identity", [fp32_input(np.zeros(0, np.float32))])
    assert r.get_response().raw_output_contents and e.as_numpy("OUTPUT0").shape == (0,)


def test_infer_errors(client):
    x = np.zeros(2, np.float32)
    assert status_of(client.infer, "nope", [fp32_input(x)]) == (
        "StatusCode.NOT_FOUND", "Request for unknown model: 'nope' is not found")
    code, msg = status_of(client.infer, "identity", [fp32_input(x.astype(np.int32), "INPUT0",
                                                                "INT32")])
    assert code == "StatusCode.INVALID_ARGUMENT" and "data-type is 'INT32'" in msg


def test_deadline_cancels_in_core(client, srv):
    x = np.zeros(2, np.float32)
    code, _ = status_of(client.infer, "slow", [fp32_input(x)], client_timeout=0.3)
    assert code == "StatusCode.DEADLINE_EXCEEDED"
    deadline = time.monotonic() + 5
    while not srv.on_loop(lambda: list(srv.worker.cancelled)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.on_loop(lambda: list(srv.worker.cancelled))
    assert srv.on_loop(lambda: srv.core.in_flight) == 0


# ------------------------------------------------------------------- streaming


def run_stream(srv, requests, headers=None, wait=10.0):
    """Send (model, array, id) requests on one stream; return what the callback saw."""
    seen = queue.Queue()
    c = grpcclient.InferenceServerClient(srv.url)
    c.start_stream(callback=lambda result, error: seen.put((result, error)), headers=headers)
    try:
        for model, arr, rid in requests:
            c.async_stream_infer(model, [fp32_input(arr)], request_id=rid)
        out = []
        end = time.monotonic() + wait
        while len(out) < len(requests) and time.monotonic() < end:
            try:
                out.append(seen.get(timeout=0.2))
            except queue.Empty:
                pass
        return out
    finally:
        c.stop_stream()
        c.close()


def test_stream_responses_and_in_stream_errors(srv):
    xs = [np.full(3, i, np.float32) for i in range(5)]
    reqs = [("identity", x, f"s{i}") for i, x in enumerate(xs)]
    reqs.insert(2, ("nope", xs[0], "bad"))
    got = run_stream(srv, reqs)
    assert len(got) == 6
    errors = [e for r, e in got if e is not None]
    assert len(errors) == 1 and "unknown model: 'nope'" in errors[0].message()
    results = {r.get_response().id: r for r, e in got if e is None}
    for i, x in enumerate(xs):
        r = results[f"s{i}"]
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)
        assert r.get_response().parameters["triton_final_response"].bool_param is True


def test_stream_big_tensors_take_the_split_path(srv):
    """Messages over wire.SPLIT_MIN are split by hand on streams as on ModelInfer."""
    xs = [np.arange(1 << 15, dtype=np.float32) + i for i in range(3)]     # 128 KiB each
    got = run_stream(srv, [("identity", x, f"b{i}") for i, x in enumerate(xs)])
    assert [e for _, e in got] == [None] * 3
    for r, _ in got:
        i = int(r.get_response().id[1:])
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), xs[i])


def test_stream_malformed_message_is_an_in_stream_error(srv):
    # The client's garbage is its error (INVALID_ARG), not the server's, and the
    # stream stays usable as after any failed request.
    from tritond.protos import grpc_service_pb2 as pb

    with grpc.insecure_channel(srv.url) as channel:
        call = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer",
                                     response_deserializer=pb.ModelStreamInferResponse.FromString)
        (reply,) = list(call(iter([b"\xff\xff\xff"]), timeout=10))
    assert reply.error_message == "unable to parse the request message"


def test_stream_cancel_reaches_core(srv):
    before = len(srv.on_loop(lambda: list(srv.worker.cancelled)))
    c = grpcclient.InferenceServerClient(srv.url)
    c.start_stream(callback=lambda result, error: None)
    c.async_stream_infer("slow", [fp32_input(np.zeros(1, np.float32))], request_id="s")
    deadline = time.monotonic() + 5
    while not srv.on_loop(lambda: set(srv.worker.slow)) and time.monotonic() < deadline:
        time.sleep(0.02)
    c.stop_stream(cancel_requests=True)
    c.close()
    while (len(srv.on_loop(lambda: list(srv.worker.cancelled))) == before
           and time.monotonic() < deadline):
        time.sleep(0.02)
    assert len(srv.on_loop(lambda: list(srv.worker.cancelled))) == before + 1
    assert srv.on_loop(lambda: srv.core.in_flight) == 0


def test_stream_grpc_error_header_closes_stream(srv):
    got = run_stream(srv, [("nope", np.zeros(1, np.float32), "bad")],
                     headers={"triton_grpc_error": "true"})
    assert len(got) == 1
    result, error = got[0]
    assert result is None and error.status() == "StatusCode.NOT_FOUND"


def test_infer_decode_errors_are_invalid_argument(srv):
    """A request codec rejects (an input without data) is INVALID_ARGUMENT, not UNKNOWN."""
    from tritond.protos import grpc_service_pb2 as pb
    req = pb.ModelInferRequest(model_name="identity")
    req.inputs.add(name="INPUT0", datatype="FP32", shape=[2])
    with grpc.insecure_channel(srv.url) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                    request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelInferResponse.FromString)
        with pytest.raises(grpc.RpcError) as info:
            infer(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == ("unable to find data for input tensor 'INPUT0' for model "
                                    "'identity' in request.")


def _count_resolves(srv) -> list:
    """Record every model lookup the core makes (the real lookup still runs)."""
    calls = []
    models = srv.core.models
    real = type(models).resolve

    def resolve(name, version=""):
        calls.append(name)
        return real(models, name, version)
    srv.on_loop(setattr, models, "resolve", resolve)
    return calls


def test_model_resolved_once_per_request(client, srv):
    calls = _count_resolves(srv)
    try:
        x = np.arange(4, dtype=np.float32)
        client.infer("identity", [fp32_input(x)])
        assert calls == ["identity"]
        results = []
        client.start_stream(callback=lambda result, error: results.append((result, error)))
        client.async_stream_infer("identity", [fp32_input(x)])
        client.stop_stream()
        assert len(results) == 1 and results[0][1] is None
        assert calls == ["identity", "identity"]
    finally:
        srv.on_loop(vars(srv.core.models).pop, "resolve")
