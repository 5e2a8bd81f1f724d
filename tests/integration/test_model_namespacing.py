"""--model-namespacing on a real tritond (issue 14): accepted at start; unique names are
served as in Triton (metrics gain a ``namespace`` label, an unknown name is INVALID_ARG);
a name found in two repositories is not served yet and fails at load with a reason."""
import shutil
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.test_http_infer import simple_inputs
from tests.server import REPO, Server

NOT_YET = "serving one model name from several namespaces (--model-namespacing) is not " \
          "supported by tritond yet"
UNKNOWN = "Request for unknown model: 'nope' is not found"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    first, second = tmp_path_factory.mktemp("ns_a"), tmp_path_factory.mktemp("ns_b")
    shutil.copytree(REPO / "simple", first / "simple")
    for repo in (first, second):
        shutil.copytree(REPO / "identity_fp32", repo / "dup")
        text = (repo / "dup" / "config.pbtxt").read_text()
        (repo / "dup" / "config.pbtxt").write_text(text.replace('"identity_fp32"', '"dup"'))
    srv = Server([first, second], "--model-namespacing=true", "--model-control-mode=explicit",
                 "--load-model=simple", "--load-model=dup", wait_ready=False)
    srv.wait("/v2/models/simple/ready")
    srv.repos = (first, second)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(server):
    c = httpclient.InferenceServerClient(server.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def grpc(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


def test_a_unique_name_is_served(http, grpc):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    result = http.infer("simple", simple_inputs(a, a))
    assert (result.as_numpy("OUTPUT0") == 2 * a).all()
    assert grpc.get_model_metadata("simple").name == "simple"


def test_a_name_in_two_repositories_fails_at_start_with_the_reason(http):
    rows = [r for r in http.get_model_repository_index() if r["name"] == "dup"]
    assert rows and all(r["state"] == "UNAVAILABLE" for r in rows)
    assert all(NOT_YET in r["reason"] for r in rows)
    assert not http.is_model_ready("dup")


def test_loading_a_name_in_two_repositories_fails_with_the_reason(http, grpc):
    for client in (http, grpc):
        with pytest.raises(InferenceServerException) as exc:
            client.load_model("dup")
        assert "not unique across all model repositories" in exc.value.message()
        assert NOT_YET in exc.value.message()
    test_a_unique_name_is_served(http, grpc)          # the server keeps going


def test_an_unknown_name_is_invalid_arg_over_http_and_grpc(http, grpc):
    a = np.ones((1, 16), np.int32)
    with pytest.raises(InferenceServerException) as exc:
        http.infer("nope", simple_inputs(a, a))
    assert exc.value.status() == "400" and UNKNOWN in exc.value.message()
    with pytest.raises(InferenceServerException) as exc:
        grpc.get_model_metadata("nope")
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT" and UNKNOWN in exc.value.message()


def test_metrics_carry_the_namespace_of_each_model(server, http):
    a = np.ones((1, 16), np.int32)
    http.infer("simple", simple_inputs(a, a))
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        text = r.read().decode()
    first = str(server.repos[0])
    assert f'nv_inference_count{{model="simple",namespace="{first}",version="1"}}' in text
    per_model = [line for line in text.splitlines() if 'model="simple"' in line]
    assert per_model and all(f'namespace="{first}"' in line for line in per_model)
