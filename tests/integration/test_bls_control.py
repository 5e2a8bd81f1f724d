"""BLS model control and preferred memory: ``pb_utils.is_model_ready``,
``load_model``, ``unload_model`` (explicit mode) and ``preferred_memory``, from a real
Python model in a real tritond, driven by the real tritonclient."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.pipeline_repo import write_repo
from tests.server import Server

# ``manager`` does what the request's ``action`` parameter says and answers its outcome
# in STATUS (a model exception's text where the call raised).
MANAGER_PY = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            p = json.loads(r.parameters())
            try:
                status = self.act(r, p)
            except pb_utils.TritonModelException as exc:
                status = "raised: " + exc.message()
            except TypeError as exc:
                status = "type error: " + str(exc)
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("STATUS", np.array([status.encode()], dtype=object))]))
        return out

    def act(self, r, p):
        action, model = p["action"], p.get("model", "add_sub")
        if action == "ready":
            return str(pb_utils.is_model_ready(model, p.get("version", "")))
        if action == "load":
            pb_utils.load_model(model_name=model, config=p.get("config", ""))
            return "loaded"
        if action == "load_files":
            pb_utils.load_model(model, config="{}", files={"file:1/model.py": b"x"})
            return "loaded"
        if action == "unload":
            pb_utils.unload_model(model, unload_dependents=p.get("dependents", False))
            return "unloaded"
        if action == "call":          # BLS with a preferred memory type
            x = np.array([1, 2, 3, 4], np.float32)
            resp = pb_utils.InferenceRequest(
                model_name="add_sub", requested_output_names=["OUTPUT0"],
                inputs=[pb_utils.Tensor("INPUT0", x), pb_utils.Tensor("INPUT1", x)],
                preferred_memory=pb_utils.PreferredMemory(p["memory"], 0)).exec()
            if resp.has_error():
                return "error: " + resp.error().message()
            t = pb_utils.get_output_tensor_by_name(resp, "OUTPUT0")
            return f"{t.as_numpy().tolist()} cpu={t.is_cpu()}"
        if action == "args":          # BLS with p["kwargs"] given to InferenceRequest
            x = np.array([1, 2, 3, 4], np.float32)
            kw = dict(model_name="add_sub", requested_output_names=["OUTPUT0"],
                      inputs=[pb_utils.Tensor("INPUT0", x), pb_utils.Tensor("INPUT1", x)])
            kw.update(json.loads(p["kwargs"]))
            resp = pb_utils.InferenceRequest(**kw).exec()
            return "error: " + resp.error().message() if resp.has_error() else "ok"
        raise ValueError(action)
'''

CONFIG = '''name: "manager"
backend: "python"
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "STATUS" data_type: TYPE_STRING dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
'''


# ``phases`` tries a BLS call (exec and async_exec) in initialize and one (exec) in finalize,
# which writes what happened to finalize.txt in its model directory; execute answers what
# initialize saw and whether a call from execute worked.
PHASES_PY = '''
import asyncio
import os
import numpy as np
import triton_python_backend_utils as pb_utils


def call():
    x = np.array([1, 2, 3, 4], np.float32)
    return pb_utils.InferenceRequest(
        model_name="add_sub", requested_output_names=["OUTPUT0"],
        inputs=[pb_utils.Tensor("INPUT0", x), pb_utils.Tensor("INPUT1", x)])


def attempt(fn):
    try:
        resp = fn()
        return "error: " + resp.error().message() if resp.has_error() else "ok"
    except pb_utils.TritonModelException as exc:
        return exc.message()


class TritonPythonModel:
    def initialize(self, args):
        self.dir = args["model_repository"]
        self.seen = [attempt(lambda: call().exec()),
                     attempt(lambda: asyncio.run(call().async_exec()))]

    def execute(self, requests):
        status = "|".join(self.seen + [attempt(lambda: call().exec())])
        return [pb_utils.InferenceResponse([
            pb_utils.Tensor("STATUS", np.array([status.encode()], dtype=object))])
            for _ in requests]

    def finalize(self):
        with open(os.path.join(self.dir, "finalize.txt"), "w") as f:
            f.write(attempt(lambda: call().exec()))
'''


def _repo(tmp_path):
    repo = write_repo(tmp_path, with_invalid=False)
    for name, code in (("manager", MANAGER_PY), ("phases", PHASES_PY)):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(code)
        (repo / name / "config.pbtxt").write_text(CONFIG.replace("manager", name))
    return repo


def _ask(client, **params) -> str:
    t = httpclient.InferInput("IN", [1], "FP32")
    t.set_data_from_numpy(np.zeros(1, np.float32))
    r = client.infer("manager", [t], parameters=params)
    return r.as_numpy("STATUS")[0].decode()


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    s = Server([_repo(tmp_path_factory.mktemp("bls_control"))], "--model-control-mode=explicit",
               "--load-model=manager")
    yield s, httpclient.InferenceServerClient(s.url)
    s.stop()


def test_a_python_model_checks_loads_and_unloads_other_models(explicit):
    srv, client = explicit
    assert _ask(client, action="ready") == "False"
    assert _ask(client, action="load") == "loaded"
    assert client.is_model_ready("add_sub")                  # the client sees it too
    assert _ask(client, action="ready") == "True"
    assert _ask(client, action="ready", version="1") == "True"
    assert _ask(client, action="ready", version="7") == "False"
    assert _ask(client, action="ready", model="ghost") == "False"
    # an ensemble is ready only with its composing models
    assert _ask(client, action="load", model="chain") == "loaded"
    assert _ask(client, action="ready", model="chain") == "True"
    assert _ask(client, action="unload", model="add_sub", dependents=True) == "unloaded"
    assert not client.is_model_ready("add_sub") and not client.is_model_ready("chain")
    assert _ask(client, action="ready", model="chain") == "False"


def test_load_errors_raise_in_the_model_and_the_server_goes_on(explicit):
    srv, client = explicit
    assert _ask(client, action="load", model="ghost").startswith("raised: ")
    bad = json.dumps({"backend": "python", "max_batch_size": -3})
    assert _ask(client, action="load", config=bad).startswith("raised: ")
    assert "file" in _ask(client, action="load_files")          # file: overrides refused
    assert _ask(client, action="ready", version="x") == (    # python_backend's words
        "raised: Failed to check model readiness: Failed to process the request for model "
        "'manager_0_0', message: failed to get model version from specified version string "
        "'x' (details: stol), version should be an integral value > 0")
    assert client.is_server_live() and _ask(client, action="ready", model="manager") == "True"


@pytest.mark.parametrize("memory,expected", [(0, "cpu=True"), (2, "cpu=True"),
                                             (7, "invalid preferred memory type 7")])
def test_preferred_memory(explicit, memory, expected):
    srv, client = explicit
    assert _ask(client, action="load") == "loaded"
    got = _ask(client, action="call", memory=memory)
    assert expected in got, got
    if memory != 7:
        assert got.startswith("[2.0, 4.0, 6.0, 8.0]")


def test_model_control_outside_explicit_mode_is_refused(tmp_path):
    s = Server([_repo(tmp_path)])
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert _ask(client, action="ready") == "True"
        assert "explicit model load / unload is not allowed" in \
            _ask(client, action="unload", model="identity")
        assert client.is_model_ready("identity")
        with pytest.raises(InferenceServerException):
            client.unload_model("identity")
    finally:
        s.stop()


def test_bls_in_initialize_and_finalize_raises_as_in_triton(tmp_path):
    """Triton's stub refuses BLS outside execute (InferRequest::Exec): the call raises
    TritonModelException, before any request is sent."""
    repo = _repo(tmp_path)
    s = Server([repo], "--model-control-mode=explicit", "--load-model=add_sub",
               "--load-model=phases")
    try:
        client = httpclient.InferenceServerClient(s.url)
        t = httpclient.InferInput("IN", [1], "FP32")
        t.set_data_from_numpy(np.zeros(1, np.float32))
        status = client.infer("phases", [t]).as_numpy("STATUS")[0].decode()
        refused = "BLS is only supported during the 'execute' function."
        assert status == f"{refused}|{refused}|ok"
        client.unload_model("phases")
        done = repo / "phases" / "finalize.txt"
        end = time.monotonic() + 30
        while not done.exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert done.read_text() == refused
    finally:
        s.stop()


def test_bls_request_arguments_are_checked_as_by_triton(tmp_path):
    """Arguments python_backend's InferenceRequest binding refuses are refused when the
    request is made (a value that could not cross the wire hung the call for good)."""
    s = Server([_repo(tmp_path)])
    try:
        client = httpclient.InferenceServerClient(s.url, network_timeout=30)

        def call(**kwargs):
            return _ask(client, action="args", kwargs=json.dumps(kwargs))

        assert call() == "ok"
        assert call(correlation_id="abc", request_id="r", flags=0, timeout=10**9) == "ok"
        assert call(correlation_id=1.5) == "raised: Correlation ID must be integer or string"
        for name, value in (("request_id", 5), ("flags", "x"), ("flags", -1),
                            ("timeout", -1), ("model_version", "1"), ("model_name", 3),
                            ("requested_output_names", [5]), ("inputs", [7])):
            got = call(**{name: value})
            assert got.startswith("type error: ") and f"'{name}'" in got, (name, got)
        assert call() == "ok"                       # the worker goes on
    finally:
        s.stop()
