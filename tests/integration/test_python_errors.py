"""A Python model's exception reaches the client in Triton's format (type, message, model.py
file:line) and the worker log has the traceback at error level."""
from __future__ import annotations

import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

RAISES = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [self.check(r) for r in requests]

    def check(self, request):
        x = pb_utils.get_input_tensor_by_name(request, "IN0").as_numpy()
        raise ZeroDivisionError(f"cannot scale {x.size} values by zero")
'''
INIT_RAISES = '''
class TritonPythonModel:
    def initialize(self, args):
        import no_such_module_here
'''
CONFIG = ('name: "{name}"\nbackend: "python"\n'
          'input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
          'output [ { name: "OUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
          'instance_group [ { kind: KIND_CPU count: 1 } ]\n')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name, source in (("raises", RAISES), ("init_raises", INIT_RAISES)):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(source)
        (repo / name / "config.pbtxt").write_text(CONFIG.replace("{name}", name))
    srv = Server([repo], wait_ready=False)
    srv.wait("/v2/models/raises/ready")
    srv.model_py = repo / "raises" / "1" / "model.py"
    srv.init_py = repo / "init_raises" / "1" / "model.py"
    yield srv
    srv.stop()


def test_http_client_gets_type_message_and_line(server):
    client = httpclient.InferenceServerClient(server.url)
    inp = httpclient.InferInput("IN0", [4], "FP32")
    inp.set_data_from_numpy(np.ones(4, np.float32))
    with pytest.raises(InferenceServerException) as err:
        client.infer("raises", [inp])
    assert err.value.status() == "500"
    message = err.value.message()
    assert message.startswith("Failed to process the request(s) for model 'raises_0_0', "
                              "message: ZeroDivisionError: cannot scale 4 values by zero")
    assert f"  {server.model_py}(11): check\n" in message
    assert f"{server.model_py}(7): execute" in message


def test_grpc_client_gets_the_same_text(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("IN0", [4], "FP32")
    inp.set_data_from_numpy(np.ones(4, np.float32))
    with pytest.raises(InferenceServerException) as err:
        client.infer("raises", [inp])
    assert "ZeroDivisionError: cannot scale 4 values by zero" in err.value.message()
    assert f"{server.model_py}(11): check" in err.value.message()


def test_log_has_the_traceback_at_error_level(server):
    client = httpclient.InferenceServerClient(server.url)
    inp = httpclient.InferInput("IN0", [4], "FP32")
    inp.set_data_from_numpy(np.ones(4, np.float32))
    with pytest.raises(InferenceServerException):
        client.infer("raises", [inp])
    log = server.output()
    line = next(l for l in log.splitlines() if "Failed to process the request(s)" in l)
    assert line.startswith("E"), line      # Triton's log prefix: E = error
    # One escaped record (Triton's JSON-string message): the traceback is inside the line.
    assert f'File \\"{server.model_py}\\", line 11, in check' in line


def test_initialize_failure_names_type_and_line(server):
    client = httpclient.InferenceServerClient(server.url)
    deadline = time.monotonic() + 60
    while True:
        rows = {r["name"]: r for r in client.get_model_repository_index()}
        if rows["init_raises"].get("state") == "UNAVAILABLE" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    reason = rows["init_raises"]["reason"]
    assert rows["init_raises"]["state"] == "UNAVAILABLE"
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in reason
    assert f"{server.init_py}(4): initialize" in reason
    assert f'File \\"{server.init_py}\\", line 4, in initialize' in server.output()  # escaped
