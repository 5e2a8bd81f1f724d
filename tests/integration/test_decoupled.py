"""Decoupled Python models through a real tritond and the real tritonclient (gRPC streams)."""
from __future__ import annotations

import os
import queue
import re
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.integration.decoupled_repo import decoupled_repo
from tests.server import Server, server_id_of
from tritond.shm.arena import is_oneoff


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("decoupled")
    flag = tmp / "cancelled.txt"
    progress = tmp / "progress.txt"
    repo = decoupled_repo(tmp / "repo", parameters={"ticker": {"FLAG": str(flag)},
                                                    "flood": {"PROGRESS": str(progress)}})
    srv = Server([repo])
    srv.flag, srv.progress = flag, progress
    yield srv
    srv.stop()


def _inp(name, arr):
    dtype = {np.int32: "INT32", np.uint32: "UINT32", np.object_: "BYTES",
             np.float32: "FP32"}[arr.dtype.type]
    t = grpcclient.InferInput(name, list(arr.shape), dtype)
    t.set_data_from_numpy(arr)
    return t


class Stream:
    """One tritonclient gRPC stream; ``get()`` returns (result, error)."""

    def __init__(self, srv, **kwargs):
        self.client = grpcclient.InferenceServerClient(srv.grpc_url)
        self.q: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.q.put((result, error)), **kwargs)

    def send(self, model, inputs, **kwargs):
        self.client.async_stream_infer(model, inputs, **kwargs)

    def get(self, timeout=20):
        return self.q.get(timeout=timeout)

    def until_final(self, timeout=20):
        got = []
        while True:
            result, error = self.get(timeout)
            got.append((result, error))
            if result is not None and result.get_response().parameters[
                    "triton_final_response"].bool_param:
                return got

    def close(self, cancel=False):
        self.client.stop_stream(cancel_requests=cancel)
        self.client.close()


def _repeat_inputs(values, delays=None):
    values = np.array(values, np.int32)
    delays = np.array(delays if delays is not None else [0] * len(values), np.uint32)
    return [_inp("IN", values), _inp("DELAY", delays), _inp("WAIT", np.array([0], np.uint32))]


def test_repeat_sends_every_response_in_order_then_the_final_flag(served):
    s = Stream(served)
    try:
        s.send("repeat_int32", _repeat_inputs([4, 2, 0, 1], [5, 1, 1, 1]), request_id="r",
               enable_empty_final_response=True)
        got = s.until_final()
        assert all(e is None for _, e in got)
        data = [r for r, _ in got[:-1]]
        assert [int(r.as_numpy("OUT")[0]) for r in data] == [4, 2, 0, 1]
        assert [int(r.as_numpy("IDX")[0]) for r in data] == [0, 1, 2, 3]
        assert all(r.get_response().id == "r" for r, _ in got)
        assert [r.get_response().parameters["triton_final_response"].bool_param
                for r, _ in got] == [False] * 4 + [True]
        assert got[-1][0].get_response().outputs == []      # the bare final flag
    finally:
        s.close()


def test_square_one_to_none_one_and_many_without_empty_finals(served):
    s = Stream(served)
    try:
        for n in (0, 1, 5):
            s.send("square_int32", [_inp("IN", np.array([n], np.int32))], request_id=str(n))
        got = {}
        deadline = time.monotonic() + 20
        while sum(got.values()) < 6 and time.monotonic() < deadline:
            result, error = s.get()
            assert error is None
            assert int(result.as_numpy("OUT")[0]) == int(result.get_response().id)
            got[result.get_response().id] = got.get(result.get_response().id, 0) + 1
        assert got == {"1": 1, "5": 5}
        with pytest.raises(queue.Empty):     # no empty finals without the opt-in
            s.get(timeout=0.5)
    finally:
        s.close()


def test_many_requests_multiplexed_keep_their_own_order(served):
    s = Stream(served)
    try:
        for i in range(8):
            s.send("repeat_int32", _repeat_inputs(list(range(10 * i, 10 * i + 10))),
                   request_id=str(i), enable_empty_final_response=True)
        seen: dict[str, list] = {}
        finals = 0
        while finals < 8:
            result, error = s.get()
            assert error is None
            resp = result.get_response()
            if resp.parameters["triton_final_response"].bool_param:
                finals += 1
                continue
            seen.setdefault(resp.id, []).append(int(result.as_numpy("OUT")[0]))
        assert seen == {str(i): list(range(10 * i, 10 * i + 10)) for i in range(8)}
    finally:
        s.close()


def test_unary_infer_on_a_decoupled_model_fails_as_triton(served):
    client = grpcclient.InferenceServerClient(served.grpc_url)
    with pytest.raises(InferenceServerException) as err:
        client.infer("square_int32", [_inp("IN", np.array([1], np.int32))])
    assert "ModelInfer RPC doesn't support models with decoupled transaction policy" in \
        err.value.message()
    assert err.value.status() == "StatusCode.UNIMPLEMENTED"


def _misuse(served, mode, n=1, **kwargs):
    s = Stream(served)
    try:
        s.send("misuse", [_inp("MODE", np.array([mode], np.int32))], **kwargs)
        return s.until_final() if kwargs.get("enable_empty_final_response") else \
            [s.get() for _ in range(n)]
    finally:
        s.close()


def test_send_after_final_is_refused_with_tritons_message(served):
    (result, error), = _misuse(served, 0)
    assert error is None and result.as_numpy("OUT")[0] == b"first"
    deadline = time.monotonic() + 5
    while "Response sender has been closed" not in served.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "MISUSE: Unable to send response. Response sender has been closed." in served.output()


def test_a_decoupled_execute_returning_responses_fails(served):
    (result, error), = _misuse(served, 1)
    assert result is None
    # python_backend's stub words it itself: no exception type, no traceback (Triton 2.51)
    assert re.fullmatch(r"Failed to process the request\(s\) for model '\w+', message: Python "
                        r"model '\w+' is using the decoupled mode and the execute function "
                        r"must return None\.", error.message()), error.message()


def test_an_error_response_mid_stream_keeps_the_stream_going(served):
    got = _misuse(served, 2, n=3)
    assert got[0][0].as_numpy("OUT")[0] == b"one"
    assert got[1][0] is None and "bad second response" in got[1][1].message()
    assert got[2][0].as_numpy("OUT")[0] == b"three"


def test_an_exception_after_a_response_ends_the_request_with_its_error(served):
    got = _misuse(served, 3, n=2)
    assert got[0][0].as_numpy("OUT")[0] == b"before"
    assert got[1][0] is None
    assert "ValueError: model broke mid-stream" in got[1][1].message()


def test_flags_zero_without_a_response_is_refused(served):
    (result, _), = _misuse(served, 4)
    assert result.as_numpy("OUT")[0] == (b"Inference Response object must be provided when "
                                         b"the response flags is set to zero.")


def test_async_decoupled_execute_runs_in_the_background(served):
    got = _misuse(served, 5, enable_empty_final_response=True)
    assert got[0][0].as_numpy("OUT")[0] == b"async"
    assert len(got) == 2


def test_non_decoupled_model_answering_from_a_thread_after_execute(served):
    client = grpcclient.InferenceServerClient(served.grpc_url)
    res = client.infer("late", [_inp("IN", np.array([1.5, 2], np.float32))])
    np.testing.assert_array_equal(res.as_numpy("OUT"), [3, 4])


def test_dropping_the_stream_cancels_the_model(served):
    if served.flag.exists():
        served.flag.unlink()
    s = Stream(served)
    s.send("ticker", [_inp("IN", np.array([0], np.int32))])
    for _ in range(3):
        assert s.get()[1] is None
    s.close(cancel=True)                # the stream goes away mid-request
    deadline = time.monotonic() + 10
    while not served.flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.flag.read_text().startswith("cancelled after")
    # The model serves the next stream normally.
    s = Stream(served)
    try:
        s.send("square_int32", [_inp("IN", np.array([2], np.int32))])
        assert s.get()[1] is None and s.get()[1] is None
    finally:
        s.close()


def _oneoffs(srv) -> list:
    """This server's one-off segments (made when an arena is full; other servers may run)."""
    prefix = f"tritond-{server_id_of(srv.proc.pid)}-"
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix) and is_oneoff("/" + n)]


def test_a_slow_reader_pauses_the_model_instead_of_growing_memory(served):
    n, size = 10_000, 16 << 10
    s = Stream(served)
    paused = {"until": time.monotonic() + 3}
    got = []

    def slow(result, error):
        if time.monotonic() < paused["until"]:
            time.sleep(0.01)
        got.append((result, error))
    s.client.stop_stream()
    s.client.start_stream(callback=slow)
    try:
        s.send("flood", [_inp("N", np.array([n], np.int32)), _inp("SIZE", np.array([size], np.int32))])
        time.sleep(2.5)
        sent = int(served.progress.read_text() or 0)
        # The model is held back by its reader: far fewer than n sent, and what it
        # holds fits in the worker's 16 MiB arena (no segment beyond the arenas).
        assert sent < n // 2, sent
        assert _oneoffs(served) == []
        deadline = time.monotonic() + 120
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(got) == n
        assert [int(r.as_numpy("IDX")[0]) for r, _ in got] == list(range(n))
        assert all(r.as_numpy("DATA")[0] == i % 251 for i, (r, _) in enumerate(got[:100]))
    finally:
        s.close()


def test_a_worker_crash_mid_stream_fails_the_request_unavailable(tmp_path):
    srv = Server([decoupled_repo(tmp_path / "repo", names=["crashy", "square_int32"])])
    try:
        s = Stream(srv)
        s.send("crashy", [_inp("IN", np.array([0], np.int32))], request_id="c")
        first, error = s.get()
        assert error is None and int(first.as_numpy("OUT")[0]) == 1
        result, error = s.get(timeout=20)
        assert result is None
        assert "killed by signal SIGKILL while sending the responses of the request" in \
            error.message()
        # Other models and the same stream keep working.
        s.send("square_int32", [_inp("IN", np.array([1], np.int32))])
        result, error = s.get()
        assert error is None and int(result.as_numpy("OUT")[0]) == 1
        s.close()
    finally:
        srv.stop()


def test_response_statistics_and_first_response_histogram(tmp_path):
    import urllib.request

    import tritonclient.http as httpclient

    srv = Server([decoupled_repo(tmp_path / "repo", names=["square_int32"])],
                 "--metrics-config=histogram_latencies=true")
    try:
        s = Stream(srv)
        for n in (2, 3):
            s.send("square_int32", [_inp("IN", np.array([n], np.int32))],
                   enable_empty_final_response=True)
            s.until_final()
        s.close()
        time.sleep(0.3)                    # the worker sends its statistics every 50 ms
        http_stats = httpclient.InferenceServerClient(srv.url).get_inference_statistics(
            "square_int32")["model_stats"][0]
        rs = http_stats["response_stats"]
        assert sorted(rs, key=int) == ["0", "1", "2", "3"]
        assert [rs[k]["success"]["count"] for k in "0123"] == [2, 2, 1, 0]
        assert [rs[k]["empty_response"]["count"] for k in "0123"] == [0, 0, 1, 1]
        assert rs["0"]["compute_infer"]["count"] == 2 and rs["0"]["success"]["ns"] > 0
        grpc_stats = grpcclient.InferenceServerClient(srv.grpc_url).get_inference_statistics(
            "square_int32").model_stats[0]
        assert grpc_stats.response_stats["1"].success.count == 2
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
            text = r.read().decode()
        assert 'nv_inference_first_response_histogram_ms_count{model="square_int32",' \
            'version="1"} 2' in text
        assert "# TYPE nv_inference_first_response_histogram_ms histogram" in text
    finally:
        srv.stop()


def _raw_stream(served, requests):
    """Every ModelStreamInferResponse of ``requests`` over one raw gRPC stream (so the
    infer_response of an error response is visible, which tritonclient hides)."""
    import grpc
    from tritond.protos import grpc_service_pb2 as pb
    with grpc.insecure_channel(served.grpc_url) as ch:
        call = ch.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer",
                                request_serializer=pb.ModelInferRequest.SerializeToString,
                                response_deserializer=pb.ModelStreamInferResponse.FromString)
        return list(call(iter(requests), timeout=20))


def _raw_request(model, version, rid, name, arr):
    from tritond.protos import grpc_service_pb2 as pb
    req = pb.ModelInferRequest(model_name=model, model_version=version, id=rid)
    req.inputs.add(name=name, datatype="INT32", shape=list(arr.shape))
    req.raw_input_contents.append(arr.astype(np.int32).tobytes())
    req.parameters["triton_enable_empty_final_response"].bool_param = True
    return req


def test_empty_final_and_failed_responses_carry_the_requests_metadata(served):
    """Triton's stream handler fills an empty final response and a model's error response
    with the *request's* id, model_name and model_version (stream_infer_handler.cc), so a
    request naming no version gets "" there; responses with outputs carry the model's."""
    for version in ("", "1"):
        got = _raw_stream(served, [_raw_request("square_int32", version, "q", "IN",
                                                np.array([1]))])
        assert [r.error_message for r in got] == ["", ""]
        data, final = (r.infer_response for r in got)
        assert (data.model_name, data.model_version, data.id) == ("square_int32", "1", "q")
        assert (final.model_name, final.model_version, final.id) == ("square_int32", version, "q")
        assert final.parameters["triton_final_response"].bool_param and not final.outputs
    got = _raw_stream(served, [_raw_request("misuse", "", "m", "MODE", np.array([2]))])
    assert [r.error_message for r in got] == ["", "bad second response", ""]
    failed = got[1].infer_response
    assert (failed.model_name, failed.model_version, failed.id) == ("misuse", "", "m")
    assert failed.parameters["triton_final_response"].bool_param is False
    assert "triton_final_response" in failed.parameters
