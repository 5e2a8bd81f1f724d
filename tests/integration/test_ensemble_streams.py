"""Decoupled ensembles, ensemble backpressure, ensemble statistics and client shm
forgetting, through a real tritond and the real tritonclient."""
from __future__ import annotations

import json
import queue
import re
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.integration.ensemble_stream_repo import write_repo
from tests.integration.sched_repo import wait_for
from tests.integration.test_client_shm import mapped_by
from tests.server import Server


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    repo, gate = write_repo(tmp_path_factory.mktemp("ensemble_streams"))
    server = Server([repo], "--allow-client-shm=true")
    yield server, gate
    server.stop()


@pytest.fixture()
def srv(env):
    return env[0]


def _in(values, mod=grpcclient):
    t = mod.InferInput("IN", [4], "FP32")
    t.set_data_from_numpy(np.asarray(values, np.float32))
    return t


def _stream(srv, model: str, values) -> list:
    """Every response of one streamed request, the empty final one included."""
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    got: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    try:
        client.async_stream_infer(model, [_in(values)], enable_empty_final_response=True)
        out = []
        while True:
            result, error = got.get(timeout=30)
            out.append((result, error))
            if error is not None:
                return out
            final = result.get_response(as_json=True)["parameters"]["triton_final_response"]
            if final["bool_param"]:
                return out
    finally:
        client.stop_stream()
        client.close()


def _data(responses) -> list:
    return [r.as_numpy("OUT") for r, e in responses if e is None and r.as_numpy("OUT") is not None]


# ---------------------------------------------------------- decoupled steps


def test_each_response_of_a_decoupled_step_drives_the_next_step(srv):
    x = np.array([3, 1, 2, 5], np.float32)
    responses = _stream(srv, "fan", x)
    assert [e for _, e in responses] == [None] * len(responses)
    # repeat sends x, x+1, x+2; double runs once per response. As in Triton, the final
    # flag rides on the last answer when the last step in flight produced it, else it
    # comes alone after it (repeat's own final flag came last).
    assert sorted(map(tuple, _data(responses))) == sorted(tuple(2 * (x + k)) for k in range(3))
    assert len(responses) in (3, 4)


def test_a_decoupled_step_with_no_response_gives_only_the_final_flag(srv):
    responses = _stream(srv, "fan", [0, 1, 1, 1])
    assert len(responses) == 1 and _data(responses) == []


def test_a_last_response_carrying_the_final_flag_stays_one_response(srv):
    x = np.array([-1, 2, 3, 4], np.float32)
    responses = _stream(srv, "fan", x)
    assert len(responses) == 1
    np.testing.assert_array_equal(_data(responses)[0], 2 * x)


def test_an_error_of_the_decoupled_step_fails_the_request_naming_the_ensemble(srv):
    responses = _stream(srv, "fan", [99, 1, 1, 1])
    error = responses[-1][1]
    assert error is not None and "in ensemble 'fan', repeat gave up" in error.message()
    assert len(_data(responses)) <= 1


def test_a_decoupled_steps_response_without_outputs_passes_them_on_as_absent(srv):
    """Triton (ensemble_scheduler.cc ConsumeResponse, 2.51 and HEAD; an oracle run): a
    decoupled step's response with no outputs (``send(InferenceResponse([]))``) makes each
    of the step's mapped outputs absent for an iteration of its own. An ensemble output
    absent: an answer without outputs; a later step reading one as a required input:
    its input check fails the request."""
    x = [55, 1, 2, 3]
    responses = _stream(srv, "echo", x)
    assert [e for _, e in responses] == [None] * 3
    assert [[o["name"] for o in r.get_response(as_json=True).get("outputs", [])]
            for r, _ in responses] == [["OUT"], [], []]
    np.testing.assert_array_equal(responses[0][0].as_numpy("OUT"), x)
    flags = [r.get_response(as_json=True)["parameters"]["triton_final_response"]["bool_param"]
             for r, _ in responses]
    assert flags == [False, False, True]
    error = _stream(srv, "fan", x)[-1][1]
    assert error is not None and error.message() == (
        "in ensemble 'fan', [request id: <id_unknown>] expected 1 inputs but got 0 inputs "
        "for model 'double'. Got "
        "input(s) [], but missing required input(s) ['IN']. Please provide all required "
        "input(s).")


def test_the_ensemble_is_decoupled_and_refuses_unary_inference(srv):
    client = httpclient.InferenceServerClient(srv.url)
    config = client.get_model_config("fan")
    assert config["model_transaction_policy"] == {"decoupled": True}
    assert client.get_model_config("pair").get("model_transaction_policy", {}).get(
        "decoupled", False) is False
    with pytest.raises(InferenceServerException) as err:
        client.infer("fan", [_in([1, 1, 1, 1], httpclient)])
    assert "decoupled" in err.value.message()
    # and the server keeps serving it on a stream
    assert len(_data(_stream(srv, "fan", [2, 0, 0, 0]))) == 2


def test_many_streams_at_once(srv):
    def one(i):
        x = np.array([i % 4, i, 0, 1], np.float32)
        return i, x, _data(_stream(srv, "fan", x))
    with ThreadPoolExecutor(8) as pool:
        for i, x, data in pool.map(one, range(24)):
            assert sorted(map(tuple, data)) == sorted(tuple(2 * (x + k)) for k in range(i % 4))


# ------------------------------------------------------------- backpressure


def _pending(srv, model: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("nv_inference_pending_request_count") and \
                    f'model="{model}"' in line:
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no pending count for {model}")


def _successes(client, model: str) -> int:
    stats = client.get_inference_statistics(model)["model_stats"][0]
    return stats["inference_stats"]["success"]["count"]


N = 12


def test_max_inflight_requests_bounds_the_requests_waiting_for_a_slow_step(env):
    srv, gate = env
    client = httpclient.InferenceServerClient(srv.url, concurrency=16)
    try:
        held = {}
        for ensemble, pre, slow in (("limited", "pre_l", "gate_l"),
                                    ("unlimited", "pre_u", "gate_u")):
            futures = [client.async_infer(ensemble, [_in([i, 0, 0, 0], httpclient)])
                       for i in range(N)]
            # the first step is fast: all 8 pass it (2 at a time where limited) ...
            wait_for(lambda: _successes(client, pre) == N, 30, f"{pre} done")
            wait_for(lambda: (gate.parent / (gate.name + ".started")).exists(), 30, "gate")
            # ... and the slow step holds its first request: what queues behind it?
            held[ensemble] = (_pending(srv, slow), futures)
            gate.touch()
            for i, f in enumerate(futures):
                np.testing.assert_array_equal(f.get_result().as_numpy("OUT"),
                                              [2 * i, 0, 0, 0])
            gate.unlink()
            (gate.parent / (gate.name + ".started")).unlink()
        # at most 2 step requests in flight for gate_l: one running, at most one pending;
        # without the limit, every other one waits for the slow model (pending, whether
        # queued or sent ahead to its busy instance: none executes yet)
        assert held["limited"][0] <= 1
        assert held["unlimited"][0] == N - 1
    finally:
        gate.touch()
        client.close()


# --------------------------------------------------------------- statistics


def test_ensemble_statistics_sum_the_composing_models_compute_times(srv):
    client = httpclient.InferenceServerClient(srv.url)
    for i in range(5):
        r = client.infer("stats_chain", [_in([i, 1, 2, 3], httpclient)])
        np.testing.assert_array_equal(r.as_numpy("OUT"), [4 * i, 4, 8, 12])

    def stats(name):
        return client.get_inference_statistics(name)["model_stats"][0]
    ens, s1, s2 = stats("stats_chain"), stats("s1"), stats("s2")
    assert ens["execution_count"] == 5 and ens["inference_count"] == 5
    assert ens["inference_stats"]["success"]["count"] == 5
    # the composing models count their own executions made for the ensemble
    assert s1["execution_count"] == s2["execution_count"] == 5
    for field in ("compute_input", "compute_infer", "compute_output"):
        total = s1["inference_stats"][field]["ns"] + s2["inference_stats"][field]["ns"]
        assert ens["inference_stats"][field] == {"count": 5, "ns": total}, field
    (batch,) = ens["batch_stats"]
    assert batch["batch_size"] == 1 and batch["compute_infer"]["count"] == 5
    assert batch["compute_infer"]["ns"] == ens["inference_stats"]["compute_infer"]["ns"]
    # the whole request covers its steps
    assert ens["inference_stats"]["success"]["ns"] >= \
        ens["inference_stats"]["compute_infer"]["ns"]


# ------------------------------------------------------------- client shm


@pytest.mark.parametrize("proto", [httpclient, grpcclient])
def test_unregistering_drops_the_mappings_of_every_composing_worker(srv, proto):
    client = (proto.InferenceServerClient(srv.url) if proto is httpclient
              else proto.InferenceServerClient(srv.grpc_url))
    key = f"/ens_{uuid.uuid4().hex[:8]}"
    handle = shm.create_shared_memory_region("ens_io", key, 32)
    try:
        shm.set_shared_memory_region(handle, [np.array([1, 2, 3, 4], np.float32)])
        client.register_system_shared_memory("ens_io", key, 32)
        t = proto.InferInput("IN", [4], "FP32")
        t.set_shared_memory("ens_io", 16)
        out = proto.InferRequestedOutput("OUT")
        out.set_shared_memory("ens_io", 16, offset=16)
        client.infer("pair", [t], outputs=[out])
        np.testing.assert_array_equal(
            shm.get_contents_as_numpy(handle, np.float32, [4], offset=16), [4, 8, 12, 16])
        # both composing workers mapped the region (double read it, double2 wrote it)
        assert len(mapped_by(srv, key)) >= 2
        client.unregister_system_shared_memory("ens_io")
        wait_for(lambda: mapped_by(srv, key) == [], 10, "every mapping dropped")
    finally:
        shm.destroy_shared_memory_region(handle)
        client.close()


def test_a_decoupled_step_whose_worker_dies_while_it_answers_fails_the_request(srv):
    # repeat's execute returned long before (it answers from a thread): the scheduler no
    # longer tracks the step, yet the worker's death must end the stream (keep last: repeat
    # restarts after it)
    out = _stream(srv, "fan", [77, 1, 2, 3])
    (first, none), (result, error) = out
    assert none is None and error is not None
    np.testing.assert_array_equal(first.as_numpy("OUT"), [154, 2, 4, 6])
    assert re.fullmatch(r"in ensemble 'fan', instance 'repeat_0_0' \(pid \d+\) killed by "
                        r"signal SIGKILL while sending the responses of the request",
                        error.message()), error.message()
