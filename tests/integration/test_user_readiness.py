"""A Python model's own ``is_ready()`` (python_backend; server QA
``L0_backend_python/model_readiness``): every model-ready query, HTTP and gRPC, asks every
instance; True from all is ready, a False, an exception or a non-bool answer is not
ready (the query still succeeds), and inference goes on regardless. ``is_ready`` runs
beside ``execute``: a check is answered while a decoupled model's execute runs."""
from __future__ import annotations

import queue
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.server import Server

IDENTITY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import json
        params = json.loads(args["model_config"])["parameters"]
        self.answer = params["ANSWER"]["string_value"]
        self.instance = args["model_instance_name"]

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]

    def is_ready(self):
        if self.answer == "raise":
            raise RuntimeError("the model's own check failed")
        if self.answer == "nonbool":
            return 1
        if self.answer == "second_false":       # instance 1 of 2 says no
            return not self.instance.endswith("_1")
        return self.answer == "true"
'''

COROUTINE = IDENTITY.replace("    def is_ready(self):", "    async def is_ready(self):\n"
                             "        import asyncio\n        await asyncio.sleep(0)")

# Execute waits until is_ready() has been called while it runs: its responses carry -1
# if that never happened (is_ready blocked behind execute), else the requested count.
DECOUPLED = '''
import threading
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.executing = False
        self.checked = threading.Event()

    def execute(self, requests):
        for request in requests:
            count = int(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy().item())
            self.checked.clear()
            self.executing = True
            seen = self.checked.wait(20)
            self.executing = False
            sender = request.get_response_sender()
            out = pb_utils.Tensor("OUT", np.array([count if seen else -1], np.int32))
            for _ in range(count):
                sender.send(pb_utils.InferenceResponse([out]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def is_ready(self):
        if self.executing:
            self.checked.set()
        return True
'''

ANSWERS = {"ready_true": "true", "ready_false": "false", "ready_raises": "raise",
           "ready_nonbool": "nonbool", "ready_second_false": "second_false",
           "ready_coroutine": "true"}


def _config(name: str, answer: str, count: int) -> str:
    return (f'name: "{name}"\nbackend: "python"\n'
            'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
            'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
            f'instance_group [ {{ kind: KIND_CPU count: {count} }} ]\n'
            f'parameters {{ key: "ANSWER" value: {{ string_value: "{answer}" }} }}\n')


def _models(repo, names) -> None:
    for name in names:
        answer = ANSWERS[name]
        (repo / name / "1").mkdir(parents=True)
        source = COROUTINE if name == "ready_coroutine" else IDENTITY
        (repo / name / "1" / "model.py").write_text(source)
        count = 2 if name == "ready_second_false" else 1
        (repo / name / "config.pbtxt").write_text(_config(name, answer, count))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("readiness")
    _models(repo, ANSWERS)
    (repo / "ready_decoupled" / "1").mkdir(parents=True)
    (repo / "ready_decoupled" / "1" / "model.py").write_text(DECOUPLED)
    (repo / "ready_decoupled" / "config.pbtxt").write_text(
        'name: "ready_decoupled"\nbackend: "python"\nmax_batch_size: 1\n'
        'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'instance_group [ { kind: KIND_CPU count: 1 } ]\n'
        'model_transaction_policy { decoupled: true }\n')
    # As the QA suite: a model that says no would keep a strict server not ready.
    srv = Server([repo], "--strict-readiness=false")
    yield srv
    srv.stop()


def _infer(client, module, name: str) -> None:
    x = np.array([1.5, -2.0], np.float32)
    inp = module.InferInput("IN", [2], "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_array_equal(client.infer(name, [inp]).as_numpy("OUT"), x)


@pytest.mark.parametrize("name, ready", [
    ("ready_true", True), ("ready_coroutine", True), ("ready_false", False),
    ("ready_raises", False), ("ready_nonbool", False), ("ready_second_false", False)])
def test_model_ready_asks_the_model(server, name, ready):
    http = httpclient.InferenceServerClient(server.url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    for _ in range(3):     # the same answer every time; inference is unaffected
        assert http.is_model_ready(name) is ready
        assert http.is_model_ready(name, "1") is ready
        assert grpc.is_model_ready(name) is ready
        assert grpc.is_model_ready(name, "1") is ready
        _infer(http, httpclient, name)
        _infer(grpc, grpcclient, name)
    assert http.is_server_ready()       # the server stays up and ready
    assert not http.is_model_ready(name, "2")     # no such version: not asked


def test_is_ready_runs_beside_a_decoupled_execute(server):
    """Streams whose execute waits for an is_ready() call made while it runs, and
    readiness queries from both protocols meanwhile: all ready, every stream complete
    with its responses (a -1 would say is_ready waited behind execute)."""
    results: queue.Queue = queue.Queue()
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    grpc.start_stream(callback=lambda result, error: results.put(error or result))
    counts = [3, 4, 5]
    for count in counts:
        inp = grpcclient.InferInput("IN", [1, 1], "INT32")
        inp.set_data_from_numpy(np.array([[count]], np.int32))
        grpc.async_stream_infer("ready_decoupled", [inp], enable_empty_final_response=True)
    answers: list = []

    def ask(client) -> None:
        while len(answers) < 5000 and not done.is_set():
            answers.append(client.is_model_ready("ready_decoupled"))

    done = threading.Event()
    askers = [threading.Thread(target=ask, args=(c,)) for c in (
        grpcclient.InferenceServerClient(server.grpc_url),
        httpclient.InferenceServerClient(server.url))]
    for t in askers:
        t.start()
    values, finals = [], 0
    try:
        while finals < len(counts):
            item = results.get(timeout=60)
            assert not isinstance(item, Exception), item
            if item.get_response().parameters["triton_final_response"].bool_param:
                finals += 1
            else:
                values.append(int(item.as_numpy("OUT")[0]))
    finally:
        done.set()
        for t in askers:
            t.join(60)
        grpc.stop_stream()
    assert sorted(values) == sorted(v for c in counts for v in [c] * c)
    assert answers and all(a is True for a in answers)


def test_strict_server_readiness_asks_the_models(tmp_path):
    """Triton's strict readiness (the default) also checks every READY model's runtime
    readiness: a model whose is_ready() says no makes the server not ready."""
    _models(tmp_path, ["ready_true", "ready_false"])
    srv = Server([tmp_path], "--model-control-mode=explicit", "--load-model=ready_true")
    try:         # ready at all: ready_true's is_ready() said yes
        http = httpclient.InferenceServerClient(srv.url)
        grpc = grpcclient.InferenceServerClient(srv.grpc_url)
        http.load_model("ready_false")
        assert not http.is_server_ready() and not grpc.is_server_ready()
        assert grpc.is_server_live()
        http.unload_model("ready_false")
        assert http.is_server_ready() and grpc.is_server_ready()
    finally:
        srv.stop()
