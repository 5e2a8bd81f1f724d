"""Unload and reload while requests are in flight: drain, then swap (no request lost)."""
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

SLOW = '''
import os
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        with open(os.path.join(args["model_repository"], "pid"), "w") as f:
            f.write(str(os.getpid()))

    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "IN0").as_numpy()
        time.sleep(5 if x[0] >= 100 else 0.8)
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT0", pb_utils.get_input_tensor_by_name(r, "IN0").as_numpy())]) for r in requests]
'''
CONFIG = {"name": "slow", "backend": "python",
          "input": [{"name": "IN0", "data_type": "TYPE_FP32", "dims": [2]}],
          "output": [{"name": "OUT0", "data_type": "TYPE_FP32", "dims": [2]}],
          "instance_group": [{"kind": "KIND_CPU", "count": 1}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    (repo / "slow" / "1").mkdir(parents=True)
    (repo / "slow" / "1" / "model.py").write_text(SLOW)
    (repo / "slow" / "config.pbtxt").write_text(
        'name: "slow"\nbackend: "python"\n'
        'input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'output [ { name: "OUT0" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=slow",
                 "--exit-timeout-secs=60")
    srv.repo = repo
    yield srv
    srv.stop()


def start_requests(server, n, base=0):
    """n requests in flight (one executing, the rest queued); their results or errors
    (a value of 100 or more makes the model take 5 s)."""
    results = [None] * n

    def one(i):
        c = httpclient.InferenceServerClient(server.url, network_timeout=60)
        inp = httpclient.InferInput("IN0", [2], "FP32")
        inp.set_data_from_numpy(np.array([base + i, base + i], np.float32))
        try:
            results[i] = c.infer("slow", [inp]).as_numpy("OUT0").tolist()
        except InferenceServerException as exc:
            results[i] = exc.message()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.4)              # accepted: the first executes, the others are queued
    return threads, results


def test_unload_finishes_accepted_requests(server):
    c = httpclient.InferenceServerClient(server.url, network_timeout=60)
    c.load_model("slow")
    threads, results = start_requests(server, 3)
    t0 = time.monotonic()
    c.unload_model("slow")        # answers once the version is gone
    waited = time.monotonic() - t0
    for t in threads:
        t.join(30)
    assert results == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    assert waited > 1.0           # it drained the queue first
    assert not c.is_model_ready("slow")
    rows = {r["name"]: r for r in c.get_model_repository_index()}
    assert rows["slow"]["state"] == "UNAVAILABLE" and rows["slow"]["reason"] == "unloaded"


def test_unloading_refuses_new_requests(server):
    c = httpclient.InferenceServerClient(server.url, network_timeout=60)
    c.load_model("slow")
    threads, results = start_requests(server, 3)
    unloader = threading.Thread(target=lambda: httpclient.InferenceServerClient(
        server.url, network_timeout=60).unload_model("slow"))       # a client per thread
    unloader.start()
    time.sleep(0.3)
    rows = {r["name"]: r for r in c.get_model_repository_index()}
    assert rows["slow"]["state"] == "UNLOADING"
    inp = httpclient.InferInput("IN0", [2], "FP32")
    inp.set_data_from_numpy(np.zeros(2, np.float32))
    with pytest.raises(InferenceServerException) as exc:
        c.infer("slow", [inp])
    assert "'slow' has no available versions" in exc.value.message()
    unloader.join(30)
    for t in threads:
        t.join(30)
    assert results == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]


def test_reload_swaps_without_losing_requests(server):
    c = httpclient.InferenceServerClient(server.url, network_timeout=60)
    c.load_model("slow")
    threads, results = start_requests(server, 3)
    changed = dict(CONFIG, parameters={"generation": {"string_value": "2"}})
    c.load_model("slow", config=json.dumps(changed))    # a new worker; the old one drains
    for t in threads:
        t.join(30)
    assert results == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    assert c.is_model_ready("slow")
    assert c.get_model_config("slow")["parameters"]["generation"]["string_value"] == "2"
    inp = httpclient.InferInput("IN0", [2], "FP32")
    inp.set_data_from_numpy(np.full(2, 7, np.float32))
    assert c.infer("slow", [inp]).as_numpy("OUT0").tolist() == [7.0, 7.0]


def test_worker_dying_while_draining_fails_its_request_and_the_unload_goes_on(server):
    c = httpclient.InferenceServerClient(server.url, network_timeout=60)
    c.load_model("slow")                           # a fresh worker; it wrote its pid
    pid = int((server.repo / "slow" / "pid").read_text())
    threads, results = start_requests(server, 1, base=100)       # executing for 5 s
    done = []
    unloader = threading.Thread(target=lambda: done.append(httpclient.InferenceServerClient(
        server.url, network_timeout=60).unload_model("slow")))
    t0 = time.monotonic()
    unloader.start()
    time.sleep(0.3)                                # waiting for the worker to drain
    os.kill(pid, signal.SIGKILL)
    unloader.join(30)
    threads[0].join(30)
    assert done and time.monotonic() - t0 < 4.5    # not the 5 s batch, not the 60 s bound
    assert isinstance(results[0], str) and "while executing the request" in results[0]


def test_a_version_dropped_by_a_new_version_policy_drains(server):
    """A reload whose version policy no longer serves version 1: the requests version 1
    accepted still run there (UNLOADING), then it goes; version 2 serves the rest."""
    import shutil
    (server.repo / "slow" / "2").mkdir()
    shutil.copy(server.repo / "slow" / "1" / "model.py", server.repo / "slow" / "2" / "model.py")
    try:
        c = httpclient.InferenceServerClient(server.url, network_timeout=60)
        only = lambda v: json.dumps(dict(CONFIG, version_policy={"specific": {"versions": [v]}}))
        c.load_model("slow", config=only(1))
        threads, results = start_requests(server, 3)            # on version 1
        t0 = time.monotonic()
        c.load_model("slow", config=only(2))
        waited = time.monotonic() - t0
        for t in threads:
            t.join(30)
        assert results == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]   # none lost or failed
        assert waited > 1.0                                      # it drained version 1 first
        assert c.is_model_ready("slow", "2") and not c.is_model_ready("slow", "1")
        rows = {r["version"]: r for r in c.get_model_repository_index() if r["name"] == "slow"}
        assert rows["1"]["state"] == "UNAVAILABLE" and rows["1"]["reason"] == "unloaded"
        inp = httpclient.InferInput("IN0", [2], "FP32")
        inp.set_data_from_numpy(np.full(2, 3, np.float32))
        assert c.infer("slow", [inp]).get_response()["model_version"] == "2"
    finally:
        httpclient.InferenceServerClient(server.url).unload_model("slow")
        shutil.rmtree(server.repo / "slow" / "2")


THREADED_STREAM = '''
import threading, time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Triton's decoupled examples' way: execute returns at once, a thread answers."""

    def execute(self, requests):
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, "N").as_numpy()[0])
            sender = request.get_response_sender()

            def run(sender=sender, n=n):
                for i in range(n):
                    time.sleep(0.1)
                    sender.send(pb_utils.InferenceResponse(
                        [pb_utils.Tensor("OUT", np.array([i], np.int32))]))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            threading.Thread(target=run, daemon=True).start()
        return None
'''


@pytest.mark.parametrize("change", ["unload", "reload"])
def test_a_decoupled_models_threads_finish_their_streams_before_it_goes(tmp_path, change):
    """Unload (or reload) while a decoupled model's own thread is still answering a
    request: every response and the final flag still reach the client, as in Triton
    (a model goes only once its response senders are done). Before, the worker was
    shut down as soon as execute had returned, cutting the stream with
    "the model instance became unavailable while sending the responses"."""
    import queue

    import tritonclient.grpc as grpcclient

    (tmp_path / "stream" / "1").mkdir(parents=True)
    (tmp_path / "stream" / "1" / "model.py").write_text(THREADED_STREAM)
    (tmp_path / "stream" / "config.pbtxt").write_text(
        'backend: "python"\nmodel_transaction_policy { decoupled: true }\n'
        'input [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n')
    srv = Server([tmp_path], "--model-control-mode=explicit", "--load-model=stream",
                 "--exit-timeout-secs=60")
    got = queue.Queue()
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        c.start_stream(callback=lambda result, error: got.put((result, error)))
        n = grpcclient.InferInput("N", [1], "INT32")
        n.set_data_from_numpy(np.array([20], np.int32))
        c.async_stream_infer("stream", [n], enable_empty_final_response=True)
        first, error = got.get(timeout=30)
        assert error is None and first.as_numpy("OUT").tolist() == [0]
        control = httpclient.InferenceServerClient(srv.url, network_timeout=60)
        if change == "unload":
            control.unload_model("stream")
        else:
            control.load_model("stream", config=json.dumps(
                {"backend": "python", "parameters": {"generation": {"string_value": "2"}}}))
        values = [0]
        while True:
            result, error = got.get(timeout=30)
            assert error is None, error
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
            values.append(int(result.as_numpy("OUT")[0]))
        assert values == list(range(20))
        c.stop_stream()
        if change == "reload":
            assert control.get_model_config("stream")["parameters"]["generation"] == {
                "string_value": "2"}
        else:
            assert not control.is_model_ready("stream")
    finally:
        c.close()
        assert srv.stop() == 0
